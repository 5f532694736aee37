"""The demo's verdict on hand-made predictions: accuracies, chance and blind per type, the pass rule."""

from __future__ import annotations

import json
from pathlib import Path

from qilin_med_vl.demo.verdict import MIN_ITEMS, PASS_MARGIN, TypeResult, judge


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def _prediction(record_id: str, correct: bool, polarity: bool) -> dict:
    details = {"exact": 0.0, "rule": "polarity"} if polarity else {"exact": float(correct)}
    return {"id": record_id, "score": float(correct), "details": details}


def _truth(question_type: str, record_id: str, answer: str) -> dict:
    return {"question_type": question_type, "record_ids": [record_id], "question_record_id": record_id,
            "answer_zh": answer}  # fmt: skip


def test_accuracy_blind_and_chance_per_question_type(tmp_path):
    truth = [_truth("side", f"s{i}", "左侧" if i < 3 else "右侧") for i in range(4)]
    truth += [_truth("presence", f"p{i}", "是") for i in range(2)]
    truth += [
        {
            "question_type": "caption",
            "record_ids": ["c0"],
            "question_record_id": None,
            "answer_zh": "一段描述",
        }
    ]
    ground_truth = _write(tmp_path / "truth.jsonl", truth)
    seeing = _write(tmp_path / "seeing.jsonl", [
        _prediction("s0", True, False), _prediction("s1", True, False), _prediction("s2", True, False),
        _prediction("s3", False, False), _prediction("p0", True, True), _prediction("p1", True, True),
        _prediction("c0", True, False),
    ])  # fmt: skip
    blind = _write(tmp_path / "blind.jsonl", [
        _prediction("s0", True, False), _prediction("s1", False, False), _prediction("s2", False, False),
        _prediction("s3", False, False), _prediction("p0", False, True), _prediction("p1", True, True),
    ])  # fmt: skip
    results = {result.question_type: result for result in judge(seeing, blind, ground_truth)}
    assert set(results) == {"side", "presence"}  # captions are not a question type
    assert (results["side"].items, results["side"].accuracy, results["side"].blind_accuracy) == (
        4,
        0.75,
        0.25,
    )
    assert results["side"].chance == 0.75  # "左侧" is 3 of 4
    # polarity items count by their score, not by exact match
    assert (results["presence"].accuracy, results["presence"].blind_accuracy) == (1.0, 0.5)
    assert results["presence"].chance == 1.0


def test_a_case_reports_figure_text_record_is_not_scored_as_its_question(tmp_path):
    # a case report row feeds two records: its figure text under a describe-the-image prompt, and its question
    case = {"question_type": "side", "record_ids": ["case-alignment", "case-instruction"],
            "question_record_id": "case-instruction", "answer_zh": "左侧"}  # fmt: skip
    ground_truth = _write(tmp_path / "truth.jsonl", [case])
    answers = [_prediction("case-alignment", False, False), _prediction("case-instruction", True, False)]
    seeing = _write(tmp_path / "seeing.jsonl", answers)
    (result,) = judge(seeing, seeing, ground_truth)
    assert (result.items, result.accuracy) == (1, 1.0)


def test_a_type_passes_only_clear_of_chance_and_blind_on_enough_items():
    clear = TypeResult("side", MIN_ITEMS, accuracy=0.9, blind_accuracy=0.9 - PASS_MARGIN, chance=0.5)
    assert clear.passed
    assert not TypeResult("side", MIN_ITEMS, accuracy=0.9, blind_accuracy=0.8, chance=0.5).passed
    assert not TypeResult("side", MIN_ITEMS, accuracy=0.6, blind_accuracy=0.1, chance=0.5).passed
    assert not TypeResult("side", MIN_ITEMS - 1, accuracy=1.0, blind_accuracy=0.0, chance=0.5).passed
