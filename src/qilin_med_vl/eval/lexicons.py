"""The word lists scoring depends on, shipped as resources: the synonym table and the yes/no lexicon.

Both are data (`resources/eval_synonyms.json`, `resources/eval_polarity.json`) with a version string
that scoring records beside its own, so a changed list shows in every metrics file it affected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

SYNONYMS_RESOURCE = "eval_synonyms.json"
POLARITY_RESOURCE = "eval_polarity.json"
YES, NO, NEUTRAL = "yes", "no", "neutral"


def _load(name: str) -> dict:
    return json.loads(resources.files("qilin_med_vl.resources").joinpath(name).read_text("utf-8"))


@dataclass(frozen=True)
class Synonyms:
    version: str
    canonical_of_form: dict[str, str]  # every form (as written in the table) -> its group's canonical token


@dataclass(frozen=True)
class PolarityLexicon:
    version: str
    value_of_form: dict[str, str]  # every form of both languages -> YES | NO | NEUTRAL


@cache
def synonyms() -> Synonyms:
    table = _load(SYNONYMS_RESOURCE)
    canonical_of_form = {}
    for group in table["groups"]:
        for form in group["forms"]:
            canonical_of_form[form] = group["canonical"]
    return Synonyms(version=table["version"], canonical_of_form=canonical_of_form)


@cache
def polarity_lexicon() -> PolarityLexicon:
    table = _load(POLARITY_RESOURCE)
    value_of_form = {}
    for value in (YES, NO, NEUTRAL):
        for forms in table[value].values():
            for form in forms:
                value_of_form[form] = value
    return PolarityLexicon(version=table["version"], value_of_form=value_of_form)
