"""`qilin eval --model DIR`: the Engine backend on the tiny checkpoint, batched answers equal one-by-one ones."""

from __future__ import annotations

import hashlib

import pytest

from qilin_med_vl.cli import main

from .eval_helpers import TOY_FACTORY, by_id, read_json


def _engine_args(data, model_dir, out, batch_size: int) -> list[str]:
    return [
        "eval", "--task-factory", TOY_FACTORY, "--data", str(data), "--model", str(model_dir),
        "--out", str(out), "--batch-size", str(batch_size), "--max-new-tokens", "6", "--device", "cpu",
    ]  # fmt: skip


@pytest.mark.slow
def test_batched_answers_equal_one_by_one_answers(tiny_model_dir, toy_data, tmp_path):
    batched, single = tmp_path / "batched", tmp_path / "single"
    assert main(_engine_args(toy_data, tiny_model_dir, batched, batch_size=4)) == 0
    assert main(_engine_args(toy_data, tiny_model_dir, single, batch_size=1)) == 0
    batched_answers = {
        key: record["prediction"] for key, record in by_id(batched / "predictions.jsonl").items()
    }
    single_answers = {
        key: record["prediction"] for key, record in by_id(single / "predictions.jsonl").items()
    }
    assert len(batched_answers) == 8
    assert batched_answers == single_answers
    assert any(batched_answers.values())  # the tiny model does say something
    # the one weight file, by name and bytes, as the weights fingerprint documents
    expected = hashlib.sha256(b"model.safetensors\0" + (tiny_model_dir / "model.safetensors").read_bytes())
    assert read_json(batched / "run.json")["model"] == {
        "kind": "checkpoint",
        "directory": str(tiny_model_dir.resolve()),
        "weights_sha256": expected.hexdigest(),
    }


def test_missing_checkpoint_folder_is_a_clear_error(toy_data, tmp_path, capsys):
    assert main(_engine_args(toy_data, tmp_path / "no-model", tmp_path / "run", batch_size=2)) == 1
    error = capsys.readouterr().err
    assert "no such checkpoint directory" in error and "Traceback" not in error
