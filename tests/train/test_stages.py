"""Stages: a few steps of each stage on the tiny model change exactly the tensors the stage table names."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from qilin_med_vl.model.checkpoint import create_tiny, save_checkpoint
from qilin_med_vl.train.stages import STAGE_TABLE, apply_stage
from tests.train.conftest import TINY_ALIGN, TINY_INSTRUCT, train

# checkpoint key prefixes of each part, as transformers writes LLaVA checkpoints
PREFIXES = {
    "vision": ("vision_tower.",),
    "projector": ("multi_modal_projector.",),
    "llm": ("language_model.",),
}
# The features come from the penultimate vision layer, so the last layer and the final norm get no gradient.
UNUSED_VISION = ("vision_tower.encoder.layers.1.", "vision_tower.post_layernorm.")
ONE_STEP = ("max_steps=1", "warmup_ratio=0")  # a warmup step would have learning rate 0


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(Path(directory) / "model.safetensors")


def changed(before: Path, after: Path) -> set[str]:
    old, new = weights(before), weights(after)
    assert old.keys() == new.keys()
    return {name for name in old if not torch.equal(old[name], new[name])}


def keys_of(directory: Path, *parts: str) -> set[str]:
    prefixes = tuple(p for part in parts for p in PREFIXES[part])
    return {name for name in weights(directory) if name.startswith(prefixes)}


def test_stage_table_is_the_paper_recipe():
    assert STAGE_TABLE == {"alignment": ("projector",), "instruction": ("projector", "llm")}


def test_apply_stage_counts(tiny):
    model = create_tiny()[0]
    counts = apply_stage(model, "instruction", unfreeze_vision=True)
    assert counts["projector"]["trainable"] == counts["projector"]["total"] > 0
    assert counts["llm"]["trainable"] == counts["llm"]["total"] > 0
    # features come from layer -2 of the 2-layer tower: its last layer and final norm cannot train
    tower = model.model.vision_tower
    unused = [*tower.encoder.layers[1].parameters(), *tower.post_layernorm.parameters()]
    assert counts["vision"]["trainable"] == counts["vision"]["total"] - sum(p.numel() for p in unused)
    assert not any(p.requires_grad for p in unused)
    assert all(p.requires_grad for p in tower.encoder.layers[0].parameters())
    counts = apply_stage(model, "alignment")
    assert counts["projector"]["trainable"] == counts["projector"]["total"]
    assert counts["vision"]["trainable"] == counts["llm"]["trainable"] == 0


def test_align_changes_only_the_projector(base_dir, stage1_dir):
    assert len(keys_of(base_dir, "projector")) == 4
    assert changed(base_dir, stage1_dir) == keys_of(base_dir, "projector")


def test_instruct_changes_projector_and_llm_not_vision(stage1_dir, data_dir, tmp_path):
    out = train(
        TINY_INSTRUCT,
        tmp_path / "instruct",
        f"model={stage1_dir}",
        f"data={data_dir / 'instruct.jsonl'}",
        *ONE_STEP,
    )
    assert changed(stage1_dir, out) == keys_of(stage1_dir, "projector", "llm")


def test_unfreeze_vision_flag_trains_the_vision_tower(stage1_dir, data_dir, tmp_path):
    out = train(
        TINY_INSTRUCT,
        tmp_path / "v",
        f"model={stage1_dir}",
        f"data={data_dir / 'instruct.jsonl'}",
        *ONE_STEP,
        "unfreeze_vision=true",
    )
    vision = keys_of(stage1_dir, "vision")
    trained_vision = {name for name in vision if not name.startswith(UNUSED_VISION)}
    assert len(trained_vision) > 0
    assert changed(stage1_dir, out) == keys_of(stage1_dir, "projector", "llm") | trained_vision


def test_single_linear_projector_keeps_its_identity_layer(data_dir, tmp_path):
    base = save_checkpoint(*create_tiny(projector="linear"), tmp_path / "linear")
    out = train(
        TINY_ALIGN, tmp_path / "align", f"model={base}", f"data={data_dir / 'align.jsonl'}", *ONE_STEP
    )
    assert changed(base, out) == {
        "multi_modal_projector.linear_1.weight",
        "multi_modal_projector.linear_1.bias",
    }
