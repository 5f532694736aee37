"""Resampling statistics for evaluation results: bootstrap intervals of a mean, and a paired test.

Interval: the percentile bootstrap. The item scores are resampled with replacement `BOOTSTRAP_RESAMPLES`
times from a generator seeded with `BOOTSTRAP_SEED`, and the interval is the 2.5th and 97.5th
percentiles of the resampled means (for 95% confidence), so the same scores always give the same interval.

Paired test: the sign-flip permutation test on per-item differences (run B minus run A on the items both
answered). Under the null hypothesis that the two systems are exchangeable on every item, each
difference is as likely to be positive as negative, so the observed |mean difference| is compared with
the means after flipping random signs. Two-sided p = (1 + flips at least as extreme) / (1 + flips); when
there are few items (2**n <= PERMUTATION_RESAMPLES) every sign pattern is enumerated and p is exact.

Agreement of two yes/no raters (the LLM judge and the rule-based score): Cohen's kappa
(p_o - p_e) / (1 - p_e), with p_o the share of items where they agree and p_e = a·b + (1 - a)(1 - b) the
agreement expected by chance from each rater's share of yes (a, b); undefined (None) when p_e = 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
PERMUTATION_RESAMPLES = 10_000
PERMUTATION_SEED = 0
_CHUNK_VALUES = 4_000_000  # resampled values held in memory at once (about 32 MB of float64)
_TIE_TOLERANCE = 1e-12  # means equal up to rounding count as "at least as extreme"


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap_interval(
    scores: Sequence[float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap interval of the mean of `scores` (a single score gives a zero-width one)."""
    values = np.asarray(scores, dtype=np.float64)  # (n,)
    if values.size == 0:
        raise ValueError("no scores to bootstrap")
    means = _resampled_means(values, resamples, np.random.default_rng(seed))  # (resamples,)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(low), float(high))


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    per_chunk = max(1, _CHUNK_VALUES // values.size)
    means = []
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        picks = rng.integers(0, values.size, size=(count, values.size))  # (count, n)
        means.append(values[picks].mean(axis=1))
    return np.concatenate(means)


@dataclass(frozen=True)
class PairedTest:
    items: int
    mean_difference: float  # mean of (b - a)
    p_value: float
    exact: bool  # every sign pattern enumerated
    flips: int  # sign patterns compared (2**items when exact)


def sign_flip_test(
    differences: Sequence[float], resamples: int = PERMUTATION_RESAMPLES, seed: int = PERMUTATION_SEED
) -> PairedTest:
    """Two-sided sign-flip permutation test that the mean of paired `differences` is zero."""
    values = np.asarray(differences, dtype=np.float64)  # (n,)
    if values.size == 0:
        raise ValueError("no paired items to test")
    observed = abs(values.mean())
    if 2**values.size <= resamples:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=values.size)))  # (2**n, n)
        flipped = np.abs((signs * values).mean(axis=1))  # (2**n,)
        extreme = int((flipped >= observed - _TIE_TOLERANCE).sum())
        return PairedTest(values.size, float(values.mean()), extreme / len(signs), True, len(signs))
    rng = np.random.default_rng(seed)
    extreme = 0
    per_chunk = max(1, _CHUNK_VALUES // values.size)
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        signs = rng.choice((1.0, -1.0), size=(count, values.size))  # (count, n)
        extreme += int((np.abs((signs * values).mean(axis=1)) >= observed - _TIE_TOLERANCE).sum())
    return PairedTest(values.size, float(values.mean()), (1 + extreme) / (1 + resamples), False, resamples)


def cohen_kappa(first: Sequence[bool], second: Sequence[bool]) -> float | None:
    """Cohen's kappa of two raters' yes/no labels on the same items; None when chance agreement is 1
    (both raters gave one and the same label to every item) or there are no items."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} labels against {len(second)}: the raters must label the same items")
    if not first:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / len(first)
    yes_first, yes_second = sum(first) / len(first), sum(second) / len(second)
    expected = yes_first * yes_second + (1 - yes_first) * (1 - yes_second)
    return None if expected == 1.0 else (observed - expected) / (1 - expected)
