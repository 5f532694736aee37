"""Batches for the model: padded rows (one sample per row) or packed rows (several samples per row).

Both ask the model for logits at supervised positions only (`logits_to_keep`, a (B, T) boolean mask,
with their targets as `shift_labels`): the language-model head over the whole vocabulary at every
position is most of a small model's step, and prompts (system line, image tokens, question) are most
of a sample's tokens while only the answers are supervised. The loss is the same mean over the same
targets as with every position's logits, and transformers' Trainer counts `shift_labels` for
gradient accumulation.

Packed rows keep samples apart with a 4-D block-diagonal causal mask (B, 1, T, T) and positions that
restart at 0 for each sample. On CPU under `sdpa`/`eager`, restarting `position_ids` alone does not
isolate samples (measured: logits differ by ~0.4), the mask does (to ~1e-7). Flash attention takes no
4-D mask but isolates samples from restarting `position_ids`, so for it only those are passed.
"""

from __future__ import annotations

import bisect
import random

import torch

from qilin_med_vl.train.tokenize import IGNORE_INDEX

# attention implementations that detect packed samples from restarting position_ids alone
POSITION_ID_PACKING = ("flash_attention_2", "flash_attention_3")


def supervised_outputs(labels: torch.Tensor) -> dict:
    """`logits_to_keep` (B, T) bool: positions whose next token is supervised; `shift_labels` (N,): those
    next tokens, in the row-major order in which the model returns the kept logits."""
    keep = torch.zeros_like(labels, dtype=torch.bool)  # (B, T)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return {"logits_to_keep": keep, "shift_labels": labels[:, 1:][keep[:, :-1]]}  # (N,)


def _stack_images(samples: list[dict]) -> dict:
    images = [s["pixel_values"] for s in samples if s.get("pixel_values") is not None]
    return {"pixel_values": torch.stack(images)} if images else {}  # (n_images, 3, H, W)


class PaddedCollator:
    """One sample per row, right-padded to the longest row: input_ids, labels, attention_mask (B, T)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, samples: list[dict]) -> dict:
        longest = max(len(s["input_ids"]) for s in samples)
        input_ids = torch.full((len(samples), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(samples), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), longest), dtype=torch.long)
        for row, sample in enumerate(samples):
            length = len(sample["input_ids"])
            input_ids[row, :length] = sample["input_ids"]
            labels[row, :length] = sample["labels"]
            attention_mask[row, :length] = 1
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            **supervised_outputs(labels),
            **_stack_images(samples),
        }


def block_diagonal_causal_mask(segment_ids: torch.Tensor, additive_dtype: torch.dtype | None = None):
    """(B, T) segment ids -> (B, 1, T, T) mask: position q sees k iff k <= q and both are in one segment.

    Boolean (True = attend) for sdpa; additive (0 / dtype min) when `additive_dtype` is given (eager).
    Padding has its own segment, so no row is fully masked (a fully masked row gives NaN under sdpa).
    """
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()  # (T, T)
    same = segment_ids[:, :, None] == segment_ids[:, None, :]  # (B, T, T)
    allowed = (same & causal)[:, None]  # (B, 1, T, T)
    if additive_dtype is None:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=additive_dtype)
    return mask.masked_fill(~allowed, torch.finfo(additive_dtype).min)


class PackedCollator:
    """Each feature is a pack `{"samples": [...]}`; each pack becomes one row with restarting positions."""

    def __init__(self, pad_token_id: int, attn_implementation: str = "sdpa"):
        self.pad_token_id = pad_token_id
        self.attn_implementation = attn_implementation

    def __call__(self, packs: list[dict]) -> dict:
        rows = [pack["samples"] for pack in packs]
        longest = max(sum(len(s["input_ids"]) for s in row) for row in rows)
        shape = (len(rows), longest)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        segment_ids = torch.full(shape, -1, dtype=torch.long)  # -1: padding
        for row, samples in enumerate(rows):
            start = 0
            for segment, sample in enumerate(samples):
                end = start + len(sample["input_ids"])
                input_ids[row, start:end] = sample["input_ids"]
                labels[row, start:end] = sample["labels"]
                # the previous sample's last token must not learn to predict this sample's first token
                labels[row, start] = IGNORE_INDEX
                position_ids[row, start:end] = torch.arange(end - start)
                segment_ids[row, start:end] = segment
                start = end
        batch = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
        batch.update(supervised_outputs(labels))
        if self.attn_implementation not in POSITION_ID_PACKING:
            additive = None if self.attn_implementation == "sdpa" else torch.float32
            batch["attention_mask"] = block_diagonal_causal_mask(segment_ids, additive)
        batch.update(_stack_images([s for row in rows for s in row]))
        return batch


def plan_packs(lengths: list[int], max_length: int, seed: int) -> list[list[int]]:
    """Group sample indices into packs of at most `max_length` tokens (best fit over a shuffled order)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, pack index)
    for index in order:
        length = lengths[index]
        slot = bisect.bisect_left(free, (length, -1))
        if slot < len(free):
            capacity, pack = free.pop(slot)
        else:
            capacity, pack = max_length, len(packs)
            packs.append([])
        packs[pack].append(index)
        if capacity - length > 0:
            bisect.insort(free, (capacity - length, pack))
    return packs
