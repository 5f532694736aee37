"""metrics.json: the run's scores, overall and per group, each with a 95% bootstrap interval.

Groups: per language, answer type, modality and content type (items with an empty value for a grouping
are left out of that grouping only). Each group gives its item count, mean score, the interval (see
`stats`) and the mean of every numeric or yes/no detail the task's scorer reported (exact match, F1,
recall, BLEU-4...), over the items that report it, and how often each value of a text detail occurs
(`detail_counts`, e.g. whether choice answers were matched by letter, option text or not at all).
Where the optional LLM judge gave verdicts, a group also has `judge`: how many of its items were asked,
how many replies had no verdict, the judge's mean, the rule-based mean over the same items, and the
agreement of the two (share of equal yes/no, Cohen's kappa), the rule's yes being score >= 0.5.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from qilin_med_vl.eval import stats
from qilin_med_vl.eval.judge import JUDGE_DETAIL

METRICS_FILE = "metrics.json"
RULE_PASS = 0.5  # a rule-based score at least this high counts as "right" when compared with the judge
GROUPINGS = {  # record field -> metrics.json key
    "language": "by_language",
    "answer_type": "by_answer_type",
    "modality": "by_modality",
    "content_type": "by_content_type",
}


def group_summary(records: Sequence[dict]) -> dict:
    scores = [float(record["score"]) for record in records]
    interval = stats.bootstrap_interval(scores)
    summary = {
        "count": len(scores),
        "mean": sum(scores) / len(scores),
        "ci95": [interval.low, interval.high],
        "details": _detail_means(records),
        "detail_counts": _detail_counts(records),
    }
    judged = judge_summary(records)
    if judged is not None:
        summary["judge"] = judged
    return summary


def judge_summary(records: Sequence[dict]) -> dict | None:
    """The judge's verdicts on `records` against their rule-based scores; None when none was judged."""
    asked = [record for record in records if JUDGE_DETAIL in (record.get("details") or {})]
    if not asked:
        return None
    readable = [record for record in asked if record["details"][JUDGE_DETAIL] is not None]
    verdicts = [record["details"][JUDGE_DETAIL] == 1.0 for record in readable]
    rule = [float(record["score"]) >= RULE_PASS for record in readable]
    count = len(readable)
    return {
        "asked": len(asked),
        "count": count,  # replies holding a verdict
        "unreadable": len(asked) - count,  # no verdict word in the reply, or the request refused
        "mean": sum(verdicts) / count if count else None,
        "rule_mean": sum(float(record["score"]) for record in readable) / count if count else None,
        "agreement": sum(v == r for v, r in zip(verdicts, rule, strict=True)) / count if count else None,
        "kappa": stats.cohen_kappa(verdicts, rule),
    }


def _detail_means(records: Sequence[dict]) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for record in records:
        for key, value in (record.get("details") or {}).items():
            if isinstance(value, bool | int | float):
                values.setdefault(key, []).append(float(value))
    return {key: sum(found) / len(found) for key, found in sorted(values.items())}


def _detail_counts(records: Sequence[dict]) -> dict[str, dict[str, int]]:
    """How often each value of a text detail occurs (e.g. how choice answers were matched)."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        for key, value in (record.get("details") or {}).items():
            if isinstance(value, str):
                values = counts.setdefault(key, {})
                values[value] = values.get(value, 0) + 1
    return {key: dict(sorted(values.items())) for key, values in sorted(counts.items())}


def summarize(records: Sequence[dict]) -> dict:
    """{"overall": group, "by_language": {value: group}, ...}; empty groups are left out."""
    summary: dict = {"overall": group_summary(records) if records else None}
    for field, key in GROUPINGS.items():
        members: dict[str, list[dict]] = {}
        for record in records:
            if record.get(field):
                members.setdefault(str(record[field]), []).append(record)
        summary[key] = {value: group_summary(group) for value, group in sorted(members.items())}
    return summary


def build_metrics(run_record: dict, records: Sequence[dict], expected_items: int) -> dict:
    """metrics.json's content: the traceability fields of run.json, how the interval was made, the scores."""
    trace_keys = (
        "task", "model", "data", "prompt", "metric_version", "judge", "command", "date", "qilin_version",
    )  # fmt: skip
    return {
        **{key: run_record.get(key) for key in trace_keys},
        "shard": run_record["identity"].get("shard"),
        "items": expected_items,
        "answered": len(records),
        "complete": len(records) == expected_items,
        "refused": sum(1 for record in records if record.get("error")),
        "interval": {
            "method": "percentile bootstrap of the mean",
            "confidence": stats.CONFIDENCE,
            "resamples": stats.BOOTSTRAP_RESAMPLES,
            "seed": stats.BOOTSTRAP_SEED,
        },
        **summarize(records),
    }


def write_metrics(directory: Path, metrics: dict) -> Path:
    path = directory / METRICS_FILE
    path.write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def read_metrics(directory: Path) -> dict | None:
    path = directory / METRICS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
