"""Prompts for benchmark items, rendered from the shipped `resources/eval_prompts.json`.

The templates are data, one per answer type and language with per-task overrides, and carry a version
string that runs record so a score can be traced to the exact wording that produced it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from qilin_med_vl.eval.items import CHOICE, EvalItem

PROMPTS_RESOURCE = "eval_prompts.json"


@cache
def _prompts() -> dict:
    return json.loads(resources.files("qilin_med_vl.resources").joinpath(PROMPTS_RESOURCE).read_text("utf-8"))


def prompts_version() -> str:
    return _prompts()["version"]


def template(task_name: str, language: str, answer_type: str) -> str:
    prompts = _prompts()
    override = prompts["tasks"].get(task_name, {}).get(language, {})
    return override.get(answer_type) or prompts["default"][language][answer_type]


def render_prompt(task_name: str, item: EvalItem) -> str:
    options = ""
    if item.answer_type == CHOICE:
        line = _prompts()["option_line"]
        options = "\n".join(line.format(letter=letter, text=text) for letter, text in item.choices.items())
    return template(task_name, item.language, item.answer_type).format(
        question=item.question, options=options
    )
