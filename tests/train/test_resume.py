"""Resume: a run stopped right after a checkpoint and resumed logs the same loss at every later step as an
uninterrupted run, in both stages (deterministic tiny model, fixed data order)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from transformers import TrainerCallback

from qilin_med_vl.train.config import load_config
from qilin_med_vl.train.run import run
from tests.train.conftest import FAST, TINY_ALIGN, TINY_INSTRUCT, losses

STEPS, CHECKPOINT = 5, 2


class StopAfter(TrainerCallback):
    """Ends training after `step` (after its checkpoint is written), as a killed job would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


@pytest.mark.parametrize(
    ("stage", "extra"),
    [
        ("align", []),
        ("instruct", []),
        ("instruct", ["lora.enabled=true", "lora.r=4", "lora.dropout=0", "learning_rate=1e-2"]),
    ],
    ids=["align", "instruct", "instruct-lora"],
)
def test_resumed_run_matches_uninterrupted_run(stage, extra, base_dir, stage1_dir, data_dir, tmp_path):
    # `stage` names the synthetic data file (tests/train/synthetic.py); the config says the stage itself
    config_file = TINY_ALIGN if stage == "align" else TINY_INSTRUCT
    model = base_dir if stage == "align" else stage1_dir
    common = [*FAST, f"model={model}", f"data={data_dir / (stage + '.jsonl')}", f"max_steps={STEPS}",
              f"save_steps={CHECKPOINT}", "per_device_train_batch_size=3", *extra]  # fmt: skip

    straight = run(load_config(config_file, [*common, f"output_dir={tmp_path / 'straight'}"]))
    interrupted = tmp_path / "interrupted"
    run(
        load_config(config_file, [*common, f"output_dir={interrupted}"]),
        extra_callbacks=[StopAfter(CHECKPOINT + 1)],
    )
    assert (interrupted / f"checkpoint-{CHECKPOINT}").is_dir()
    # the stopped run went one step past its checkpoint; the resumed run must redo that step identically
    assert sorted(losses(interrupted)) == list(range(1, CHECKPOINT + 2))
    run(load_config(config_file, [*common, f"output_dir={interrupted}", "resume_from_checkpoint=latest"]))

    expected = losses(straight.output_dir)
    resumed = losses(interrupted)
    assert sorted(resumed) == sorted(expected) == list(range(1, STEPS + 1))
    for step in range(CHECKPOINT + 1, STEPS + 1):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-6), step


@pytest.mark.slow
def test_killed_process_resumes_exactly(base_dir, data_dir, tmp_path):
    """A `qilin train` process killed with SIGKILL after a checkpoint resumes to the uninterrupted losses."""
    steps = 10
    common = [*FAST, f"model={base_dir}", f"data={data_dir / 'align.jsonl'}", f"max_steps={steps}", "save_steps=2",
              "save_total_limit=null", "per_device_train_batch_size=3"]  # fmt: skip
    straight = run(load_config(TINY_ALIGN, [*common, f"output_dir={tmp_path / 'straight'}"]))

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "qilin_med_vl.cli", "train", "--config", str(TINY_ALIGN), *common,
               f"output_dir={killed}"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    # checkpoint-4 appearing means checkpoint-2 is complete on disk
    while not (killed / "checkpoint-4").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model.safetensors").exists()

    run(
        load_config(
            TINY_ALIGN, [*common, f"output_dir={killed}", f"resume_from_checkpoint={killed / 'checkpoint-2'}"]
        )
    )
    expected, resumed = losses(straight.output_dir), losses(killed)
    assert sorted(resumed) == list(range(1, steps + 1))
    for step in range(3, steps + 1):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-6), step


def test_resuming_a_finished_run_trains_no_further_step(base_dir, data_dir, tmp_path):
    common = [*FAST, f"model={base_dir}", f"data={data_dir / 'align.jsonl'}", "max_steps=3", "save_steps=2",
              f"output_dir={tmp_path / 'run'}"]  # fmt: skip
    run(load_config(TINY_ALIGN, common))
    weights = (tmp_path / "run/model.safetensors").read_bytes()
    again = run(load_config(TINY_ALIGN, [*common, "resume_from_checkpoint=latest"]))
    assert sorted(losses(tmp_path / "run")) == [1, 2, 3]  # no step past max_steps
    assert (tmp_path / "run/model.safetensors").read_bytes() == weights
    assert [entry["step"] for entry in again.log_history if "loss" in entry] == [1, 2, 3]
