"""`qilin eval compare` on hand-made runs, and the resampling statistics behind it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qilin_med_vl.cli import main
from qilin_med_vl.eval import stats
from qilin_med_vl.eval.predictions import write_predictions
from qilin_med_vl.eval.run_record import write_run_record
from qilin_med_vl.eval.summary import build_metrics, write_metrics


def make_run(folder, task: str, scores: dict[str, float], verdicts: dict | None = None) -> None:
    """A finished run folder with these per-item scores (all English closed questions), and where
    `verdicts` names an item, the judge's verdict on it (None: a reply without one)."""
    folder.mkdir(parents=True)
    records = [
        {"index": index, "id": item, "language": "en", "answer_type": "closed", "modality": "CT",
         "content_type": "", "score": score, "details": {"exact": score == 1.0}}
        for index, (item, score) in enumerate(scores.items())
    ]  # fmt: skip
    for record in records:
        if verdicts and record["id"] in verdicts:
            record["details"]["judge"] = verdicts[record["id"]]
    record = {
        "identity": {"shard": None},
        "task": task,
        "model": {"kind": "endpoint", "endpoint": "http://127.0.0.1:1/v1", "model": folder.name},
        "command": f"qilin eval --task {task}",
    }
    write_run_record(folder, record)
    write_predictions(folder / "predictions.jsonl", records)
    write_metrics(folder, build_metrics(record, records, len(records)))


def test_compare_table_and_exact_paired_test(tmp_path, capsys):
    make_run(tmp_path / "base", "toy", {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0, "e": 0.0, "f": 1.0})
    make_run(tmp_path / "better", "toy", {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0, "g": 1.0})
    make_run(tmp_path / "disjoint", "toy", {"x": 1.0})
    make_run(tmp_path / "elsewhere", "other", {"a": 1.0})
    out = tmp_path / "comparison.md"
    runs = [str(tmp_path / name) for name in ("base", "better", "disjoint", "elsewhere")]
    assert main(["eval", "compare", *runs, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == printed
    assert "| group | base | better | disjoint | elsewhere |" in printed
    assert "| all | 0.1667 [" in printed and "(n=6)" in printed
    assert "different tasks" in printed
    # shared items a..e, each +1: of the 2**5 sign patterns only all-plus and all-minus reach |mean| 1
    assert "| better | 5 | +1.0000 [+1.0000, +1.0000] | 0.0625 (exact) |" in printed
    assert "| disjoint | 0 | no shared items | |" in printed
    assert "| elsewhere | | another task: item ids are not comparable | |" in printed


def test_compare_pairs_the_judges_verdicts_when_runs_have_them(tmp_path, capsys):
    scores = {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0, "e": 0.0, "f": 0.0}
    make_run(tmp_path / "base", "toy", scores, {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0, "e": None})
    make_run(tmp_path / "better", "toy", scores, {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0})
    make_run(tmp_path / "unjudged", "toy", scores)
    runs = [str(tmp_path / name) for name in ("base", "better", "unjudged")]
    assert main(["eval", "compare", *runs]) == 0
    printed = capsys.readouterr().out
    judge_part = printed.split("## LLM judge (open answers)")[1]
    # base: 4 readable verdicts, mean 1/4, rule mean 1/4 on those; better: 5 verdicts, mean 1, rule 1/5
    assert "| all | 0.2500 (rule 0.2500, n=4) | 1.0000 (rule 0.2000, n=5) |  |" in judge_part
    # the scores are equal, the verdicts are not: b, c, d are +1 and a is 0 (e is unreadable in base)
    assert "| better | 6 | +0.0000 [+0.0000, +0.0000] | 1 (exact) |" in printed.split("## LLM judge")[0]
    assert "| better | 4 | +0.7500 [" in judge_part and "| 0.25 (exact) |" in judge_part
    assert "| unjudged | 0 | no shared items | |" in judge_part


def test_compare_has_no_judge_part_without_verdicts(tmp_path, capsys):
    make_run(tmp_path / "base", "toy", {"a": 1.0})
    make_run(tmp_path / "other", "toy", {"a": 0.0})
    assert main(["eval", "compare", str(tmp_path / "base"), str(tmp_path / "other")]) == 0
    assert "LLM judge" not in capsys.readouterr().out


def test_compare_needs_finished_runs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["eval", "compare", str(tmp_path / "empty")]) == 1
    assert "not a finished `qilin eval` run" in capsys.readouterr().err


def test_exact_sign_flip_p_value_by_hand():
    # differences 2, -1, 1: |mean| = 2/3; patterns reaching it: (+2,-1,+1), (+2,+1,+1) mean 4/3,
    # and their mirrors, (+2,-1,-1) mean 0 and (+2,+1,-1) mean 2/3 and mirrors: 6 of 8
    result = stats.sign_flip_test([2.0, -1.0, 1.0])
    assert result.exact and result.flips == 8
    assert result.p_value == pytest.approx(6 / 8)
    assert result.mean_difference == pytest.approx(2 / 3)


def test_random_sign_flips_approach_the_exact_p_value():
    differences = np.random.default_rng(3).normal(0.3, 1.0, size=15)
    exact = stats.sign_flip_test(differences, resamples=2**15)
    assert exact.exact
    patterns = np.array(list(itertools.product((1.0, -1.0), repeat=15)))
    by_enumeration = np.mean(np.abs((patterns * differences).mean(axis=1)) >= abs(differences.mean()) - 1e-12)
    assert exact.p_value == pytest.approx(by_enumeration)
    sampled = stats.sign_flip_test(differences, resamples=10_000)
    assert not sampled.exact
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.02)


def test_bootstrap_interval_by_hand_and_against_the_normal_approximation():
    # two items 0 and 1: resampled means are 0, 1/2, 1 with chances 1/4, 1/2, 1/4
    assert stats.bootstrap_interval([0.0, 1.0]) == stats.Interval(0.0, 1.0)
    assert stats.bootstrap_interval([0.7] * 5) == stats.Interval(0.7, 0.7)
    # 400 items, half right: mean 0.5 with standard error 0.025, so about 0.5 +- 1.96 * 0.025
    interval = stats.bootstrap_interval([0.0, 1.0] * 200)
    assert interval.low == pytest.approx(0.451, abs=0.01)
    assert interval.high == pytest.approx(0.549, abs=0.01)
    assert stats.bootstrap_interval([0.0, 1.0] * 200) == interval  # seeded: the same every time
