"""What trains in each stage, as a table, and the one function that applies it.

`alignment` (stage 1) trains the projector only; `instruction` (stage 2) trains the projector and the LLM with
the vision tower frozen (paper section 5.2). `unfreeze_vision` adds the vision tower to either stage — the part of it that makes the image
features: LLaVA takes features from a hidden layer (-2 by default), so the layers after it and the
tower's final norm (and any pooling head) never receive a gradient. Those stay frozen, which is what
DDP needs (it fails on trainable parameters that produce no gradient) and what the trainable counts
report. Which parameters reach the features is found by one backward pass through a weightless copy
of the model on the meta device (no memory, any vision tower), not by matching parameter names.
The identity second layer that encodes a single-linear projector never trains.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import LlavaForConditionalGeneration
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from qilin_med_vl.llava_format import ALIGNMENT, INSTRUCTION
from qilin_med_vl.model.projector import frozen_projector_parameters, projector_type

logger = logging.getLogger(__name__)

STAGE_TABLE: dict[str, tuple[str, ...]] = {
    ALIGNMENT: ("projector",),
    INSTRUCTION: ("projector", "llm"),
}
PARTS = ("vision", "projector", "llm")


def part_modules(model) -> dict[str, list[nn.Module]]:
    """The modules making up each part of a LlavaForConditionalGeneration (transformers 5 layout)."""
    return {
        "vision": [model.model.vision_tower],
        "projector": [model.model.multi_modal_projector],
        "llm": [model.model.language_model, model.lm_head],
    }


def vision_parameters_without_gradient(config, image_size: tuple[int, int]) -> set[str]:
    """Names (as `model.named_parameters()` gives them) of vision parameters the image features never use."""
    with torch.device("meta"):
        probe = LlavaForConditionalGeneration(config)
        pixels = torch.zeros(1, 3, *image_size)  # (1, 3, H, W)
    probe.requires_grad_(False)
    probe.model.vision_tower.requires_grad_(True)
    features = probe.model.get_image_features(pixel_values=pixels)
    features = getattr(features, "pooler_output", features)  # transformers returns an output object
    features = (
        torch.cat([f.reshape(-1) for f in features]) if isinstance(features, list | tuple) else features
    )
    features.sum().backward()
    tower = {id(p) for p in probe.model.vision_tower.parameters()}
    return {name for name, p in probe.named_parameters() if id(p) in tower and p.grad is None}


def trained_parts(stage: str, unfreeze_vision: bool = False) -> tuple[str, ...]:
    parts = STAGE_TABLE[stage]
    return ("vision", *parts) if unfreeze_vision else parts


def freeze_identity_projector_layers(model) -> None:
    """Keep linear_2 of a single-linear projector frozen wherever the projector is (also inside peft)."""
    config = getattr(model, "config", None)
    if config is None or projector_type(config) != "linear":
        return
    for module in model.modules():
        if isinstance(module, LlavaMultiModalProjector):
            module.linear_2.requires_grad_(False)


def trainable_counts(model) -> dict[str, dict[str, int]]:
    """{part: {"trainable": n, "total": n}} over the parts of the model."""
    counts = {}
    for part, modules in part_modules(model).items():
        parameters = {id(p): p for module in modules for p in module.parameters()}.values()
        counts[part] = {
            "trainable": sum(p.numel() for p in parameters if p.requires_grad),
            "total": sum(p.numel() for p in parameters),
        }
    return counts


def apply_stage(
    model, stage: str, unfreeze_vision: bool = False, image_size: tuple[int, int] | None = None
) -> dict[str, dict[str, int]]:
    """Freeze everything, then unfreeze the stage's parts; log and return trainable counts per part.

    `image_size` (H, W) is the processor's crop, needed with `unfreeze_vision` to find the unused layers
    (default: the vision config's image_size)."""
    model.requires_grad_(False)
    modules = part_modules(model)
    for part in trained_parts(stage, unfreeze_vision):
        for module in modules[part]:
            module.requires_grad_(True)
    never = set(frozen_projector_parameters(model))
    if unfreeze_vision:
        size = image_size or (model.config.vision_config.image_size,) * 2
        unused = vision_parameters_without_gradient(model.config, size)
        never |= unused
        logger.info(
            "vision: %d tensors after the feature layer stay frozen (no gradient reaches them)", len(unused)
        )
    for name, parameter in model.named_parameters():
        if name in never:
            parameter.requires_grad_(False)
    counts = trainable_counts(model)
    for part in PARTS:
        logger.info("stage %s: %-9s %12d / %12d parameters trainable", stage, part, *counts[part].values())
    return counts
