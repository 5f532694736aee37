"""Flags that must not change the result: gradient checkpointing (same losses), bf16 on CPU (close losses),
and the length-grouped order (homogeneous batches, the same for a seed and epoch)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers.utils import is_torch_bf16_available_on_device

from qilin_med_vl.train.sampling import TrainingOrder
from tests.train.conftest import TINY_INSTRUCT, losses, train

STEPS = ("max_steps=3", "warmup_ratio=0")


def test_gradient_checkpointing_gives_the_same_losses(stage1_dir, data_dir, tmp_path):
    common = [f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}", *STEPS]
    plain = losses(train(TINY_INSTRUCT, tmp_path / "plain", *common))
    checkpointed = losses(train(TINY_INSTRUCT, tmp_path / "gc", *common, "gradient_checkpointing=true"))
    assert sorted(plain) == sorted(checkpointed) == [1, 2, 3]
    for step in plain:
        assert checkpointed[step] == pytest.approx(plain[step], abs=1e-5)
    assert plain[3] != plain[1]  # the steps trained


@pytest.mark.skipif(
    not is_torch_bf16_available_on_device("cpu"), reason="this torch build has no bf16 on CPU"
)
def test_bf16_on_cpu_trains_close_to_float32(stage1_dir, data_dir, tmp_path):
    common = [f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}", *STEPS]
    full = losses(train(TINY_INSTRUCT, tmp_path / "fp32", *common))
    out = train(TINY_INSTRUCT, tmp_path / "bf16", *common, "bf16=true")
    half = losses(out)
    for step in full:
        assert half[step] != full[step]  # autocast really ran in bf16
        assert half[step] == pytest.approx(full[step], rel=2e-2)
    # master weights stay float32; bf16 is the compute precision
    assert {tensor.dtype for tensor in load_file(out / "model.safetensors").values()} == {torch.float32}


def test_length_grouped_order():
    lengths = [(index * 37) % 101 for index in range(400)]
    order = TrainingOrder(lengths, "group_by_length", global_batch_size=4, seed=0, megabatch_factor=5)
    first = order.order()
    assert sorted(first) == list(range(400)) and first == order.order()
    for start in range(0, 400, 20):  # each mega-batch of 20 is sorted longest first
        chunk = [lengths[i] for i in first[start : start + 20]]
        assert chunk == sorted(chunk, reverse=True)
    padding_grouped = sum(max(c) - min(c) for c in (
        [lengths[i] for i in first[s : s + 4]] for s in range(0, 400, 4)))  # fmt: skip
    shuffled = TrainingOrder(lengths, "random", global_batch_size=4, seed=0).order()
    padding_random = sum(
        max(c) - min(c) for c in ([lengths[i] for i in shuffled[s : s + 4]] for s in range(0, 400, 4))
    )
    assert padding_grouped < padding_random / 3
    order.set_epoch(1)
    assert order.order() != first


def test_gradient_accumulation_matches_the_larger_batch(stage1_dir, data_dir, tmp_path):
    common = [f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}", *STEPS, "sampling=random"]
    whole = losses(train(TINY_INSTRUCT, tmp_path / "whole", *common, "per_device_train_batch_size=4"))
    accumulated = losses(train(TINY_INSTRUCT, tmp_path / "acc", *common, "per_device_train_batch_size=2",
                               "gradient_accumulation_steps=2"))  # fmt: skip
    for step in whole:
        assert accumulated[step] == pytest.approx(whole[step], abs=1e-5)
