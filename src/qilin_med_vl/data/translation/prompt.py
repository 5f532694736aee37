"""The chat messages that ask a model for one English→Chinese translation, and the retry that names a reason.

PROMPT_VERSION is part of every translation-memory key: change it whenever these messages change in a
way that should not reuse earlier answers.
"""

from __future__ import annotations

from qilin_med_vl.data.translation.checks import CheckFailure
from qilin_med_vl.data.translation.glossary import GlossaryMatch

PROMPT_VERSION = "zh-v1"

SYSTEM_PROMPT = (
    "You are a professional medical translator. Translate the English text the user sends into fluent, "
    "accurate Simplified Chinese as used in Chinese medical journals. Keep every number as digits, keep "
    "units (mg, mm, %, °C) with their numbers, keep abbreviations such as CT, MRI and figure labels such "
    "as (A) as they are. Translate everything else. Answer with the translation only: no notes, no "
    "quotation marks, no English."
)


def glossary_instruction(matches: list[GlossaryMatch]) -> str:
    lines = "\n".join(f"- {match.english}: {match.chinese[0]}" for match in matches)
    return f"Render these terms exactly with these Chinese terms:\n{lines}"


def translation_messages(
    source: str,
    glossary_matches: list[GlossaryMatch],
    rejected_output: str | None = None,
    failure: CheckFailure | None = None,
) -> list[dict[str, str]]:
    """Messages for a first attempt, or, with `failure`, for the one retry that says what was wrong."""
    system = SYSTEM_PROMPT
    if glossary_matches:
        system = f"{system}\n\n{glossary_instruction(glossary_matches)}"
    messages = [{"role": "system", "content": system}, {"role": "user", "content": source}]
    if failure is not None:
        messages.append({"role": "assistant", "content": rejected_output or ""})
        messages.append(
            {
                "role": "user",
                "content": (
                    f"This translation was rejected, reason {failure.reason}: {failure.instruction()}. "
                    "Translate the English text again, fixing this. Answer with the translation only."
                ),
            }
        )
    return messages
