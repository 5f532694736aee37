"""A stratified sample of review items: every stratum represented, the rest shared in proportion.

Strata: (source, field, length band of the English text, memory state, check verdict). With N to draw
from T items in S strata: one item from each stratum first (the largest strata first, if N < S), then
the remaining draws shared among the strata in proportion to the items each has left, by largest
remainder. Within a stratum items are taken in an order fixed by a hash of (seed, English text), so the
same memory and seed give the same sample, and a larger N gives a superset of a smaller one's strata.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from qilin_med_vl.data.review.items import ReviewItem

# English characters: short captions and labels, sentences, paragraphs (case contexts)
LENGTH_BANDS = ((50, "short"), (200, "medium"))
LONGEST_BAND = "long"


def length_band(text: str) -> str:
    for limit, name in LENGTH_BANDS:
        if len(text) < limit:
            return name
    return LONGEST_BAND


def stratum(item: ReviewItem) -> tuple[str, str, str, str, str]:
    return (item.source, item.field, length_band(item.english), item.state, item.check)


def allocate(sizes: dict, count: int) -> dict:
    """How many to draw from each stratum (module docstring); never more than a stratum holds."""
    count = min(count, sum(sizes.values()))
    taken = dict.fromkeys(sizes, 0)
    for key in sorted(sizes, key=lambda key: (-sizes[key], key))[:count]:
        taken[key] = 1
    remaining = count - sum(taken.values())
    room = {key: sizes[key] - taken[key] for key in sizes}
    total_room = sum(room.values())
    if remaining and total_room:
        quotas = {key: remaining * room[key] / total_room for key in sizes}
        for key, quota in quotas.items():
            taken[key] += int(quota)
        left = count - sum(taken.values())
        by_remainder = sorted(sizes, key=lambda key: (-(quotas[key] - int(quotas[key])), key))
        for key in by_remainder[:left]:
            taken[key] = min(sizes[key], taken[key] + 1)  # float rounding must not overdraw a stratum
    return taken


def _order(seed: int, item: ReviewItem) -> str:
    return hashlib.sha256(f"{seed}\x00{item.english}".encode()).hexdigest()


def stratified_sample(items: list[ReviewItem], count: int, seed: int = 0) -> list[ReviewItem]:
    """`count` items (all of them if fewer), grouped by stratum, strata in sorted order."""
    groups: dict[tuple, list[ReviewItem]] = defaultdict(list)
    for item in items:
        groups[stratum(item)].append(item)
    taken = allocate({key: len(group) for key, group in groups.items()}, count)
    sample = []
    for key in sorted(groups):
        ordered = sorted(groups[key], key=lambda item: _order(seed, item))
        sample.extend(ordered[: taken[key]])
    return sample
