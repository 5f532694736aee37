"""Resume: a run stopped right after a checkpoint and resumed logs the same loss at every later step as an
uninterrupted run, in both stages (deterministic tiny model, fixed data order)."""

from __future__ import annotations

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


@pytest.mark.parametrize("stage", ["align", "instruct"])
def test_resumed_run_matches_uninterrupted_run(stage, base_dir, stage1_dir, data_dir, tmp_path):
    config_file = TINY_ALIGN if stage == "align" else TINY_INSTRUCT
    model = base_dir if stage == "align" else stage1_dir
    common = [*FAST, f"model={model}", f"data={data_dir / (stage + '.jsonl')}", f"max_steps={STEPS}",
              f"save_steps={CHECKPOINT}", "per_device_train_batch_size=3"]  # fmt: skip

    straight = run(load_config(config_file, [*common, f"output_dir={tmp_path / 'straight'}"]))
    interrupted = tmp_path / "interrupted"
    run(load_config(config_file, [*common, f"output_dir={interrupted}"]), extra_callbacks=[StopAfter(CHECKPOINT + 1)])
    assert (interrupted / f"checkpoint-{CHECKPOINT}").is_dir()
    # the stopped run went one step past its checkpoint; the resumed run must redo that step identically
    assert sorted(losses(interrupted)) == list(range(1, CHECKPOINT + 2))
    run(load_config(config_file, [*common, f"output_dir={interrupted}", "resume_from_checkpoint=latest"]))

    expected = losses(straight.output_dir)
    resumed = losses(interrupted)
    assert sorted(resumed) == sorted(expected) == list(range(1, STEPS + 1))
    for step in range(CHECKPOINT + 1, STEPS + 1):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-6), step
