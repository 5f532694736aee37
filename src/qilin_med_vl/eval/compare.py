"""`qilin eval compare`: runs side by side, and a paired test of each run against the first one.

The table has one row per group (all, each language, answer type, modality, content type) and one
column per run: mean score, 95% bootstrap interval and item count. For each later run, the items it
shares with the first run (same task, same item id) give per-item differences (later minus first): their mean,
a bootstrap interval of that mean and the two-sided p-value of the sign-flip permutation test
(see `stats`). Runs of another task are not paired: their item ids name other questions.

Where the optional LLM judge gave verdicts in any run, a second part does the same for the judge: per
group, the judge's mean next to the rule-based mean over the same items, and each later run's paired
difference of verdicts (1 or 0) on the items the judge read in both runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval import stats
from qilin_med_vl.eval.judge import JUDGE_DETAIL
from qilin_med_vl.eval.predictions import PREDICTIONS_FILE, latest_per_id, read_predictions
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
    verdicts: dict[str, float]  # item id -> the judge's verdict, for items with a readable one


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
    entries = latest_per_id(read_predictions(folder / PREDICTIONS_FILE))
    scores = {entry["id"]: float(entry["score"]) for entry in entries}
    verdicts = {
        entry["id"]: float(verdict)
        for entry in entries
        if (verdict := (entry.get("details") or {}).get(JUDGE_DETAIL)) is not None
    }
    return Run(folder, folder.name or str(folder), record, metrics, scores, verdicts)


def paired(baseline: Run, other: Run, judged: bool = False) -> PairedResult:
    """`other` minus `baseline` per shared item: of the scores, or with `judged` of the judge's verdicts."""
    first, second = (baseline.verdicts, other.verdicts) if judged else (baseline.scores, other.scores)
    shared = sorted(set(first) & set(second))
    if not shared:
        return PairedResult(baseline.label, other.label, 0, None, None)
    differences = [second[item] - first[item] for item in shared]
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
    lines += ["", *_group_table(runs, labels, _score_cell)]
    if len(runs) > 1:
        lines += [
            "",
            f"## Paired differences against {labels[0]}",
            "",
            "Per-item score differences on the items both runs answered; p-value: two-sided sign-flip "
            f"permutation test ({stats.PERMUTATION_RESAMPLES} random flips, exact when few items); "
            "interval: percentile bootstrap of the mean difference.",
            "",
            *_paired_table(runs, labels, judged=False),
        ]
    if any(run.verdicts for run in runs):
        lines += [
            "",
            "## LLM judge (open answers)",
            "",
            "Per group: the judge's mean verdict, and in brackets the rule-based mean over the same items.",
            "",
            *_group_table(runs, labels, _judge_cell),
        ]
        if len(runs) > 1:
            lines += [
                "",
                f"Paired differences of the judge's verdicts (1 or 0) against {labels[0]}, on the items the "
                "judge read in both runs; same test and interval as above.",
                "",
                *_paired_table(runs, labels, judged=True),
            ]
    return "\n".join(lines) + "\n"


def _score_cell(group: dict) -> str:
    return f"{format_group(group)} (n={group['count']})"


def _judge_cell(group: dict) -> str:
    judged = group.get("judge")
    if not judged or judged["mean"] is None:
        return ""
    return f"{judged['mean']:.4f} (rule {judged['rule_mean']:.4f}, n={judged['count']})"


def _group_table(runs: Sequence[Run], labels: Sequence[str], cell: Callable[[dict], str]) -> list[str]:
    """One row per group any run has a non-empty cell for, one column per run."""
    rows: dict[str, dict[int, str]] = {}
    for position, run in enumerate(runs):
        if run.metrics.get("overall") is None:
            continue
        for name, group in chart_rows(run.metrics):
            text = cell(group)
            if text:
                rows.setdefault(name, {})[position] = text
    lines = ["| group | " + " | ".join(labels) + " |", "|---|" + "---|" * len(runs)]
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(cells.get(p, "") for p in range(len(runs))) + " |")
    return lines


def _paired_table(runs: Sequence[Run], labels: Sequence[str], judged: bool) -> list[str]:
    lines = ["| run | shared items | mean difference [95% CI] | p-value |", "|---|---:|---|---:|"]
    for label, run in zip(labels[1:], runs[1:], strict=True):
        if run.record.get("task") != runs[0].record.get("task"):
            lines.append(f"| {label} | | another task: item ids are not comparable | |")
            continue
        result = paired(runs[0], run, judged)
        if result.test is None:
            lines.append(f"| {label} | 0 | no shared items | |")
            continue
        kind = "exact" if result.test.exact else f"{result.test.flips} flips"
        lines.append(
            f"| {label} | {result.shared} | {result.test.mean_difference:+.4f} "
            f"[{result.interval.low:+.4f}, {result.interval.high:+.4f}] | {result.test.p_value:.4g} ({kind}) |"
        )
    return lines


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
