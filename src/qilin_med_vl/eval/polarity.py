"""Yes/no polarity of a closed answer, read from its first clause with the shipped lexicon.

Only the first clause counts ("不是，存在异常" answers no); within it, lexicon forms are matched on
whole words, longest first ("不包含" is no, never the "包含" inside it), and the first form that is
not neutral decides. Neutral forms (是否, 无法, 正常, 异常, 健康 ...) decide nothing, so condition words
are never read as yes or no. A reference has a polarity only when its first clause *opens* with a
yes/no form ("是的，可见结节" is yes; "肺部有结节" is an open answer, not a yes).
"""

from __future__ import annotations

from functools import cache

from qilin_med_vl.eval.lexicons import NEUTRAL, polarity_lexicon
from qilin_med_vl.eval.normalize import first_clause, join_words, match_phrases, words


@cache
def _table() -> dict[str, str]:
    return {join_words(words(form)): value for form, value in polarity_lexicon().value_of_form.items()}


def _decisive(text: str) -> list[tuple[int, str]]:
    """(word position, YES|NO) of every non-neutral lexicon form in the first clause."""
    found = match_phrases(words(first_clause(text)), _table())
    return [(start, value) for start, _end, value in found if value != NEUTRAL]


def prediction_polarity(text: str) -> str | None:
    """YES, NO, or None when the first clause holds no yes/no word."""
    decisive = _decisive(text)
    return decisive[0][1] if decisive else None


def reference_polarity(text: str) -> str | None:
    """YES or NO when the reference opens with a yes/no word, else None (it is scored by exact match)."""
    found = match_phrases(words(first_clause(text)), _table())
    if found and found[0][0] == 0 and found[0][2] != NEUTRAL:
        return found[0][2]
    return None
