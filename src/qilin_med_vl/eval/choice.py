"""Which option a multiple-choice answer picked: by letter, else by option text, else by nearest option.

1. letter: the answer is the letter alone ("B", "B.", "(B)", "[B]"), opens with it ("B. 肺炎", "(B) x",
   "B选项"), or names it after a cue ("答案是B", "选B", "选择：B", "the answer is (B)", "option B").
   A leading capital counts only when punctuation, a Chinese character or the end follows it, so
   "A 45-year-old man" or "CT shows" never read as a letter; after a cue a lower-case letter counts
   only in brackets ("the answer is a mass" is not A).
2. text: the normalised answer equals an option's normalised text, or contains option texts, the longest
   of which is taken (a tie between different options is no match); a Latin option must occur as
   whole words ("pneumonia" is not found in "pneumonias").
3. nearest: the option with the highest character Dice overlap 2·|A∩O| / (|A|+|O|) with the answer
   (characters of the normalised text, spaces left out); none when the best is 0 or tied.
`matched_by` says which rule decided (letter | text | nearest | none), so reports can count the
fallbacks separately.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from qilin_med_vl.eval.normalize import join_words, normalize_text, words

BY_LETTER, BY_TEXT, BY_NEAREST, BY_NONE = "letter", "text", "nearest", "none"
MATCH_RULES = (BY_LETTER, BY_TEXT, BY_NEAREST, BY_NONE)

_BARE = re.compile(r"^[\s(\[（【]*([A-Za-z])[\s)\]）】.:：,，。]*$")
_LEADING = re.compile(r"^[\s(\[（【]*([A-Z])(?:[)\]）】.:：、,，。]|(?=[\u3400-\u9fff])|$)")
# after a cue, a capital letter, or a letter of either case in brackets ("the answer is a mass" is no letter)
_CUE = re.compile(
    r"(?i:答案|选项|选择|应选|选|answer(?:\s+is)?|option|choice)\s*(?:是|为|:|：)?\s*"
    r"(?:[(\[（【]\s*([A-Za-z])\s*[)\]）】]|([A-Z])(?![A-Za-z]))"
)


@dataclass(frozen=True)
class ChoiceMatch:
    letter: str | None
    matched_by: str  # one of MATCH_RULES


def _letter(answer: str, letters: set[str]) -> str | None:
    text = unicodedata.normalize("NFKC", answer).strip()  # full-width Ｂ and （Ｂ） read as B and (B)
    for pattern in (_BARE, _LEADING):
        match = pattern.match(text)
        if match and match.group(1).upper() in letters:
            return match.group(1).upper()
    for match in _CUE.finditer(text):
        letter = (match.group(1) or match.group(2)).upper()
        if letter in letters:
            return letter
    return None


def _contains(text: str, phrase: str) -> bool:
    """`phrase` occurs in `text` and does not start or end inside a Latin word."""
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text) is not None


def _by_text(answer: str, choices: Mapping[str, str]) -> str | None:
    normalized = join_words(words(answer))
    texts = {letter: join_words(words(text)) for letter, text in choices.items()}
    for letter, text in texts.items():
        if text and text == normalized:
            return letter
    contained = [
        (len(text), letter) for letter, text in texts.items() if text and _contains(normalized, text)
    ]
    if not contained:
        return None
    contained.sort(reverse=True)
    if len(contained) > 1 and contained[0][0] == contained[1][0]:
        return None
    return contained[0][1]


def _characters(text: str) -> Counter:
    return Counter(char for char in normalize_text(text) if not char.isspace())


def _nearest(answer: str, choices: Mapping[str, str]) -> str | None:
    answer_chars = _characters(answer)
    scored = []
    for letter, text in choices.items():
        option_chars = _characters(text)
        size = sum(answer_chars.values()) + sum(option_chars.values())
        shared = sum((answer_chars & option_chars).values())
        scored.append((2 * shared / size if size else 0.0, letter))
    scored.sort(reverse=True)
    if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


def match_choice(answer: str, choices: Mapping[str, str]) -> ChoiceMatch:
    """The option `answer` picked among `choices` (letter -> option text)."""
    letter = _letter(answer, set(choices))
    if letter is not None:
        return ChoiceMatch(letter, BY_LETTER)
    letter = _by_text(answer, choices)
    if letter is not None:
        return ChoiceMatch(letter, BY_TEXT)
    letter = _nearest(answer, choices)
    if letter is not None:
        return ChoiceMatch(letter, BY_NEAREST)
    return ChoiceMatch(None, BY_NONE)
