"""`--shard I/N` runs merged with `qilin eval merge` give what the unsharded run gives."""

from __future__ import annotations

from qilin_med_vl.cli import main

from .eval_helpers import endpoint_args, read_json, read_jsonl, score_groups
from .toy_task import TOY_ITEMS, prompt_of

# half right, so groups and intervals are not trivial
ANSWERS = {
    prompt_of(q): (ref if number % 2 == 0 else "wrong") for number, (_, q, ref, *_) in enumerate(TOY_ITEMS)
}


def _answer_fields(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda record: record["index"])


def test_merged_shards_equal_the_unsharded_run(fake_server, toy_data, tmp_path, capsys):
    fake_server.answers = ANSWERS
    whole = tmp_path / "whole"
    assert main(endpoint_args(toy_data, whole, fake_server.base_url, "--limit", "7")) == 0
    shards = [tmp_path / f"part{index}" for index in range(3)]
    for index, folder in enumerate(shards):
        assert (
            main(
                endpoint_args(toy_data, folder, fake_server.base_url, "--limit", "7", "--shard", f"{index}/3")
            )
            == 0
        )
    assert [record["index"] for record in read_jsonl(shards[1] / "predictions.jsonl")] == [1, 4]
    assert "--limit 7 --shard 2/3" in read_json(shards[2] / "run.json")["command"]

    merged = tmp_path / "merged"
    assert main(["eval", "merge", *map(str, reversed(shards)), "--out", str(merged)]) == 0
    assert _answer_fields(read_jsonl(merged / "predictions.jsonl")) == _answer_fields(
        read_jsonl(whole / "predictions.jsonl")
    )
    assert score_groups(read_json(merged / "metrics.json")) == score_groups(read_json(whole / "metrics.json"))
    assert read_json(merged / "run.json")["identity"] == read_json(whole / "run.json")["identity"]
    assert (merged / "report.md").exists()
    # the merged folder is the unsharded run: running that command into it asks nothing
    asked = len(fake_server.requests)
    assert main(endpoint_args(toy_data, merged, fake_server.base_url, "--limit", "7")) == 0
    assert len(fake_server.requests) == asked


def test_merge_refuses_missing_or_unfinished_shards(fake_server, toy_data, tmp_path, capsys):
    parts = [tmp_path / f"part{index}" for index in range(2)]
    for index, folder in enumerate(parts):
        assert main(endpoint_args(toy_data, folder, fake_server.base_url, "--shard", f"{index}/2")) == 0
    capsys.readouterr()

    assert main(["eval", "merge", str(parts[0]), "--out", str(tmp_path / "merged")]) == 1
    assert "missing [1]" in capsys.readouterr().err

    lines = (parts[1] / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    (parts[1] / "predictions.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    assert main(["eval", "merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 1
    error = capsys.readouterr().err
    assert "1 of 4 items unanswered" in error and "--shard 1/2" in error and "Traceback" not in error


def test_merge_refuses_shards_of_different_runs(fake_server, toy_data, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(endpoint_args(toy_data, first, fake_server.base_url, "--shard", "0/2")) == 0
    assert main(endpoint_args(toy_data, second, fake_server.base_url, "--shard", "1/2", "--lang", "zh")) == 0
    capsys.readouterr()
    assert main(["eval", "merge", str(first), str(second), "--out", str(tmp_path / "merged")]) == 1
    assert "not a shard of the same run" in capsys.readouterr().err


def test_merge_refuses_shards_of_different_splits(fake_server, toy_data, tmp_path, capsys):
    halves, thirds = tmp_path / "half", tmp_path / "third"
    assert main(endpoint_args(toy_data, halves, fake_server.base_url, "--shard", "0/2")) == 0
    assert main(endpoint_args(toy_data, thirds, fake_server.base_url, "--shard", "1/3")) == 0
    capsys.readouterr()
    assert main(["eval", "merge", str(halves), str(thirds), "--out", str(tmp_path / "merged")]) == 1
    assert "shard 1 of 3" in capsys.readouterr().err
