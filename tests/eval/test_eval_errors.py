"""Bad input to `qilin eval` ends with a clear one-paragraph error and exit code 1, never a traceback."""

from __future__ import annotations

import pytest

from qilin_med_vl.cli import main

from .eval_helpers import endpoint_args


def _error(capsys) -> str:
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return error


def test_unknown_task(toy_data, tmp_path, capsys):
    args = ["eval", "--task", "no-such-bench", "--data", str(toy_data), "--endpoint", "http://127.0.0.1:9/v1"]
    assert main([*args, "--model", "m", "--out", str(tmp_path / "run")]) == 1
    error = _error(capsys)
    assert "unknown task" in error and "slake" in error and "vqa-rad" in error


def test_missing_data_folder(fake_server, tmp_path, capsys):
    assert main(endpoint_args(tmp_path / "nowhere", tmp_path / "run", fake_server.base_url)) == 1
    assert "--data" in _error(capsys) and not (tmp_path / "run").exists()
    assert fake_server.requests == []


def test_out_folder_holding_another_run(fake_server, toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(endpoint_args(toy_data, out, fake_server.base_url)) == 0
    capsys.readouterr()
    other_model = endpoint_args(toy_data, out, fake_server.base_url)
    other_model[other_model.index("fake-vqa")] = "another-model"
    assert main(other_model) == 1
    error = _error(capsys)
    assert "holds another run" in error and "another-model" in error and "choose another --out" in error
    assert main(endpoint_args(toy_data, out, fake_server.base_url, "--lang", "zh")) == 1
    error = _error(capsys)
    assert 'options: {"mode": null, "lang": "all"' in error and '"lang": "zh"' in error
    assert len(fake_server.requests) == 8  # nothing was asked for the refused runs


def test_out_folder_with_foreign_predictions(fake_server, toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "predictions.jsonl").write_text('{"id": "x"}\n', encoding="utf-8")
    assert main(endpoint_args(toy_data, out, fake_server.base_url)) == 1
    assert "no run.json" in _error(capsys)


def test_missing_image_names_the_item(fake_server, toy_data, tmp_path, capsys):
    (toy_data / "images" / "q3.png").unlink()
    assert main(endpoint_args(toy_data, tmp_path / "run", fake_server.base_url)) == 1
    error = _error(capsys)
    assert "'q3'" in error and "q3.png" in error


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task-factory", "no_such_module:make"], "cannot import no_such_module"),
        (["--task-factory", "tests.eval.toy_task"], "MODULE:FUNCTION"),
        (["--api-key-env", "QILIN_TEST_UNSET_KEY"], "QILIN_TEST_UNSET_KEY"),
    ],
)
def test_bad_options(fake_server, toy_data, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.delenv("QILIN_TEST_UNSET_KEY", raising=False)
    args = endpoint_args(toy_data, tmp_path / "run", fake_server.base_url)
    if extra[0] == "--task-factory":
        args[args.index("--task-factory") + 1] = extra[1]
    else:
        args += extra
    assert main(args) == 1
    assert message in _error(capsys)


def test_missing_model_and_out(toy_data, capsys):
    assert main(["eval", "--task", "slake", "--data", str(toy_data)]) == 1
    assert "--model is required" in _error(capsys)


def test_bad_shard_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--task", "slake", "--shard", "3/3"])
    assert exit_info.value.code == 2
    assert "I/N with 0 <= I < N" in capsys.readouterr().err
