"""Closed or open, for benchmarks whose files do not say: a question is closed when its answer is yes or no."""

from __future__ import annotations

from qilin_med_vl.eval.items import CLOSED, OPEN
from qilin_med_vl.eval.normalize import normalize_text

YES_NO_ANSWERS = frozenset({"yes", "no"})


def answer_type_of(answer: str) -> str:
    return CLOSED if normalize_text(answer).rstrip(".") in YES_NO_ANSWERS else OPEN
