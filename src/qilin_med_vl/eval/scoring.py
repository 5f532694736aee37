"""Scores one prediction against one item, by the item's answer type and the chosen metric style.

Every ItemScore carries `details["exact"]` (1.0 when the normalised prediction equals the normalised
reference; for choice items, when the picked letter is the right one) and, by type:
- closed: `rule` ("polarity" when the reference opens with a yes/no word, else "exact"),
  `reference_polarity`, `prediction_polarity`; score = polarities agree (a prediction without one
  scores 0), or exact match.
- open: `recall` (the score), `precision`, `f1` on canonical words (jieba words for Chinese), plus
  `recall_char`, `f1_char` on characters for Chinese (without the synonym table).
- choice: `matched_by` (letter | text | nearest | none), `predicted` (the letter or null).
- caption: `bleu4`, `rouge_l` (the score) on characters for Chinese, words for English.
With metric_style "llava-med", open and closed items use LLaVA-Med's formulas instead (details add
`open_hit` for open items); choice and caption items, which LLaVA-Med does not score, stay as above.
Formulas: docs/evaluation.md, "Scoring".
"""

from __future__ import annotations

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.caption_metrics import bleu4, rouge_l
from qilin_med_vl.eval.choice import match_choice
from qilin_med_vl.eval.items import CAPTION, CHOICE, CLOSED, METRIC_STYLES, OPEN, EvalItem, ItemScore
from qilin_med_vl.eval.lexicons import polarity_lexicon, synonyms
from qilin_med_vl.eval.llava_med_metrics import llava_closed, llava_open
from qilin_med_vl.eval.normalize import canonical_words, characters, join_words, words
from qilin_med_vl.eval.overlap import overlap
from qilin_med_vl.eval.polarity import prediction_polarity, reference_polarity

METRIC_VERSION = "qilin-eval-metrics/1"
QILIN, LLAVA_MED = METRIC_STYLES
POLARITY_RULE, EXACT_RULE = "polarity", "exact"
# the details every item of an answer type carries, whatever the metric style (the harness averages them)
DETAIL_KEYS = {
    OPEN: ("exact", "recall", "precision", "f1"),
    CLOSED: ("exact", "rule"),
    CHOICE: ("exact", "matched_by", "predicted"),
    CAPTION: ("exact", "bleu4", "rouge_l"),
}


def metric_versions() -> dict[str, str]:
    """Everything that decides a score, for metrics.json: the formulas and the shipped word lists."""
    return {
        "metrics": METRIC_VERSION,
        "synonyms": synonyms().version,
        "polarity": polarity_lexicon().version,
    }


def exact_match(prediction: str, reference: str) -> float:
    return 1.0 if join_words(canonical_words(prediction)) == join_words(canonical_words(reference)) else 0.0


def score_closed(prediction: str, reference: str) -> ItemScore:
    exact = exact_match(prediction, reference)
    expected = reference_polarity(reference)
    if expected is None:
        return ItemScore(exact, {"exact": exact, "rule": EXACT_RULE})
    answered = prediction_polarity(prediction)
    details = {
        "exact": exact,
        "rule": POLARITY_RULE,
        "reference_polarity": expected,
        "prediction_polarity": answered,
    }
    return ItemScore(1.0 if answered == expected else 0.0, details)


def score_open(prediction: str, reference: str, language: str) -> ItemScore:
    predicted, expected = canonical_words(prediction), canonical_words(reference)
    by_word = overlap(predicted, expected)
    details = {
        "exact": exact_match(prediction, reference),
        "recall": by_word.recall,
        "precision": by_word.precision,
        "f1": by_word.f1,
    }
    if language == "zh":
        # surface overlap: characters of the normalised words, before synonyms merge 肺部 into "lung"
        by_char = overlap(characters(words(prediction)), characters(words(reference)))
        details.update(recall_char=by_char.recall, f1_char=by_char.f1)
    return ItemScore(by_word.recall, details)


def score_choice(prediction: str, reference_letter: str, choices: dict[str, str]) -> ItemScore:
    match = match_choice(prediction, choices)
    correct = 1.0 if match.letter == reference_letter else 0.0
    return ItemScore(correct, {"exact": correct, "matched_by": match.matched_by, "predicted": match.letter})


def caption_tokens(text: str, language: str) -> list[str]:
    return characters(words(text)) if language == "zh" else words(text)


def score_caption(prediction: str, reference: str, language: str) -> ItemScore:
    predicted, expected = caption_tokens(prediction, language), caption_tokens(reference, language)
    rouge = rouge_l(predicted, expected)
    details = {
        "exact": exact_match(prediction, reference),
        "bleu4": bleu4(predicted, expected),
        "rouge_l": rouge,
    }
    return ItemScore(rouge, details)


def _score_llava_med(item: EvalItem, prediction: str) -> ItemScore:
    if item.answer_type == CLOSED:
        hit = llava_closed(prediction, item.reference)
        return ItemScore(hit, {"exact": hit, "rule": "substring"})
    result = llava_open(prediction, item.reference)
    details = {
        "exact": result.exact,
        "recall": result.recall,
        "precision": result.precision,
        "f1": result.f1,
        "open_hit": result.open_hit,
    }
    return ItemScore(result.recall, details)


def score_item(item: EvalItem, prediction: str, metric_style: str = QILIN) -> ItemScore:
    if metric_style not in METRIC_STYLES:
        raise QilinError(f"metric style {metric_style!r} is not one of {', '.join(METRIC_STYLES)}")
    if item.answer_type == CHOICE:
        return score_choice(prediction, item.reference, item.choices)
    if item.answer_type == CAPTION:
        return score_caption(prediction, item.reference, item.language)
    if metric_style == LLAVA_MED:
        return _score_llava_med(item, prediction)
    if item.answer_type == CLOSED:
        return score_closed(prediction, item.reference)
    if item.answer_type == OPEN:
        return score_open(prediction, item.reference, item.language)
    raise QilinError(f"item {item.id!r}: answer type {item.answer_type!r} cannot be scored")
