"""The training dataset over the tokenized-records cache: rows memory-mapped, images decoded per item.

Tokenizing first (train/token_cache.py) gives every sample's exact length (for length grouping and
packing) and finds every record that cannot be used before the first step; each drop is counted by
reason and the first few record names are kept for the run summary. Rows stay in the memory-mapped
Arrow files (int32, each run of image tokens stored as one token and expanded per item): a process
holds only the kept row numbers and lengths (16 bytes per record), whatever the data's size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import Dataset

from qilin_med_vl.imaging.raster import open_image
from qilin_med_vl.imaging.reasons import ImageRejected
from qilin_med_vl.train.token_cache import column, kept_indices

EXAMPLES_PER_REASON = 20  # record names kept per drop reason in the summary


@dataclass
class DataSummary:
    records: int = 0
    kept: int = 0
    truncated: int = 0
    supervised_tokens: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(detail)

    def to_dict(self) -> dict:
        return {
            "records": self.records,
            "kept": self.kept,
            "dropped": sum(self.dropped.values()),
            "dropped_by_reason": dict(self.dropped),
            "truncated_kept": self.truncated,
            "supervised_tokens": self.supervised_tokens,
            "drop_examples": self.examples,
        }

    @classmethod
    def of_rows(cls, rows: datasets.Dataset, kept: np.ndarray) -> DataSummary:
        """Counts from the cached rows' columns; only the dropped rows' details are read into Python."""
        summary = cls(records=len(rows), kept=len(kept))
        summary.truncated = int(column(rows, "truncated")[kept].sum())
        summary.supervised_tokens = int(column(rows, "supervised").astype(np.int64)[kept].sum())
        dropped = np.setdiff1d(np.arange(len(rows)), kept)
        if dropped.size:
            reasons = rows.data.column("drop_reason").take(dropped).to_pylist()
            details = rows.data.column("drop_detail").take(dropped).to_pylist()
            for reason, detail in zip(reasons, details, strict=True):
                summary.drop(reason, detail)
        return summary

    def line(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        return (
            f"{self.kept}/{self.records} records kept; dropped {sum(self.dropped.values())} ({reasons}); "
            f"{self.truncated} truncated after the last answer token that fits"
        )


@dataclass
class StoredSample:
    """A tokenized sample with each run of image tokens collapsed to one token."""

    input_ids: np.ndarray  # (L',) int32
    labels: np.ndarray  # (L',) int32
    image: str | None
    length: int  # L, once the image tokens are expanded

    def expanded(self, image_token_id: int, image_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        repeats = np.where(self.input_ids == image_token_id, image_tokens, 1)
        ids = torch.from_numpy(np.repeat(self.input_ids, repeats).astype(np.int64))  # (L,)
        labels = torch.from_numpy(np.repeat(self.labels, repeats).astype(np.int64))  # (L,)
        return ids, labels


class ConversationDataset(Dataset):
    """Items: {"input_ids": (L,), "labels": (L,), "pixel_values": (3, H, W) or None}.

    `rows` are the tokenized-records rows (token_cache.tokenized_rows); `kept` selects the rows used
    (default: every row that was not dropped), e.g. the training or the validation part.
    """

    def __init__(
        self,
        rows: datasets.Dataset,
        image_processor,
        image_folder: str | Path,
        image_token_id: int,
        image_tokens: int,
        kept: np.ndarray | None = None,
        summary: DataSummary | None = None,
    ):
        self.rows = rows
        self.image_processor = image_processor
        self.image_folder = Path(image_folder)
        self.image_token_id = image_token_id
        self.image_tokens = image_tokens
        self.kept = kept_indices(rows) if kept is None else np.asarray(kept, dtype=np.int64)
        self.summary = DataSummary.of_rows(rows, self.kept) if summary is None else summary
        self._lengths = column(rows, "length")[self.kept].astype(np.int64)  # (kept,)
        self._has_image = ~np.asarray(rows.data.column("image").is_null().to_numpy(zero_copy_only=False))[
            self.kept
        ]  # (kept,) bool

    def subset(self, positions) -> ConversationDataset:
        """The samples at `positions` (0..len-1) of this dataset, as a dataset of their own; the data
        summary stays the whole data's."""
        return ConversationDataset(
            self.rows, self.image_processor, self.image_folder, self.image_token_id, self.image_tokens,
            kept=self.kept[np.asarray(positions, dtype=np.int64)], summary=self.summary,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.kept)

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    @property
    def has_image(self) -> np.ndarray:
        """(N,) bool: which samples hold an image (for modality grouping)."""
        return self._has_image

    @property
    def has_text_only(self) -> bool:
        return bool((~self._has_image).any())

    def sample(self, index: int) -> StoredSample:
        row = int(self.kept[index])
        table = self.rows.data
        ids = table.column("input_ids")[row].values.to_numpy(zero_copy_only=False)
        labels = table.column("labels")[row].values.to_numpy(zero_copy_only=False)
        image = table.column("image")[row].as_py()
        return StoredSample(ids, labels, image, int(self._lengths[index]))

    def pixel_values(self, relative: str) -> torch.Tensor:
        try:
            image = open_image(self.image_folder / relative)
        except ImageRejected as error:
            raise ImageRejected(error.reason, f"{error} (image folder: {self.image_folder})") from error
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]  # (3, H, W)

    def __getitem__(self, index: int) -> dict:
        sample = self.sample(index)
        input_ids, labels = sample.expanded(self.image_token_id, self.image_tokens)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "pixel_values": self.pixel_values(sample.image) if sample.image else None,
        }


class PackedDataset(Dataset):
    """Items: {"samples": [item, ...]}, one pack of a fixed plan (see collate.plan_packs)."""

    def __init__(self, base: ConversationDataset, packs: list[list[int]]):
        self.base = base
        self.packs = packs

    def __len__(self) -> int:
        return len(self.packs)

    @property
    def lengths(self) -> np.ndarray:
        base = self.base.lengths
        return np.asarray([int(base[pack].sum()) for pack in self.packs], dtype=np.int64)

    def __getitem__(self, index: int) -> dict:
        return {"samples": [self.base[i] for i in self.packs[index]]}
