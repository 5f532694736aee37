"""The order of training samples: random, grouped by length, or sequential; the same for a (seed, epoch).

Length grouping (unpacked path) shuffles, cuts the order into mega-batches of `megabatch_factor`
global batches, and sorts each by length, so rows in one batch have similar lengths and little padding.
It depends on the global batch (not the per-device one), so 1 process and N processes see the same
global batches. A fixed order per (seed, epoch) is also what makes resuming mid-epoch exact.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

MEGABATCH_FACTOR = 50  # as transformers' LengthGroupedSampler


class TrainingOrder(Sampler[int]):
    def __init__(
        self,
        lengths: list[int],
        mode: str,
        global_batch_size: int,
        seed: int,
        megabatch_factor: int = MEGABATCH_FACTOR,
    ):
        self.lengths = lengths
        self.mode = mode
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.megabatch_factor = megabatch_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def order(self) -> list[int]:
        if self.mode == "sequential":
            return list(range(len(self.lengths)))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        shuffled = torch.randperm(len(self.lengths), generator=generator).tolist()
        if self.mode == "random":
            return shuffled
        size = self.global_batch_size * self.megabatch_factor
        grouped = []
        for start in range(0, len(shuffled), size):
            megabatch = shuffled[start : start + size]
            grouped += sorted(megabatch, key=lambda index: -self.lengths[index])
        return grouped

    def __iter__(self):
        return iter(self.order())
