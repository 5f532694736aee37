"""An optional LLM-judge check of open answers: the prompt (shipped data) and the reading of the verdict.

The judge is asked, in the item's language, whether the prediction means the same as the reference
and must reply with one verdict word; the first verdict word of its reply (longest first, so
"incorrect" is never read as "correct" and 不正确 never as 正确) gives 1.0 or 0.0, anything else None.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from qilin_med_vl.eval.items import EvalItem
from qilin_med_vl.eval.normalize import normalize_text

JUDGE_RESOURCE = "eval_judge_prompt.json"
JUDGE_LANGUAGES = ("zh", "en")  # the languages the shipped prompt has a template for


@cache
def _judge() -> dict:
    return json.loads(resources.files("qilin_med_vl.resources").joinpath(JUDGE_RESOURCE).read_text("utf-8"))


def judge_version() -> str:
    return _judge()["version"]


def judge_templates() -> dict[str, str]:
    """The template text per language, as run.json records it."""
    return {language: _judge()[language] for language in JUDGE_LANGUAGES}


def judge_prompt(item: EvalItem, prediction: str) -> str:
    return _judge()[item.language].format(
        question=item.question, reference=item.reference, prediction=prediction
    )


@cache
def _verdict_pattern() -> re.Pattern:
    words = sorted(_judge()["verdicts"], key=len, reverse=True)
    return re.compile("|".join(rf"(?<![a-z]){re.escape(word)}(?![a-z])" for word in words))


def parse_verdict(reply: str) -> float | None:
    match = _verdict_pattern().search(normalize_text(reply))
    return _judge()["verdicts"][match.group(0)] if match else None
