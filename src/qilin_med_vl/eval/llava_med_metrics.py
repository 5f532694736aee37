"""LLaVA-Med's published VQA formulas (its `llava/eval/run_eval_batch.py`), so numbers sit beside theirs.

Reimplemented from their description, quirks kept on purpose:
- `llava_normalize`: lower case; the punctuation ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! is deleted
  when the text holds it next to a space (or holds a digit,digit group) and replaced by a space
  otherwise; full stops not followed by a digit are deleted (at most 32 of them: their call passes
  re.UNICODE where the count goes); number words none/zero..ten become digits; a/an/the are dropped;
  commas removed. (Their contraction table, "dont" -> "don't", is not reproduced.)
- tokens are the space-split words of the text normalised twice (their F1 helper normalises again),
  so Chinese without spaces is one token.
- open: recall = tp / (tp + fn) with tp = the prediction's count of every word both share, fn = the
  reference's count of its words the prediction lacks (0 when either side is empty or tp = 0);
  precision = tp / (tp + fp) likewise and F1 from the two; their "exact match" = distinct reference
  words found in the prediction / prediction words; `open_hit` = reference text is a substring.
  The item score is the recall, the open metric their paper reports.
- closed: 1 when the normalised reference is a substring of the normalised prediction ("no" is found
  in "not" and in "know"). Their earlier `run_eval.py` left wrong yes/no answers out of the
  denominator; that bug, fixed in `run_eval_batch.py`, is not reproduced.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_LIMIT = 32  # re.UNICODE's value, which their re.sub call receives as `count`
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})


def llava_normalize(text: str) -> str:
    text = text.lower()
    spaced_or_numeric = _DIGIT_COMMA_DIGIT.search(text) is not None
    result = text
    for mark in _PUNCTUATION:
        deleted = spaced_or_numeric or (mark + " " in text) or (" " + mark in text)
        result = result.replace(mark, "" if deleted else " ")
    result = _PERIOD_NOT_BEFORE_DIGIT.sub("", result, count=_PERIOD_LIMIT)
    kept = [_NUMBER_WORDS.get(word, word) for word in result.split()]
    return " ".join(word for word in kept if word not in _ARTICLES).replace(",", "")


@dataclass(frozen=True)
class LlavaOpen:
    recall: float
    precision: float
    f1: float
    exact: float  # their "exact match score"
    open_hit: float


def llava_open(prediction: str, reference: str) -> LlavaOpen:
    pred, ref = llava_normalize(prediction), llava_normalize(reference)
    # their F1 and exact-match helpers normalise the already normalised texts once more
    pred_counts = Counter(llava_normalize(pred).split())
    ref_counts = Counter(llava_normalize(ref).split())
    pred_total = sum(pred_counts.values())
    exact = sum(1 for word in ref_counts if word in pred_counts) / pred_total if pred_total else 0.0
    open_hit = 1.0 if ref in pred else 0.0
    tp = sum(count for word, count in pred_counts.items() if word in ref_counts)
    fp = pred_total - tp
    fn = sum(count for word, count in ref_counts.items() if word not in pred_counts)
    if not pred_counts or not ref_counts or tp == 0:
        return LlavaOpen(0.0, 0.0, 0.0, exact, open_hit)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return LlavaOpen(recall, precision, 2 * precision * recall / (precision + recall), exact, open_hit)


def llava_closed(prediction: str, reference: str) -> float:
    return 1.0 if llava_normalize(reference) in llava_normalize(prediction) else 0.0
