"""How far reviewers agree with the machine: share accepted, mean character edit distance, per check.

A reviewed row is accepted (verdict accept, or a correction equal to the machine's text), fixed (a
correction that differs) or rejected (verdict reject, no correction). The edit distance of a row is the
Levenshtein distance, in characters, from the machine's Chinese to the reviewer's final text: 0 when
accepted, the distance to the correction when fixed; rejected rows have no final text and no distance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

ACCEPTED, FIXED, REJECTED = "accepted", "fixed", "rejected"


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters: insertions, deletions and substitutions each cost 1."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, start=1):
        current = [i]
        for j, right in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class Judgement:
    check: str  # the translation checks' verdict the sheet showed
    outcome: str  # ACCEPTED, FIXED or REJECTED
    distance: int | None  # None for REJECTED


def _summary(judgements: list[Judgement]) -> dict:
    distances = [j.distance for j in judgements if j.distance is not None]
    counts = {
        outcome: sum(j.outcome == outcome for j in judgements) for outcome in (ACCEPTED, FIXED, REJECTED)
    }
    return {
        "reviewed": len(judgements),
        **counts,
        "accepted_share": round(counts[ACCEPTED] / len(judgements), 4) if judgements else None,
        "mean_edit_distance": round(sum(distances) / len(distances), 4) if distances else None,
    }


def agreement(judgements: Iterable[Judgement]) -> dict:
    """Totals and the same figures per check verdict (`passed`, or a reason code)."""
    judgements = list(judgements)
    per_check: dict[str, list[Judgement]] = defaultdict(list)
    for judgement in judgements:
        per_check[judgement.check].append(judgement)
    return {
        **_summary(judgements),
        "per_check": {check: _summary(group) for check, group in sorted(per_check.items())},
    }
