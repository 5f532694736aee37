"""A killed `qilin eval` resumes: finished items are never asked again, a torn last line is tolerated."""

from __future__ import annotations

import pytest

from qilin_med_vl.cli import main

from .eval_helpers import by_id, endpoint_args, read_json, read_jsonl
from .killed_run import kill_eval_when
from .toy_task import TOY_ITEMS, prompt_of


def test_sigkilled_run_resumes_without_asking_finished_items_again(fake_server, toy_data, tmp_path):
    fake_server.answers = {prompt_of(question): reference for _, question, reference, *_ in TOY_ITEMS}
    fake_server.hold_after(3)  # three answers, then every request hangs until the client is killed
    out = tmp_path / "run"
    args = endpoint_args(toy_data, out, fake_server.base_url, "--batch-size", "4", "--concurrency", "4")
    kill_eval_when(
        args,
        out / "predictions.jsonl",
        lambda text: len([line for line in text.splitlines() if line.strip()]) >= 3,
    )
    finished = set(by_id(out / "predictions.jsonl"))
    assert len(finished) == 3
    finished_prompts = {prompt_of(q) for item_id, q, *_ in TOY_ITEMS if item_id in finished}
    assert finished_prompts == set(fake_server.answered_keys())
    with (out / "predictions.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"index": 7, "id": "q7", "predic')  # what a kill in the middle of a write leaves

    fake_server.release()
    assert main(args) == 0

    asked = fake_server.requests_per_key()
    assert all(asked[prompt] == 1 for prompt in finished_prompts)  # never asked again
    records = read_jsonl(out / "predictions.jsonl")  # every line whole JSON again
    assert sorted(record["id"] for record in records) == [item_id for item_id, *_ in TOY_ITEMS]
    metrics = read_json(out / "metrics.json")
    assert metrics["complete"] and metrics["overall"]["mean"] == 1.0
    assert len(read_json(out / "run.json")["resumed"]) == 1


def test_rerunning_a_finished_run_asks_nothing(fake_server, toy_data, tmp_path):
    out = tmp_path / "run"
    args = endpoint_args(toy_data, out, fake_server.base_url)
    assert main(args) == 0
    asked = len(fake_server.requests)
    first = read_json(out / "metrics.json")
    assert main(args) == 0
    assert len(fake_server.requests) == asked == len(TOY_ITEMS)
    assert read_json(out / "metrics.json")["overall"] == first["overall"]


def test_a_larger_limit_extends_the_run(fake_server, toy_data, tmp_path):
    out = tmp_path / "run"
    assert main(endpoint_args(toy_data, out, fake_server.base_url, "--limit", "3")) == 0
    assert read_json(out / "metrics.json")["items"] == 3
    assert main(endpoint_args(toy_data, out, fake_server.base_url, "--limit", "5")) == 0
    assert len(fake_server.requests) == 5  # the first three were not asked again
    assert read_json(out / "metrics.json")["overall"]["count"] == 5


def test_corrupted_line_in_the_middle_is_a_clear_error(fake_server, toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = endpoint_args(toy_data, out, fake_server.base_url, "--limit", "2")
    assert main(args) == 0
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "predictions.jsonl").write_text("not json\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "predictions.jsonl, line 1" in error and "Traceback" not in error


@pytest.mark.parametrize("torn", ['{"index": 0, "id": "q0"}', '{"index": 0, "id'])
def test_a_last_line_without_newline_is_asked_again(fake_server, toy_data, tmp_path, torn):
    """An unterminated last line never counts as answered, even when it happens to parse."""
    out = tmp_path / "run"
    args = endpoint_args(toy_data, out, fake_server.base_url, "--limit", "1")
    assert main(args) == 0
    (out / "predictions.jsonl").write_text(torn, encoding="utf-8")
    assert main(args) == 0
    assert len(fake_server.requests) == 2
    assert [record["id"] for record in read_jsonl(out / "predictions.jsonl")] == ["q0"]
