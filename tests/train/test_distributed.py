"""DDP: 2 CPU processes (gloo, under torchrun) train the unfrozen vision tower and give the same losses and
weights as 1 process with the same global batch (`global_batch_size` sets the accumulation); the result
loads in plain transformers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.train.conftest import FAST, TINY_INSTRUCT, losses, train
from tests.train.test_run import load_in_plain_transformers
from tests.train.test_stages import UNUSED_VISION, weights

STEPS = 3
GLOBAL_BATCH = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(out, *overrides: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr",
        "127.0.0.1", "--master_port", str(free_port()), "-m", "qilin_med_vl.cli", "train", "--config",
        str(TINY_INSTRUCT), f"output_dir={out}", *FAST, *overrides,
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_processes_match_one(stage1_dir, data_dir, tmp_path):
    """With the vision tower unfrozen and `ddp_find_unused_parameters` off: DDP stops on any trainable
    parameter without a gradient, so this also checks that the layers after the feature layer are frozen.
    Modality grouping keeps the 2 text-only records in the last global batch, which 3 steps do not reach."""
    common = [f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}", f"max_steps={STEPS}", "save_steps=100",
              "sampling=group_by_modality_length", f"global_batch_size={GLOBAL_BATCH}", "per_device_train_batch_size=2",
              "unfreeze_vision=true", "ddp_find_unused_parameters=false"]  # fmt: skip
    single = train(TINY_INSTRUCT, tmp_path / "single", *common)
    torchrun(tmp_path / "ddp", *common)
    summaries = [json.loads((d / "train_summary.json").read_text()) for d in (single, tmp_path / "ddp")]
    assert [(s["world_size"], s["global_batch_size"], s["gradient_accumulation_steps"]) for s in summaries] == [
        (1, GLOBAL_BATCH, 2), (2, GLOBAL_BATCH, 1)]  # fmt: skip
    vision = summaries[1]["trainable_parameters"]["vision"]
    assert 0 < vision["trainable"] < vision["total"]

    expected, distributed = losses(single), losses(tmp_path / "ddp")
    assert sorted(distributed) == list(range(1, STEPS + 1))
    for step in expected:
        assert distributed[step] == pytest.approx(expected[step], abs=1e-5)
    one, two, before = weights(single), weights(tmp_path / "ddp"), weights(stage1_dir)
    changed = {name for name in one if not torch.equal(one[name], before[name])}
    assert any(
        name.startswith("vision_tower.") for name in changed
    )  # the comparison is between trained weights
    assert not any(name.startswith(UNUSED_VISION) for name in changed)
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-5, rtol=1e-4)
    image = next((data_dir / "images").glob("instruct_*.png"))
    assert load_in_plain_transformers(tmp_path / "ddp", image)["new_tokens"] == 5
