"""DDP: 2 CPU processes (gloo, under torchrun) give the same losses and weights as 1 process with the same
global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.train.conftest import FAST, TINY_INSTRUCT, losses, train
from tests.train.test_stages import weights

STEPS = 3
GLOBAL_BATCH = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(stage1_dir, data_dir, tmp_path):
    common = [f"model={stage1_dir}", f"data={data_dir / 'instruct.jsonl'}", f"max_steps={STEPS}", "save_steps=100",
              "sampling=random"]  # fmt: skip
    single = train(TINY_INSTRUCT, tmp_path / "single", *common, f"per_device_train_batch_size={GLOBAL_BATCH}")

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "qilin_med_vl.cli", "train", "--config", str(TINY_INSTRUCT),
        f"output_dir={tmp_path / 'ddp'}", *FAST, *common, f"per_device_train_batch_size={GLOBAL_BATCH // 2}",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert (summary["world_size"], summary["global_batch_size"]) == (2, GLOBAL_BATCH)

    expected, distributed = losses(single), losses(tmp_path / "ddp")
    assert sorted(distributed) == list(range(1, STEPS + 1))
    for step in expected:
        assert distributed[step] == pytest.approx(expected[step], abs=1e-5)
    one, two = weights(single), weights(tmp_path / "ddp")
    changed = [name for name in one if not torch.equal(one[name], weights(stage1_dir)[name])]
    assert changed  # the comparison below is between trained weights
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-5, rtol=1e-4)
