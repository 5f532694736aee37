"""Helpers shared by the evaluation tests: the toy task's command line and reading a run's files."""

from __future__ import annotations

import json
from pathlib import Path

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
