"""The training dataset: records tokenized once up front (lengths known, drops counted), images loaded lazily.

Tokenizing first gives every sample's exact length (for length grouping and packing) and finds every
record that cannot be used before the first step; each drop is counted by reason and the first few
record names are kept for the run summary. Pixels are decoded per item, as the upstream lazy dataset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from qilin_med_vl.data.images import ImageRejected, open_image
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
        self.samples: list[TokenizedSample] = []
        self.summary = DataSummary(records=len(records))
        for record in tqdm(records, desc="tokenizing", unit="record", disable=not progress):
            if record.image is not None and not (self.image_folder / record.image).is_file():
                self.summary.drop("image_missing", f"{record.name}: {self.image_folder / record.image} not found")
                continue
            try:
                sample = tokenizer(record)
            except SampleDropped as dropped:
                self.summary.drop(dropped.reason, str(dropped))
                continue
            self.samples.append(sample)
            self.summary.truncated += sample.truncated
            self.summary.supervised_tokens += sum(label != -100 for label in sample.labels)
        self.summary.kept = len(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def lengths(self) -> list[int]:
        return [len(sample.input_ids) for sample in self.samples]

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
        return {
            "input_ids": torch.tensor(sample.input_ids, dtype=torch.long),
            "labels": torch.tensor(sample.labels, dtype=torch.long),
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
