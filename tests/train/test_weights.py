"""Stage 1 saves what trains: checkpoints hold the projector's tensors only (and the optimizer), the final
directory the full model and projector.safetensors; stage 2 starts from base + a projector file (ours or
original LLaVA's mm_projector.bin) exactly as from the full stage-1 directory."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from qilin_med_vl.errors import QilinError
from qilin_med_vl.train.config import load_config
from qilin_med_vl.train.run import load_model
from tests.train.conftest import FAST, TINY_INSTRUCT


def test_stage1_checkpoint_holds_only_the_trained_tensors(stage1_dir):
    checkpoint = stage1_dir / "checkpoint-2"
    tensors = load_file(checkpoint / "model.safetensors")
    assert sorted(tensors) == [
        "model.multi_modal_projector.linear_1.bias",
        "model.multi_modal_projector.linear_1.weight",
        "model.multi_modal_projector.linear_2.bias",
        "model.multi_modal_projector.linear_2.weight",
    ]
    assert json.loads((checkpoint / "trainable_only.json").read_text()) == sorted(tensors)
    assert (checkpoint / "optimizer.pt").is_file() and not (checkpoint / "config.json").exists()
    full = (stage1_dir / "model.safetensors").stat().st_size
    assert (checkpoint / "model.safetensors").stat().st_size < full / 50  # 24.8k of 2.04M parameters
    # the final directory: the full model, and the projector alone under its checkpoint names
    assert sorted(load_file(stage1_dir / "projector.safetensors")) == [
        name.removeprefix("model.") for name in sorted(tensors)
    ]


def stage2_config(model, projector_from=None):
    overrides = [*FAST, f"model={model}", "data=unused.jsonl", "output_dir=unused"]
    if projector_from is not None:
        overrides.append(f"projector_from={projector_from}")
    return load_config(TINY_INSTRUCT, overrides)


def state_of(config) -> dict[str, torch.Tensor]:
    return load_model(config, config.model).state_dict()


def assert_same_tensors(one: dict, two: dict) -> None:
    assert one.keys() == two.keys()
    for name in one:
        assert torch.equal(one[name], two[name]), name


def test_stage2_from_a_projector_file_equals_stage2_from_the_full_directory(base_dir, stage1_dir, tmp_path):
    expected = state_of(stage2_config(stage1_dir))
    base = state_of(stage2_config(base_dir))
    assert not torch.equal(base["model.multi_modal_projector.linear_1.weight"],
                           expected["model.multi_modal_projector.linear_1.weight"])  # fmt: skip

    # original LLaVA's mm_projector.bin: nn.Sequential(Linear, GELU, Linear) under model.mm_projector
    projector = load_file(stage1_dir / "projector.safetensors")
    llava = {
        f"model.mm_projector.{index}.{kind}": projector[f"multi_modal_projector.linear_{layer}.{kind}"]
        for index, layer in ((0, 1), (2, 2))
        for kind in ("weight", "bias")
    }
    torch.save(llava, tmp_path / "mm_projector.bin")
    for source in (stage1_dir, stage1_dir / "projector.safetensors", stage1_dir / "checkpoint-4",
                   tmp_path / "mm_projector.bin"):  # fmt: skip
        assert_same_tensors(state_of(stage2_config(base_dir, source)), expected)


def test_a_projector_of_another_shape_is_refused(base_dir, tmp_path):
    torch.save({"model.mm_projector.0.weight": torch.zeros(3, 3), "model.mm_projector.0.bias": torch.zeros(3),
                "model.mm_projector.2.weight": torch.zeros(3, 3), "model.mm_projector.2.bias": torch.zeros(3)},
               tmp_path / "mm_projector.bin")  # fmt: skip
    with pytest.raises(QilinError, match=r"mm_projector.bin: linear_\d.weight has shape \(3, 3\)"):
        state_of(stage2_config(base_dir, tmp_path / "mm_projector.bin"))
    with pytest.raises(QilinError, match="no such file"):
        state_of(stage2_config(base_dir, tmp_path / "none.bin"))
