"""Reason codes for conversation rounds and conversations that `qilin data converse` drops.

All start with `conversation_`, so the build's manifest tells them apart from the builder's and the
translator's codes. Each has one sentence, the one docs/conversations_and_review.md lists. Codes never
change meaning: add new ones instead.
"""

from __future__ import annotations

# one round (question + answer) fails a grounding check of its answer (grounding.py)
NUMBER_NOT_IN_SOURCE = "conversation_number_not_in_source"
UNIT_NOT_IN_SOURCE = "conversation_unit_not_in_source"
SIDE_NOT_IN_SOURCE = "conversation_side_not_in_source"
GLOSSARY_TERM_NOT_IN_SOURCE = "conversation_glossary_term_not_in_source"
ROUND_OVER_LIMIT = "conversation_round_over_limit"

# a whole conversation
TOO_FEW_ROUNDS = "conversation_too_few_rounds"
UNPARSEABLE = "conversation_unparseable"
TRUNCATED = "conversation_truncated"
REQUEST_FAILED = "conversation_request_failed"
REQUEST_REJECTED = "conversation_request_rejected"

REASON_DESCRIPTIONS: dict[str, str] = {
    NUMBER_NOT_IN_SOURCE: "the answer holds a number the source text does not",
    UNIT_NOT_IN_SOURCE: "the answer writes a number with a unit the source text does not give it",
    SIDE_NOT_IN_SOURCE: "the answer names a side (left, right, both) the source text does not",
    GLOSSARY_TERM_NOT_IN_SOURCE: "the answer names a glossary term the source text does not",
    ROUND_OVER_LIMIT: "the model gave more rounds than max_rounds; the extra ones are left out",
    TOO_FEW_ROUNDS: "fewer than min_rounds rounds were left after the grounding checks",
    UNPARSEABLE: "the answer is not the JSON list of {question, answer} rounds the prompt asks for",
    TRUNCATED: "the answer was cut off by the token limit",
    REQUEST_FAILED: "the service kept failing (429, 5xx, timeouts, connection errors) after every retry",
    REQUEST_REJECTED: "the service refused this source text (HTTP 400, 413 or 422)",
}
