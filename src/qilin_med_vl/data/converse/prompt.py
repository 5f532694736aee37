"""The chat messages that ask a model for one multi-turn conversation about a figure, and their parsing.

As LLaVA-Med generated its instructions from captions, the model is given only the figure's source text
(caption, or a case report's context, inline text and question/answer) and never the image, and asks
itself the questions a clinician would ask of the image, answering each from the text alone.

PROMPT_VERSION is part of every conversation-memory key (with the round range): change it whenever the
messages change in a way that should not reuse earlier answers.
"""

from __future__ import annotations

import json
import re

PROMPT_VERSION = "converse-zh-v1"

SYSTEM_PROMPT = (
    "You are a medical imaging specialist helping to build a Chinese teaching dataset. The user sends the "
    "text that accompanies one medical figure in a case report or article: its caption and/or the case "
    "context, the sentence describing the figure, and a question with its answer. You cannot see the "
    "image; the text is all you know about it.\n\n"
    "Write a conversation of {min_rounds} to {max_rounds} rounds between a clinician looking at this image "
    "and an assistant. Each question is one a clinician would ask about the image (the modality, the "
    "finding, where it is, its size, what it suggests). Each answer must be answerable from the text "
    "alone: never invent a number, a measurement, a side (left/right) or a diagnosis the text does not "
    "give; keep numbers as digits and units as the text writes them. Speak as if looking at the image, "
    "and do not mention the text. Write everything in fluent Simplified Chinese, keeping abbreviations "
    "such as CT and MRI.\n\n"
    'Answer with JSON only: a list of rounds, [{{"question": "...", "answer": "..."}}, ...].'
)

_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL)


def conversation_messages(source_text: str, min_rounds: int, max_rounds: int) -> list[dict[str, str]]:
    system = SYSTEM_PROMPT.format(min_rounds=min_rounds, max_rounds=max_rounds)
    return [{"role": "system", "content": system}, {"role": "user", "content": source_text}]


def memory_prompt_version(prompt_version: str, min_rounds: int, max_rounds: int) -> str:
    """The prompt-version part of a memory key: the round range is part of the prompt."""
    return f"{prompt_version}/rounds-{min_rounds}-{max_rounds}"


def parse_rounds(content: str) -> list[tuple[str, str]] | None:
    """[(question, answer), ...] from the model's answer, or None when it is not the JSON asked for.

    Accepted: a JSON list of {"question", "answer"} objects, optionally in a ``` fence, or an object
    holding that list under "conversation" or "rounds".
    """
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        data = data.get("conversation", data.get("rounds"))
    if not isinstance(data, list) or not data:
        return None
    rounds = []
    for item in data:
        if not isinstance(item, dict):
            return None
        question, answer = item.get("question"), item.get("answer")
        if not isinstance(question, str) or not isinstance(answer, str):
            return None
        if not question.strip() or not answer.strip():
            return None
        rounds.append((question.strip(), answer.strip()))
    return rounds
