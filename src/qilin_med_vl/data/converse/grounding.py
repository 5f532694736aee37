"""Grounding checks on one generated answer: everything checkable it says must be in the source text.

Checks, in order; the first that fails gives the round's drop reason (reasons.py):
- `conversation_number_not_in_source`: every number of the answer (as `numbers_in` of the translation
  checks reads numbers: NFKC, "1,200" = 1200, digits inside unit symbols left out) is a number of the source.
- `conversation_unit_not_in_source`: every number the answer writes with a unit, as a symbol ("3 cm",
  "5 mg/kg") or a Chinese unit name ("3厘米", "5毫克每千克"), is written with that same unit in the source;
  a symbol and its Chinese names are one unit (cm = 厘米), as in the translation checks' unit table.
- `conversation_side_not_in_source`: every side the answer names, left (左, left), right (右, right) or both
  (双侧, 两侧, 双, bilateral), is named by the source. 左右 ("about"), 左旋 and 右旋 (levo-, dextro-) are not sides.
- `conversation_glossary_term_not_in_source`: every glossary term the answer names (one of its Chinese
  renderings of two characters or more, or its English words) is in the source, in either language.
  Terms with the same renderings count as one (synonyms).

Source and answer may be in different languages (a build made without translation is English): numbers,
units, sides and glossary terms are compared language-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qilin_med_vl.data.converse import reasons
from qilin_med_vl.data.translation.checks import (
    NUMBER_PATTERN,
    PER_UNIT_NAMES,
    UNIT_NAMES,
    alternation,
    canonical_number,
    numbers_in,
    quantities_in,
)
from qilin_med_vl.data.translation.glossary import Glossary, normalize_text

LEFT, RIGHT, BOTH = "left", "right", "both"
_SIDE_PATTERNS = {
    LEFT: re.compile(r"左|\bleft\b", re.IGNORECASE),
    RIGHT: re.compile(r"右|\bright\b", re.IGNORECASE),
    BOTH: re.compile(r"双侧|两侧|双|\bbilateral(?:ly)?\b|\bboth sides\b", re.IGNORECASE),
}
_SIDE_NAMES = {LEFT: "左 / left", RIGHT: "右 / right", BOTH: "双侧 / bilateral"}
_NOT_SIDES = re.compile(r"左右|左旋|右旋")
MIN_RENDERING_CHARS = 2  # one-character renderings occur inside too many unrelated words


def _unit_identity(symbol_or_name: str) -> str:
    """One name per unit: a symbol's first Chinese name (cm → 厘米); a name → its unit's first name."""
    return _IDENTITY.get(symbol_or_name, symbol_or_name)


def _identities() -> dict[str, str]:
    identity: dict[str, str] = {}
    for table in (UNIT_NAMES, PER_UNIT_NAMES):
        for symbol, names in table.items():
            identity.setdefault(symbol, names[0])
            for name in names:
                identity.setdefault(name, names[0])
    return identity


_IDENTITY = _identities()


_UNIT_NAMES = [name for names in UNIT_NAMES.values() for name in names]
_ANY_UNIT_NAMES = _UNIT_NAMES + [name for names in PER_UNIT_NAMES.values() for name in names]
# a number followed by Chinese unit names, "3厘米", "5毫克每千克", "5 毫克/千克" (symbols: `quantities_in`)
_CHINESE_QUANTITY = re.compile(
    rf"(?P<number>{NUMBER_PATTERN})\s*(?P<unit>(?:{alternation(_UNIT_NAMES)})"
    rf"(?:\s*(?:/|每)\s*(?:{alternation(_ANY_UNIT_NAMES)}))*)"
)
_CHINESE_UNIT_PART = re.compile(alternation(_ANY_UNIT_NAMES))


@dataclass(frozen=True)
class RoundFailure:
    reason: str  # a code of reasons.py
    detail: str  # what exactly is not in the source


def quantities(text: str) -> set[tuple[str, str]]:
    """(number, unit) pairs of `text`, written with symbols or Chinese names; units as one name each."""
    text = normalize_text(text)
    found = {
        (number, "/".join(_unit_identity(part) for part in unit.split("/")))
        for number, unit in quantities_in(text)
    }
    for match in _CHINESE_QUANTITY.finditer(text):
        parts = _CHINESE_UNIT_PART.findall(match.group("unit"))
        found.add((canonical_number(match.group("number")), "/".join(_unit_identity(p) for p in parts)))
    return found


def sides(text: str) -> set[str]:
    """The sides (LEFT, RIGHT, BOTH) that `text` names."""
    plain = _NOT_SIDES.sub(" ", normalize_text(text))
    return {side for side, pattern in _SIDE_PATTERNS.items() if pattern.search(plain)}


class GlossaryIndex:
    """The glossary's Chinese renderings by first character, for finding the terms a text names."""

    def __init__(self, glossary: Glossary) -> None:
        self.glossary = glossary
        self._by_first_character: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for _, renderings in glossary.renderings():
            for rendering in renderings:
                if len(rendering) >= MIN_RENDERING_CHARS:
                    self._by_first_character.setdefault(rendering[0], []).append((rendering, renderings))

    def terms(self, text: str) -> set[tuple[str, ...]]:
        """The terms `text` names, each as its tuple of renderings."""
        text = normalize_text(text)
        named = {match.chinese for match in self.glossary.matches(text)}
        for character in set(text):
            for rendering, renderings in self._by_first_character.get(character, ()):
                if rendering in text:
                    named.add(renderings)
        return named


@dataclass(frozen=True)
class SourceFacts:
    """What an answer may say: the numbers, quantities, sides and glossary renderings of the source."""

    numbers: frozenset[str]
    quantities: frozenset[tuple[str, str]]
    sides: frozenset[str]
    renderings: frozenset[str]

    @classmethod
    def of(cls, source: str, glossary: GlossaryIndex | None) -> SourceFacts:
        named = glossary.terms(source) if glossary is not None else set()
        return cls(
            numbers=frozenset(numbers_in(source)),
            quantities=frozenset(quantities(source)),
            sides=frozenset(sides(source)),
            renderings=frozenset(rendering for renderings in named for rendering in renderings),
        )


def check_answer(answer: str, facts: SourceFacts, glossary: GlossaryIndex | None) -> RoundFailure | None:
    """The first grounding check `answer` fails against its source's facts, or None."""
    invented = [number for number in numbers_in(answer) if number not in facts.numbers]
    if invented:
        return RoundFailure(reasons.NUMBER_NOT_IN_SOURCE, f"numbers not in the source: {', '.join(invented)}")
    for number, unit in sorted(quantities(answer)):
        if (number, unit) not in facts.quantities:
            return RoundFailure(reasons.UNIT_NOT_IN_SOURCE, f"{number} {unit} is not in the source")
    for side in sorted(sides(answer) - facts.sides):
        named = ", ".join(_SIDE_NAMES[s] for s in sorted(facts.sides)) or "no side"
        return RoundFailure(
            reasons.SIDE_NOT_IN_SOURCE, f"the answer says {_SIDE_NAMES[side]}; the source names {named}"
        )
    if glossary is not None:
        for renderings in sorted(glossary.terms(answer)):
            if not facts.renderings & set(renderings):
                return RoundFailure(
                    reasons.GLOSSARY_TERM_NOT_IN_SOURCE, f"{renderings[0]} is not in the source"
                )
    return None
