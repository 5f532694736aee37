"""report.md and scores.png: a run's metrics as Markdown tables and a bar chart with the intervals."""

from __future__ import annotations

from pathlib import Path

from qilin_med_vl.eval.summary import GROUPINGS

REPORT_FILE = "report.md"
CHART_FILE = "scores.png"
GROUPING_TITLES = {
    "by_language": "Language",
    "by_answer_type": "Answer type",
    "by_modality": "Modality",
    "by_content_type": "Content type",
}


def format_group(group: dict) -> str:
    low, high = group["ci95"]
    return f"{group['mean']:.4f} [{low:.4f}, {high:.4f}]"


def _table(title: str, rows: dict[str, dict]) -> list[str]:
    detail_keys = sorted({key for group in rows.values() for key in group["details"]})
    lines = [
        f"| {title} | items | score [95% CI] | " + " | ".join(detail_keys) + (" |" if detail_keys else ""),
        "|---|---:|---|" + "---:|" * len(detail_keys),
    ]
    for name, group in rows.items():
        details = [f"{group['details'][key]:.4f}" if key in group["details"] else "" for key in detail_keys]
        cells = [name, str(group["count"]), format_group(group), *details]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_report(metrics: dict) -> str:
    model = metrics.get("model") or {}
    prompt = metrics.get("prompt") or {}
    interval = metrics["interval"]
    lines = [
        f"# Evaluation: {metrics.get('task')}",
        "",
        f"- model: {_describe_model(model)}",
        f"- data: {(metrics.get('data') or {}).get('path')} "
        f"(items sha256 {(metrics.get('data') or {}).get('items_sha256', '')[:16]}...)",
        f"- items answered: {metrics['answered']} of {metrics['items']}"
        + ("" if metrics["complete"] else " (incomplete: rerun the command to finish)"),
        f"- refused by the backend: {metrics['refused']}",
        f"- prompt version: {prompt.get('version')}; metric versions: {_versions(metrics.get('metric_version'))}",
        f"- command: `{metrics.get('command')}`",
        f"- date: {metrics.get('date')}; qilin {metrics.get('qilin_version')}",
        f"- intervals: {interval['method']}, {interval['resamples']} resamples, seed {interval['seed']}",
        "",
    ]
    if metrics["overall"] is None:
        return "\n".join([*lines, "No item has been answered yet.", ""])
    lines += ["## Overall", "", *_table("group", {"all": metrics["overall"]}), ""]
    for key in GROUPINGS.values():
        if metrics.get(key):
            lines += [
                f"## By {GROUPING_TITLES[key].lower()}",
                "",
                *_table(GROUPING_TITLES[key], metrics[key]),
                "",
            ]
    lines += _judge_section(metrics)
    lines += [f"![scores per group]({CHART_FILE})", ""]
    return "\n".join(lines)


def _judge_section(metrics: dict) -> list[str]:
    """The LLM judge's verdicts on open answers beside the rule-based scores, per group that has any."""
    judge = metrics.get("judge")
    rows = [(label, group["judge"]) for label, group in chart_rows(metrics) if group.get("judge")]
    if judge is None or not rows:
        return []
    lines = [
        "## LLM judge (open answers)",
        "",
        f"- judge: {judge.get('model')} at {judge.get('endpoint')}; prompt version {judge.get('prompt_version')}",
        "- agreement: share of judged items where the verdict equals (rule score >= 0.5); kappa: Cohen's "
        "kappa of the two (n/a when chance agreement is 1)",
        "",
        "| group | asked | verdicts | unreadable | judge mean | rule mean | agreement | kappa |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, summary in rows:
        numbers = [_number(summary[key]) for key in ("mean", "rule_mean", "agreement", "kappa")]
        cells = [label, str(summary["asked"]), str(summary["count"]), str(summary["unreadable"]), *numbers]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _versions(versions) -> str:
    if isinstance(versions, dict):
        return ", ".join(f"{key} {value}" for key, value in versions.items())
    return str(versions)


def _describe_model(model: dict) -> str:
    if model.get("kind") == "endpoint":
        return f"{model.get('model')} at {model.get('endpoint')}"
    return f"{model.get('directory')} (weights sha256 {str(model.get('weights_sha256', ''))[:16]}...)"


def chart_rows(metrics: dict) -> list[tuple[str, dict]]:
    """(label, group) for every bar: overall first, then each grouping's values."""
    rows = [("all", metrics["overall"])]
    for key in GROUPINGS.values():
        rows += [
            (f"{GROUPING_TITLES[key].lower()}: {name}", group) for name, group in metrics.get(key, {}).items()
        ]
    return rows


def draw_chart(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    rows = chart_rows(metrics)
    means = [group["mean"] for _, group in rows]
    below = [group["mean"] - group["ci95"][0] for _, group in rows]
    above = [group["ci95"][1] - group["mean"] for _, group in rows]
    figure, axes = pyplot.subplots(figsize=(7, 0.9 + 0.35 * len(rows)))
    positions = list(range(len(rows)))[::-1]  # overall on top
    axes.barh(positions, means, xerr=[below, above], color="#4c78a8", ecolor="#222222", capsize=3)
    axes.set_yticks(positions, [f"{label} (n={group['count']})" for label, group in rows])
    axes.set_xlim(0, 1.02)  # room for an interval reaching 1
    axes.set_xlabel("mean score, with 95% bootstrap interval")
    axes.set_title(str(metrics.get("task")))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def write_report(directory: Path, metrics: dict) -> Path:
    path = directory / REPORT_FILE
    path.write_text(render_report(metrics), encoding="utf-8")
    if metrics["overall"] is not None:
        draw_chart(metrics, directory / CHART_FILE)
    return path
