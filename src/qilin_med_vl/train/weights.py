"""Weights in and out of a run: checkpoints of the trained tensors only, and a projector from a file.

- A trainable-only checkpoint (`checkpoint_weights: trainable`, the default of stage 1) holds
  `model.safetensors` with just the tensors that train, under the model's own parameter names, and
  `trainable_only.json` naming them; the Trainer's resume loads that file with a non-strict
  `load_state_dict` into the model built from `model` (+ `projector_from`), and restores the optimizer,
  scheduler and RNG as for any checkpoint. Such a directory has no config.json on purpose: it is not a
  model on its own. The end of the stage writes the full HF-native model as usual.
- `projector_from` puts a projector into the loaded model: a run directory (its `projector.safetensors`,
  a trainable-only checkpoint, or a full HF-native model), our `projector.safetensors`, or original
  LLaVA's `mm_projector.bin` (keys `model.mm_projector.*`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers.integrations import is_deepspeed_zero3_enabled

from qilin_med_vl.errors import QilinError
from qilin_med_vl.model.convert import PROJECTOR_PREFIX, split_tensors
from qilin_med_vl.model.projector import projector_type

TRAINABLE_MARKER = "trainable_only.json"
PROJECTOR_FILE = "projector.safetensors"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
SAVED_PROJECTOR_PREFIX = "multi_modal_projector."  # as transformers writes LLaVA checkpoints
MODULE_PROJECTOR_PREFIX = "model.multi_modal_projector."  # as the module tree names it


def is_trainable_only(directory: str | Path) -> bool:
    return (Path(directory) / TRAINABLE_MARKER).is_file()


def save_trainable(tensors: dict[str, torch.Tensor], directory: str | Path) -> Path:
    """Write the trained tensors (module parameter names) as a trainable-only checkpoint's weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    save_file(contiguous, directory / WEIGHTS_FILE, metadata={"format": "pt"})
    (directory / TRAINABLE_MARKER).write_text(json.dumps(sorted(contiguous), indent=0), encoding="utf-8")
    return directory / WEIGHTS_FILE


def save_projector(model, directory: str | Path) -> Path:
    """`projector.safetensors` beside a full model: the projector's tensors under their checkpoint names."""
    state = model.model.multi_modal_projector.state_dict()
    tensors = {SAVED_PROJECTOR_PREFIX + name: t.detach().cpu().contiguous() for name, t in state.items()}
    path = Path(directory) / PROJECTOR_FILE
    save_file(tensors, path, metadata={"format": "pt", "projector_type": projector_type(model.config)})
    return path


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _projector_of_hf_model(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / WEIGHTS_INDEX).is_file():
        weight_map = json.loads((directory / WEIGHTS_INDEX).read_text(encoding="utf-8"))["weight_map"]
        files = sorted({file for name, file in weight_map.items() if name.startswith(SAVED_PROJECTOR_PREFIX)})
    else:
        files = [WEIGHTS_FILE]
    tensors = {}
    for file in files:
        with safe_open(directory / file, framework="pt") as handle:
            for name in handle.keys():
                if name.startswith(SAVED_PROJECTOR_PREFIX):
                    tensors[name] = handle.get_tensor(name)
    return tensors


def projector_source_tensors(source: str | Path) -> dict[str, torch.Tensor]:
    """The raw tensors `projector_from` names (a directory or a file), projector keys among them."""
    path = Path(source)
    if path.is_dir():
        if (path / PROJECTOR_FILE).is_file():
            return load_file(path / PROJECTOR_FILE)
        if is_trainable_only(path) or (path / WEIGHTS_FILE).is_file() or (path / WEIGHTS_INDEX).is_file():
            if is_trainable_only(path):
                return load_file(path / WEIGHTS_FILE)
            return _projector_of_hf_model(path)
        raise QilinError(
            f"projector_from={source}: the folder holds no {PROJECTOR_FILE}, no checkpoint and no model weights"
        )
    if not path.is_file():
        raise QilinError(f"projector_from={source}: no such file or folder")
    return _read_file(path)


def projector_state(tensors: dict[str, torch.Tensor], projector: str, source: str) -> dict[str, torch.Tensor]:
    """The projector's own state dict (`linear_1.weight`, ...) from tensors in any of the three namings."""
    for prefix in (MODULE_PROJECTOR_PREFIX, SAVED_PROJECTOR_PREFIX):
        state = {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}
        if state:
            return state
    original = {name: t for name, t in tensors.items() if name.startswith(PROJECTOR_PREFIX)}
    if original:
        # original LLaVA (mm_projector.bin): Sequential indices 0 and 2, or one linear layer
        return split_tensors(original, "mlp2x_gelu" if projector == "mlp2x_gelu" else "linear")[2]
    raise QilinError(
        f"projector_from={source}: no projector tensors (keys starting with {SAVED_PROJECTOR_PREFIX}, "
        f"{MODULE_PROJECTOR_PREFIX} or {PROJECTOR_PREFIX})"
    )


def load_projector(model, source: str | Path) -> None:
    """Replace the model's projector weights with those `source` holds; shapes must match."""
    projector = model.model.multi_modal_projector
    state = projector_state(projector_source_tensors(source), projector_type(model.config), str(source))
    expected = set(projector.state_dict())
    if set(state) != expected:
        raise QilinError(
            f"projector_from={source}: holds {sorted(state)}, the model's projector has {sorted(expected)}"
        )
    if is_deepspeed_zero3_enabled():
        import deepspeed

        # parameters are partitioned at load under ZeRO-3: gather, let rank 0 write, re-partition
        with deepspeed.zero.GatheredParameters(list(projector.parameters()), modifier_rank=0):
            _copy_into(projector, state, source)
    else:
        _copy_into(projector, state, source)


def _copy_into(projector, state: dict[str, torch.Tensor], source) -> None:
    own = projector.state_dict()
    for name, tensor in state.items():
        if own[name].shape != tensor.shape:
            raise QilinError(
                f"projector_from={source}: {name} has shape {tuple(tensor.shape)}, the model's "
                f"{tuple(own[name].shape)} (a projector of another vision tower or LLM)"
            )
    with torch.no_grad():
        for name, parameter in projector.named_parameters():
            parameter.copy_(state[name].to(parameter.dtype))
