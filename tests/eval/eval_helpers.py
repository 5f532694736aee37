"""Helpers shared by the evaluation tests: the toy task's command line, reading a run's files, judge keys."""

from __future__ import annotations

import json
from pathlib import Path

from qilin_med_vl.eval.items import EvalItem
from qilin_med_vl.eval.judge_prompt import judge_prompt

from .toy_task import TOY_ITEMS

TOY_FACTORY = "tests.eval.toy_task:make_task"


def endpoint_args(data: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "eval",
        "--task-factory",
        TOY_FACTORY,
        "--data",
        str(data),
        "--endpoint",
        base_url,
        "--model",
        "fake-vqa",
        "--out",
        str(out),
        "--retry-backoff",
        "0.01",
        *extra,
    ]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def by_id(path: Path) -> dict[str, dict]:
    return {record["id"]: record for record in read_jsonl(path)}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def score_groups(metrics: dict) -> dict:
    """The scores of metrics.json without its traceability fields (which differ between runs)."""
    keys = ("overall", "by_language", "by_answer_type", "by_modality", "by_content_type", "items", "answered")
    return {key: metrics[key] for key in keys}


def judge_key(item_id: str, prediction: str) -> str:
    """The judge prompt `qilin eval` sends for a toy item answered with `prediction`: a fake judge's key."""
    item_id, question, reference, language, answer_type, _ = next(
        row for row in TOY_ITEMS if row[0] == item_id
    )
    item = EvalItem(item_id, question, reference, None, language, answer_type)
    return judge_prompt(item, prediction)
