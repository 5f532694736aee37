"""The prompt and metric versions run.json records, so numbers from different wording or formulas differ.

Benchmark tasks (the `--task` registry) are asked with the shipped prompt templates and scored by
`qilin_med_vl.eval.scoring`, whose versions are recorded with the templates' text. A task from
--task-factory prompts and scores in its own code, which the record names instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from qilin_med_vl.eval.items import EvalItem, Task
from qilin_med_vl.eval.prompts import prompts_version, template
from qilin_med_vl.eval.scoring import metric_versions
from qilin_med_vl.eval.tasks.base import BenchmarkTask


def _own_code(task: Task) -> str:
    return f"defined by {type(task).__module__}.{type(task).__qualname__}"


def metric_version(task: Task) -> dict[str, str]:
    if isinstance(task, BenchmarkTask):
        return metric_versions()
    return {"metrics": _own_code(task)}


def prompt_record(task: Task, items: Sequence[EvalItem], prompts: Sequence[str], digest: str) -> dict:
    """{"version", "text", "example", "sha256"}: for benchmark tasks `text` holds the templates used,
    per language and answer type; for others, the first item's prompt."""
    if isinstance(task, BenchmarkTask):
        used = sorted({(item.language, item.answer_type) for item in items})
        text: dict | str = {}
        for language, answer_type in used:
            text.setdefault(language, {})[answer_type] = template(task.name, language, answer_type)
        version = prompts_version()
    else:
        text, version = prompts[0], _own_code(task)
    return {"version": version, "text": text, "example": prompts[0], "sha256": digest}
