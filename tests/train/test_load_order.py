"""Load order: the DeepSpeed ZeRO-3 config is registered before the weights load, so transformers
partitions them as they load (`from_pretrained` under `deepspeed.zero.Init`).

Under ZeRO-3 on this CPU-only machine DeepSpeed's partitioned load does not complete (it waits on a
communication backend), so the test stops the run at the load and records what transformers sees
there: `is_deepspeed_zero3_enabled()`, which is what makes `from_pretrained` partition."""

from __future__ import annotations

import pytest
from transformers.integrations import is_deepspeed_zero3_enabled

import qilin_med_vl.train.run as run_module
from qilin_med_vl.errors import QilinError
from qilin_med_vl.train.config import load_config
from tests.train.conftest import FAST, REPO, TINY_INSTRUCT

pytest.importorskip("deepspeed", reason="the ZeRO-3 registration needs DeepSpeed installed")


@pytest.fixture(autouse=True)
def forget_deepspeed_after_each_test():
    """A registered ZeRO-3 config would make every later `from_pretrained` in this process partition."""
    yield
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    assert not is_deepspeed_zero3_enabled()


class StopAtLoad(Exception):  # noqa: N818 - a signal for the test, not an error
    pass


def test_zero3_is_registered_when_the_model_loads(base_dir, data_dir, tmp_path):
    seen = []

    def observe(config, source):
        seen.append(is_deepspeed_zero3_enabled())
        raise StopAtLoad

    assert not is_deepspeed_zero3_enabled()
    with pytest.raises(StopAtLoad):
        config = zero3_config(base_dir, data_dir, tmp_path, "sampling=group_by_modality_length")
        run_module.run(config, model_loader=observe)
    assert seen == [True]


def zero3_config(base_dir, data_dir, tmp_path, *overrides):
    return load_config(TINY_INSTRUCT, [*FAST, f"model={base_dir}", f"data={data_dir / 'instruct.jsonl'}",
                                       f"output_dir={tmp_path / 'out'}", "bf16=false",
                                       f"deepspeed={REPO / 'configs/train/deepspeed/zero3.json'}", *overrides])  # fmt: skip


def test_text_only_records_under_zero3_need_modality_grouping(base_dir, data_dir, tmp_path):
    # the synthetic stage-2 data holds 2 text-only records among 16 with images
    with pytest.raises(QilinError, match="need sampling=group_by_modality_length and packing=false"):
        run_module.run(zero3_config(base_dir, data_dir, tmp_path, "sampling=group_by_length"))
