"""Caption metrics on token lists: sentence BLEU-4 (BLEU+1 smoothing) and ROUGE-L F1.

BLEU-4 = BP · exp(¼ Σ_{n=1..4} log p_n), where p_1 = m_1 / c_1 and, for n ≥ 2, p_n = (m_n + 1) / (c_n + 1)
(Lin & Och's add-one smoothing of the higher orders); m_n = clipped n-gram matches, c_n = the
prediction's n-gram count; BP = 1 if c > r else exp(1 − r/c) with c, r the prediction and reference
lengths. An empty prediction or no unigram match gives 0.
ROUGE-L: with L the longest common subsequence, P = L/c, R = L/r, F1 = 2PR/(P+R).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

BLEU_ORDER = 4


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu4(prediction: Sequence[str], reference: Sequence[str]) -> float:
    if not prediction or not reference:
        return 0.0
    log_sum = 0.0
    for n in range(1, BLEU_ORDER + 1):
        candidate = _ngrams(prediction, n)
        matches = sum((candidate & _ngrams(reference, n)).values())
        total = sum(candidate.values())
        if n == 1:
            if matches == 0:
                return 0.0
            log_sum += math.log(matches / total)
        else:
            log_sum += math.log((matches + 1) / (total + 1))
    c, r = len(prediction), len(reference)
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return brevity * math.exp(log_sum / BLEU_ORDER)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: Sequence[str], reference: Sequence[str]) -> float:
    common = lcs_length(prediction, reference)
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(reference)
    return 2 * precision * recall / (precision + recall)
