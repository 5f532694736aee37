"""The training dataset: records tokenized once up front (lengths known, drops counted), images loaded lazily.

Tokenizing first gives every sample's exact length (for length grouping and packing) and finds every
record that cannot be used before the first step; each drop is counted by reason and the first few
record names are kept for the run summary. Pixels are decoded per item, as the upstream lazy dataset.
Samples are held compactly (int32 arrays, each run of image tokens stored as one token and expanded
per item): at the paper's scale, Python lists of token ids would need tens of GB per process.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from qilin_med_vl.imaging.raster import open_image
from qilin_med_vl.imaging.reasons import IMAGE_MISSING, ImageRejected
from qilin_med_vl.train.records import ConversationRecord
from qilin_med_vl.train.tokenize import ConversationTokenizer, SampleDropped, TokenizedSample

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

    @classmethod
    def compact(cls, sample: TokenizedSample, image_token_id: int) -> StoredSample:
        ids = np.asarray(sample.input_ids, dtype=np.int32)
        labels = np.asarray(sample.labels, dtype=np.int32)
        # keep the first token of every image run (truncation never cuts a run)
        is_image = ids == image_token_id
        starts = is_image & ~np.concatenate(([False], is_image[:-1]))
        keep = ~is_image | starts
        return cls(ids[keep], labels[keep], sample.image, len(ids))

    def expanded(self, image_token_id: int, image_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        repeats = np.where(self.input_ids == image_token_id, image_tokens, 1)
        ids = torch.from_numpy(np.repeat(self.input_ids, repeats).astype(np.int64))  # (L,)
        labels = torch.from_numpy(np.repeat(self.labels, repeats).astype(np.int64))  # (L,)
        return ids, labels


class ConversationDataset(Dataset):
    """Items: {"input_ids": (L,), "labels": (L,), "pixel_values": (3, H, W) or None}."""

    def __init__(
        self,
        records: list[ConversationRecord],
        tokenizer: ConversationTokenizer,
        image_processor,
        image_folder: str | Path,
        progress: bool = True,
    ):
        self.image_processor = image_processor
        self.image_folder = Path(image_folder)
        self.image_token_id = tokenizer.image_token_id
        self.image_tokens = tokenizer.num_image_tokens
        self.samples: list[StoredSample] = []
        self.summary = DataSummary(records=len(records))
        for record in tqdm(records, desc="tokenizing", unit="record", disable=not progress):
            if record.image is not None and not (self.image_folder / record.image).is_file():
                self.summary.drop(
                    IMAGE_MISSING, f"{record.name}: {self.image_folder / record.image} not found"
                )
                continue
            try:
                sample = tokenizer(record)
            except SampleDropped as dropped:
                self.summary.drop(dropped.reason, str(dropped))
                continue
            self.samples.append(StoredSample.compact(sample, self.image_token_id))
            self.summary.truncated += sample.truncated
            self.summary.supervised_tokens += sum(label != -100 for label in sample.labels)
        self.summary.kept = len(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def lengths(self) -> list[int]:
        return [sample.length for sample in self.samples]

    @property
    def has_text_only(self) -> bool:
        return any(sample.image is None for sample in self.samples)

    def pixel_values(self, relative: str) -> torch.Tensor:
        try:
            image = open_image(self.image_folder / relative)
        except ImageRejected as error:
            raise ImageRejected(error.reason, f"{error} (image folder: {self.image_folder})") from error
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]  # (3, H, W)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
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
    def lengths(self) -> list[int]:
        base = self.base.lengths
        return [sum(base[i] for i in pack) for pack in self.packs]

    def __getitem__(self, index: int) -> dict:
        return {"samples": [self.base[i] for i in self.packs[index]]}
