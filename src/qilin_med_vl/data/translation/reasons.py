"""Reason codes for texts the translator drops: short stable strings the manifest counts records under.

All start with `translation_`, so a manifest tells them apart from the builder's filter reasons at a
glance; `translation_empty` means what the builder's code of the same name means (an empty translation).

Each code has one sentence explaining it; the sentence is what the retry prompt tells the model and what
docs/translation.md lists. Codes never change meaning: add new ones instead.
"""

from __future__ import annotations

# quality checks on an answer (translation_checks.py); a failed check is retried once with the reason
NOT_CHINESE = "translation_not_chinese"
NUMBER_MISSING = "translation_number_missing"
UNIT_MISSING = "translation_unit_missing"
LENGTH_RATIO_LOW = "translation_length_ratio_low"
LENGTH_RATIO_HIGH = "translation_length_ratio_high"
GLOSSARY_TERM_MISSING = "translation_glossary_term_missing"
EMPTY_OUTPUT = "translation_empty"
OUTPUT_TRUNCATED = "translation_truncated"

# the service never gave a usable answer (openai_translator.py); not retried with a reason
REQUEST_FAILED = "translation_request_failed"
REQUEST_REJECTED = "translation_request_rejected"

# backend `memory`: the text has no translation in the memory (nothing is asked of any service)
NOT_IN_MEMORY = "translation_not_in_memory"

REASON_DESCRIPTIONS: dict[str, str] = {
    NOT_CHINESE: "the answer is not mostly Chinese: too much of it is left in English",
    NUMBER_MISSING: "a number of the English text is missing from the answer",
    UNIT_MISSING: "a number of the English text lost its unit, or the unit changed",
    LENGTH_RATIO_LOW: "the answer is too short for the English text: something was left out",
    LENGTH_RATIO_HIGH: "the answer is too long for the English text: something was added",
    GLOSSARY_TERM_MISSING: "a glossary term is not rendered with the glossary's Chinese",
    EMPTY_OUTPUT: "the answer is empty",
    OUTPUT_TRUNCATED: "the answer was cut off by the token limit",
    REQUEST_FAILED: "the service kept failing (429, 5xx, timeouts, connection errors) after every retry",
    REQUEST_REJECTED: "the service refused this text (HTTP 400, 413 or 422), so it cannot be translated",
    NOT_IN_MEMORY: "backend `memory` found no translation of this text in the translation memory",
}
