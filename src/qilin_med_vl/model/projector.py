"""Projector types and how each is encoded in transformers' two-layer `LlavaMultiModalProjector`.

transformers' projector is always `linear_2(act(linear_1(x)))`. The released checkpoints use
`mlp2x_gelu` (act = GELU), which maps directly. The paper's text describes one linear layer; we encode
it faithfully as act = identity ("linear") with `linear_2` fixed to the identity matrix and zero bias,
so `linear_2(linear_1(x)) == linear_1(x)` exactly and the checkpoint still loads in plain transformers.
Training keeps that identity layer frozen (`frozen_projector_parameters`). This module imports no torch,
so the CLI can offer the choices cheaply.
"""

from __future__ import annotations

# projector name -> activation stored in LlavaConfig.projector_hidden_act
PROJECTOR_ACTIVATIONS = {"mlp2x_gelu": "gelu", "linear": "linear"}


def projector_type(config) -> str:
    """The projector name of a LlavaConfig (inverse of PROJECTOR_ACTIVATIONS)."""
    for name, activation in PROJECTOR_ACTIVATIONS.items():
        if config.projector_hidden_act == activation:
            return name
    raise ValueError(f"projector activation {config.projector_hidden_act!r} is not one we write")


def frozen_projector_parameters(model) -> list[str]:
    """Names of projector parameters that must never train: linear_2 of a single-linear projector."""
    if projector_type(model.config) != "linear":
        return []
    prefix = _projector_prefix(model)
    return [f"{prefix}.linear_2.weight", f"{prefix}.linear_2.bias"]


def _projector_prefix(model) -> str:
    for name, module in model.named_modules():
        if module is model.model.multi_modal_projector:
            return name
    raise ValueError("model has no multi_modal_projector")
