"""The versions run.json records for the prompt and the metric, so numbers from different code are told apart."""

from __future__ import annotations

from qilin_med_vl.eval.items import Task

METRIC_VERSION = "unversioned"  # placeholder until the scoring modules define theirs


def prompt_version(task: Task) -> str:
    return "unversioned"
