"""Token-overlap metrics between a prediction and a reference: recall, precision, F1 (multiset counts).

With P the prediction's tokens and R the reference's, as multisets, and overlap = |P ∩ R| (each
token counted min(count in P, count in R) times): recall = overlap / |R|, precision = overlap / |P|,
F1 = 2·precision·recall / (precision + recall) (0 when overlap is 0). An empty reference gives 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Overlap:
    recall: float
    precision: float
    f1: float


def overlap(prediction: Sequence[str], reference: Sequence[str]) -> Overlap:
    shared = sum((Counter(prediction) & Counter(reference)).values())
    if shared == 0:
        return Overlap(0.0, 0.0, 0.0)
    recall = shared / len(reference)
    precision = shared / len(prediction)
    return Overlap(recall, precision, 2 * precision * recall / (precision + recall))
