"""`qilin eval compare`: runs side by side, and a paired test of each run against the first one.

The table has one row per group (all, each language, answer type, modality, content type) and one
column per run: mean score, 95% bootstrap interval and item count. For each later run, the items it
shares with the first run (same task, same item id) give per-item differences (later minus first): their mean,
a bootstrap interval of that mean and the two-sided p-value of the sign-flip permutation test
(see `stats`). Runs of another task are not paired: their item ids name other questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval import stats
from qilin_med_vl.eval.predictions import PREDICTIONS_FILE, read_predictions
from qilin_med_vl.eval.report import chart_rows, format_group
from qilin_med_vl.eval.run_record import read_run_record
from qilin_med_vl.eval.summary import read_metrics


@dataclass(frozen=True)
class Run:
    folder: Path
    label: str
    record: dict
    metrics: dict
    scores: dict[str, float]  # item id -> score


@dataclass(frozen=True)
class PairedResult:
    baseline: str
    other: str
    shared: int
    test: stats.PairedTest | None  # None when no item is shared
    interval: stats.Interval | None


def load_run(folder: Path) -> Run:
    if not folder.is_dir():
        raise QilinError(f"{folder}: no such folder")
    record = read_run_record(folder)
    metrics = read_metrics(folder)
    if record is None or metrics is None:
        raise QilinError(f"{folder}: not a finished `qilin eval` run (run.json and metrics.json needed)")
    scores = {entry["id"]: float(entry["score"]) for entry in read_predictions(folder / PREDICTIONS_FILE)}
    return Run(folder, folder.name or str(folder), record, metrics, scores)


def paired(baseline: Run, other: Run) -> PairedResult:
    shared = sorted(set(baseline.scores) & set(other.scores))
    if not shared:
        return PairedResult(baseline.label, other.label, 0, None, None)
    differences = [other.scores[item] - baseline.scores[item] for item in shared]
    return PairedResult(
        baseline.label,
        other.label,
        len(shared),
        stats.sign_flip_test(differences),
        stats.bootstrap_interval(differences),
    )


def render_comparison(runs: Sequence[Run]) -> str:
    labels = _unique_labels(runs)
    lines = ["# Comparison", ""]
    for label, run in zip(labels, runs, strict=True):
        lines.append(f"- **{label}**: task {run.record.get('task')}, {_model(run.record)}, `{run.folder}`")
    tasks = {run.record.get("task") for run in runs}
    if len(tasks) > 1:
        lines.append(f"- note: the runs are of different tasks ({', '.join(sorted(map(str, tasks)))})")
    rows: dict[str, dict[int, dict]] = {}
    for position, run in enumerate(runs):
        if run.metrics.get("overall") is None:
            continue
        for name, group in chart_rows(run.metrics):
            rows.setdefault(name, {})[position] = group
    lines += ["", "| group | " + " | ".join(labels) + " |", "|---|" + "---|" * len(runs)]
    for name, groups in rows.items():
        cells = [
            f"{format_group(groups[p])} (n={groups[p]['count']})" if p in groups else ""
            for p in range(len(runs))
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if len(runs) > 1:
        lines += [
            "",
            f"## Paired differences against {labels[0]}",
            "",
            "Per-item score differences on the items both runs answered; p-value: two-sided sign-flip "
            f"permutation test ({stats.PERMUTATION_RESAMPLES} random flips, exact when few items); "
            "interval: percentile bootstrap of the mean difference.",
            "",
            "| run | shared items | mean difference [95% CI] | p-value |",
            "|---|---:|---|---:|",
        ]
        for label, run in zip(labels[1:], runs[1:], strict=True):
            if run.record.get("task") != runs[0].record.get("task"):
                lines.append(f"| {label} | | another task: item ids are not comparable | |")
                continue
            result = paired(runs[0], run)
            if result.test is None:
                lines.append(f"| {label} | 0 | no shared items | |")
                continue
            kind = "exact" if result.test.exact else f"{result.test.flips} flips"
            lines.append(
                f"| {label} | {result.shared} | {result.test.mean_difference:+.4f} "
                f"[{result.interval.low:+.4f}, {result.interval.high:+.4f}] | {result.test.p_value:.4g} ({kind}) |"
            )
    return "\n".join(lines) + "\n"


def _model(record: dict) -> str:
    model = record.get("model") or {}
    if model.get("kind") == "endpoint":
        return f"model {model.get('model')} at {model.get('endpoint')}"
    return f"model {model.get('directory')}"


def _unique_labels(runs: Sequence[Run]) -> list[str]:
    labels = [run.label for run in runs]
    if len(set(labels)) == len(labels):
        return labels
    return [str(run.folder) for run in runs]
