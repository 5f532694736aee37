"""The order of training samples: random, grouped by length, grouped by modality and length, or sequential;
the same for a (seed, epoch).

Length grouping (unpacked path) shuffles, cuts the order into mega-batches of `megabatch_factor`
global batches, and sorts each by length, so rows in one batch have similar lengths and little padding.
It depends on the global batch (not the per-device one), so 1 process and N processes see the same
global batches. A fixed order per (seed, epoch) is also what makes resuming mid-epoch exact.

Modality grouping (`group_by_modality_length`, as LLaVA-1.5 trains on mixed data): image samples and
text-only samples are length-grouped separately and cut into whole global batches, which are then
shuffled together, so every global batch — and so every micro-batch of every process at one step —
is all-image or all-text. Only the last batch mixes the two remainders. That is what keeps text-only
samples safe under ZeRO-3: at each step either every process runs the vision tower or none does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler

MEGABATCH_FACTOR = 50  # as transformers' LengthGroupedSampler
RANDOM, GROUP_BY_LENGTH, GROUP_BY_MODALITY, SEQUENTIAL = (
    "random",
    "group_by_length",
    "group_by_modality_length",
    "sequential",
)
SAMPLING = (RANDOM, GROUP_BY_LENGTH, GROUP_BY_MODALITY, SEQUENTIAL)


class TrainingOrder(Sampler[int]):
    def __init__(
        self,
        lengths,
        mode: str,
        global_batch_size: int,
        seed: int,
        megabatch_factor: int = MEGABATCH_FACTOR,
        has_image=None,
    ):
        self.lengths = np.asarray(lengths, dtype=np.int64)  # (N,)
        self.mode = mode
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.megabatch_factor = megabatch_factor
        # (N,) bool; without it every sample counts as one modality
        self.has_image = (
            np.ones(len(self.lengths), bool) if has_image is None else np.asarray(has_image, bool)
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def _length_grouped(self, indices: np.ndarray, generator: torch.Generator) -> list[int]:
        shuffled = indices[torch.randperm(len(indices), generator=generator).numpy()]
        size = self.global_batch_size * self.megabatch_factor
        grouped: list[int] = []
        for start in range(0, len(shuffled), size):
            megabatch = shuffled[start : start + size]
            # stable sort, longest first
            grouped += megabatch[np.argsort(-self.lengths[megabatch], kind="stable")].tolist()
        return grouped

    def _modality_grouped(self, generator: torch.Generator) -> list[int]:
        batches, remainders = [], []
        for modality in (True, False):
            order = self._length_grouped(np.flatnonzero(self.has_image == modality), generator)
            whole = len(order) - len(order) % self.global_batch_size
            batches += [
                order[s : s + self.global_batch_size] for s in range(0, whole, self.global_batch_size)
            ]
            remainders += order[whole:]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return [index for b in shuffled for index in batches[b]] + remainders

    def order(self) -> list[int]:
        if self.mode == SEQUENTIAL:
            return list(range(len(self.lengths)))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.mode == RANDOM:
            return torch.randperm(len(self.lengths), generator=generator).tolist()
        if self.mode == GROUP_BY_MODALITY:
            return self._modality_grouped(generator)
        return self._length_grouped(np.arange(len(self.lengths)), generator)

    def __iter__(self):
        return iter(self.order())
