"""Proof of learning: held-out accuracy per question type, next to chance and to the same model blind.

An answer is correct when `qilin eval` says so: for a yes/no question the polarity of the answer (its
score), for any other question an exact match after normalisation (`details.exact`). Items are joined
to the synthetic ground truth by the id of the record that asks the question (`question_record_id`).
Chance is the accuracy of always giving the most common answer of that type among the held-out items
(never below a uniform guess). The blind model is the same checkpoint asked the same questions with
every picture replaced by a blank one.

The verdict: every question type passes when its accuracy beats both chance and blind by at least
`PASS_MARGIN`, on at least `MIN_ITEMS` items. Why 0.15: with ~40+ held-out items a type, the standard
error of an accuracy is at most 0.5/sqrt(40) = 0.08, so a 0.15 gap is about two standard errors above
what the question alone (blind) or the answer frequencies (chance) can give, and a model that ignores
the image does not pass by luck.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

PASS_MARGIN = 0.15
MIN_ITEMS = 20
POLARITY_RULE = "polarity"  # `qilin eval`'s closed rule for yes/no references


@dataclass(frozen=True)
class TypeResult:
    question_type: str
    items: int
    accuracy: float
    blind_accuracy: float
    chance: float

    @property
    def passed(self) -> bool:
        margin = min(self.accuracy - self.chance, self.accuracy - self.blind_accuracy)
        return self.items >= MIN_ITEMS and margin >= PASS_MARGIN

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def is_correct(prediction: dict) -> bool:
    details = prediction.get("details") or {}
    if details.get("rule") == POLARITY_RULE:
        return prediction["score"] >= 1.0
    return details.get("exact", 0.0) >= 1.0


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def ground_truth_by_record(path: Path) -> dict[str, dict]:
    """record id -> the ground-truth line whose question that record asks (questions only: a case
    report's other record, its figure text under a describe-the-image prompt, is no question)."""
    from qilin_med_vl.data.synth.findings import QUESTION_TYPES

    return {
        truth["question_record_id"]: truth
        for truth in read_jsonl(path)
        if truth["question_type"] in QUESTION_TYPES
    }


def correct_by_type(predictions: Path, truth: dict[str, dict]) -> dict[str, list[bool]]:
    grouped: dict[str, list[bool]] = defaultdict(list)
    for prediction in read_jsonl(predictions):
        found = truth.get(prediction["id"])
        if found is not None:
            grouped[found["question_type"]].append(is_correct(prediction))
    return grouped


def chance_by_type(predictions: Path, truth: dict[str, dict]) -> dict[str, float]:
    answers: dict[str, Counter] = defaultdict(Counter)
    kinds: dict[str, set] = defaultdict(set)
    for prediction in read_jsonl(predictions):
        found = truth.get(prediction["id"])
        if found is not None:
            answers[found["question_type"]][found["answer_zh"]] += 1
    for found in truth.values():
        kinds[found["question_type"]].add(found["answer_zh"])
    return {
        kind: max(max(counts.values()) / sum(counts.values()), 1 / len(kinds[kind]))
        for kind, counts in answers.items()
    }


def judge(seeing: Path, blind: Path, ground_truth: Path) -> list[TypeResult]:
    """One result per question type, from two `qilin eval` runs' predictions.jsonl."""
    truth = ground_truth_by_record(ground_truth)
    with_images = correct_by_type(seeing, truth)
    without = correct_by_type(blind, truth)
    chance = chance_by_type(seeing, truth)
    return [
        TypeResult(
            question_type=kind,
            items=len(with_images[kind]),
            accuracy=sum(with_images[kind]) / len(with_images[kind]),
            blind_accuracy=sum(without.get(kind, [])) / max(1, len(without.get(kind, []))),
            chance=chance[kind],
        )
        for kind in sorted(with_images)
    ]
