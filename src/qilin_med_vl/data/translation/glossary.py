"""English→Chinese medical glossary: which terms a source text contains and how they must be rendered.

Two sources, merged: a user CSV (header `english,chinese`, one pair a row; several rows for one English
term mean several accepted renderings), and the English↔Chinese term pairs of the CMeKG knowledge graph
when the optional `pycmekg` package is installed (its `pyCMeKG/model/cmekg.pkl`, read offline). A user
CSV row replaces the CMeKG renderings of the same term.

Terms match whole words, case-insensitively, longest first and without overlap, so "herpes simplex
encephalitis" is one term when the glossary has it, even when "herpes simplex" is a term too.
"""

from __future__ import annotations

import csv
import pickle
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

from qilin_med_vl.errors import DataError

CSV_HEADER = ("english", "chinese")
CMEKG_PACKAGE = "pyCMeKG"  # import name of the `pycmekg` distribution
CMEKG_PICKLE = ("model", "cmekg.pkl")
# CMeKG fields holding an entity's English name(s); the entity's key is its Chinese name, except for
# drugs whose `通用名` (generic name) is the rendering of their English generic name (the key is a brand)
CMEKG_ENGLISH_FIELDS = ("英文名称", "英文名")
CMEKG_GENERIC_NAME_FIELD = "通用名"
# shorter English entries are abbreviations ("HS") that collide with ordinary words and labels
MIN_CMEKG_TERM_CHARS = 4
# CMeKG gives some population-specific entities the plain English name ("cystic fibrosis" → 小儿囊性纤维性变):
# such a pair is kept only when its English names the population too
CMEKG_POPULATION_PREFIX = re.compile(r"^(小儿|儿童|新生儿|婴儿|婴幼儿|老年|妊娠|孕妇|产后)")
ENGLISH_POPULATION_WORD = re.compile(
    r"child|infan|pediatric|paediatric|neonat|newborn|juvenile|elder|senile|aged|geriatric|pregnan|gestation"
    r"|puerper|postpartum|baby|xiao'?\s?er|ertong",
    re.IGNORECASE,
)

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def normalize_text(text: str) -> str:
    """NFKC (full-width → ASCII, ℃ → °C) and one apostrophe, so both sides of a comparison agree."""
    return unicodedata.normalize("NFKC", text).replace("’", "'")


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(normalize_text(text))]


@dataclass(frozen=True)
class GlossaryMatch:
    english: str  # the term as written in the source text
    chinese: tuple[str, ...]  # accepted renderings; the first is the one the prompt asks for


class Glossary:
    """English term (lower-cased word sequence) → accepted Chinese renderings."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._renderings: dict[tuple[str, ...], list[str]] = {}
        self._by_first_word: dict[str, list[tuple[str, ...]]] = {}
        for english, chinese in pairs:
            self.add(english, chinese)

    def __len__(self) -> int:
        return len(self._renderings)

    def add(self, english: str, chinese: str) -> None:
        words = tuple(_words(english))
        chinese = normalize_text(chinese).strip()
        if not words or not chinese:
            return
        renderings = self._renderings.get(words)
        if renderings is None:
            self._renderings[words] = [chinese]
            self._by_first_word.setdefault(words[0], []).append(words)
        elif chinese not in renderings:
            renderings.append(chinese)

    def update(self, other: Glossary) -> None:
        """Take `other`'s renderings; for a term both have, `other`'s replace ours."""
        for words, renderings in other._renderings.items():
            if words not in self._renderings:
                self._by_first_word.setdefault(words[0], []).append(words)
            self._renderings[words] = list(renderings)

    def renderings(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(English term as lower-case words joined by spaces, its accepted Chinese renderings) per term."""
        for words, chinese in self._renderings.items():
            yield " ".join(words), tuple(chinese)

    def matches(self, text: str) -> list[GlossaryMatch]:
        """The glossary terms in `text`, in order, longest match first at each position."""
        original = normalize_text(text)
        spans = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(original)]
        found: list[GlossaryMatch] = []
        seen: set[tuple[str, ...]] = set()
        position = 0
        while position < len(spans):
            best: tuple[str, ...] | None = None
            for candidate in self._by_first_word.get(spans[position][0], ()):
                end = position + len(candidate)
                if end <= len(spans) and tuple(word for word, _, _ in spans[position:end]) == candidate:
                    if best is None or len(candidate) > len(best):
                        best = candidate
            if best is None:
                position += 1
                continue
            if best not in seen:
                seen.add(best)
                first, last = spans[position], spans[position + len(best) - 1]
                found.append(GlossaryMatch(original[first[1] : last[2]], tuple(self._renderings[best])))
            position += len(best)
        return found


def load_glossary_csv(path: str | Path) -> Glossary:
    """A user glossary: UTF-8 CSV (a BOM is fine) with the header `english,chinese`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"glossary file {path} does not exist: give the path of a CSV with columns english,chinese"
        )
    glossary = Glossary()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None or tuple(cell.strip().lower() for cell in header) != CSV_HEADER:
            raise DataError(
                f"glossary file {path}: the first row is {header!r}; it must be the header `english,chinese`"
            )
        for line_number, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise DataError(
                    f"glossary file {path}, line {line_number}: {row!r} is not one English term and one "
                    "Chinese rendering; quote a term that contains a comma"
                )
            glossary.add(row[0], row[1])
    return glossary


def cmekg_available() -> bool:
    return find_spec(CMEKG_PACKAGE) is not None


class _PlainDataUnpickler(pickle.Unpickler):
    """cmekg.pkl holds only dicts, lists and strings: refuse anything that would run code."""

    def find_class(self, module: str, name: str):  # noqa: ARG002
        raise pickle.UnpicklingError(f"cmekg.pkl refers to {module}.{name}; expected plain data only")


def _cmekg_english_names(values: Iterable[str]) -> list[str]:
    names = []
    for value in values:
        name = normalize_text(value).replace("—", "-").replace("–", "-").strip().strip("_ ")
        # commas join a list or name a compound ("Paracetamol,Caffeine and Aspirin Powder"): ambiguous, skip
        if len(name) >= MIN_CMEKG_TERM_CHARS and name.isascii() and "," not in name and "<" not in name:
            names.append(name)
    return names


def cmekg_pairs(entities: dict) -> list[tuple[str, str]]:
    """English→Chinese pairs from CMeKG's entity dict {chinese name: {field: [values]}}.

    Sorted by the length of the Chinese, so where one English term has several renderings the shortest
    (the general term, "地氟烷" before "地氟烷溶液") comes first and is the one the prompt asks for.
    """
    pairs = []
    for key, fields in entities.items():
        if not isinstance(fields, dict):
            continue
        generic = fields.get(CMEKG_GENERIC_NAME_FIELD) or []
        for field in CMEKG_ENGLISH_FIELDS:
            english_names = _cmekg_english_names(fields.get(field) or [])
            chinese_names = list(generic) if field == "英文名" and generic else [key]
            for english in english_names:
                for chinese in chinese_names:
                    if CMEKG_POPULATION_PREFIX.match(chinese) and not ENGLISH_POPULATION_WORD.search(english):
                        continue
                    pairs.append((english, chinese))
    return sorted(pairs, key=lambda pair: (len(pair[1]), pair))


def load_configured_glossary(glossary_csv: str | Path | None, use_cmekg: bool) -> Glossary | None:
    """The glossary a translator setting names: CMeKG's pairs and/or a user CSV over them; None for neither."""
    if not glossary_csv and not use_cmekg:
        return None
    glossary = load_cmekg_glossary() if use_cmekg else Glossary()
    if glossary_csv:
        glossary.update(load_glossary_csv(glossary_csv))
    return glossary


def load_cmekg_glossary() -> Glossary:
    """The CMeKG term pairs (~15,000), read from the installed `pycmekg` package without the network."""
    if not cmekg_available():
        raise DataError(
            "the CMeKG glossary needs the optional package pycmekg: `pip install pycmekg`, "
            "or set use_cmekg: false"
        )
    pickle_path = resources.files(CMEKG_PACKAGE).joinpath(CMEKG_PICKLE[0]).joinpath(CMEKG_PICKLE[1])
    with pickle_path.open("rb") as handle:
        entities = _PlainDataUnpickler(handle).load()
    if not isinstance(entities, dict):
        raise DataError(f"{pickle_path} is not the CMeKG entity dict this version of pycmekg ships")
    return Glossary(cmekg_pairs(entities))
