"""Keep/drop decisions on the English texts of a candidate, each drop with a reason code.

Measured on the source (English) text before anything is translated, so no request is paid for a
sample that would be dropped anyway (paper 3.3: "samples with overly brief textual descriptions or
those impractical for translation" are discarded).

- `text_too_short`: a field shorter than its minimum, in characters after stripping. Defaults
  (`DEFAULT_MIN_CHARS`): caption 10, inline 10, context 0 (optional), question 5, answer 1 (answers
  such as "3" or "No" are legitimate), choice 1 (each PMC-VQA choice). An empty caption is the
  extreme case. A sample whose texts are all empty is always too short.
- `text_too_long`: a field longer than `max_chars` (default 16,000 characters, several times the
  longest context of the paper's Table 1): impractical to translate in one request.
- `malformed_record`: a PMC-VQA sample built in `choice` format without a resolvable answer letter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qilin_med_vl.data import records
from qilin_med_vl.data.records import PMC_VQA, Candidate

DEFAULT_MIN_CHARS: dict[str, int] = {
    "caption": 10,
    "inline": 10,
    "context": 0,
    "question": 5,
    "answer": 1,
    "choice": 1,
}
DEFAULT_MAX_CHARS = 16_000


@dataclass(frozen=True)
class TextFilterSettings:
    min_chars: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIN_CHARS))
    max_chars: int = DEFAULT_MAX_CHARS


def _threshold_key(field_name: str) -> str:
    return "choice" if field_name.startswith("choice_") else field_name


def check_texts(
    candidate: Candidate, fields: tuple[str, ...], settings: TextFilterSettings
) -> tuple[str, str] | None:
    """(reason, detail) when the candidate must be dropped for its texts, else None."""
    texts = candidate.row.texts
    for name in fields:
        value = texts.get(name, "")
        minimum = settings.min_chars.get(_threshold_key(name), 0)
        if len(value) < minimum:
            return records.TEXT_TOO_SHORT, f"{name} has {len(value)} characters, fewer than {minimum}"
        if len(value) > settings.max_chars:
            return (
                records.TEXT_TOO_LONG,
                f"{name} has {len(value)} characters, more than {settings.max_chars}",
            )
    if not any(texts.get(name, "") for name in fields):
        return records.TEXT_TOO_SHORT, f"all of {', '.join(fields)} are empty"
    if candidate.row.source == PMC_VQA and any(name.startswith("choice_") for name in fields):
        if candidate.row.answer_label is None:
            return records.MALFORMED_RECORD, "no answer letter (Answer_label) for the choice format"
    return None
