"""The training configuration: one dataclass, read from YAML with `key=value` overrides, saved resolved.

Every field has the default of the tiny CPU recipe's spirit (small, safe); the shipped YAML files under
configs/train/ set the paper's values. `resolved_yaml` writes exactly what ran, beside the checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qilin_med_vl.config import ConfigError, apply_overrides, from_mapping, load_yaml
from qilin_med_vl.llava_format import ALIGNMENT, INSTRUCTION, STAGES
from qilin_med_vl.train.sampling import SAMPLING
from qilin_med_vl.train.tokenize import IMAGE_PLACEMENTS

TEMPLATES = ("chat", "plain", "vicuna_v1", "llm")
LOAD_DTYPES = ("float32", "bfloat16", "float16", "auto")
CHECKPOINT_WEIGHTS = ("auto", "trainable", "full")


@dataclass
class LoraConfig:
    """LoRA/QLoRA on the language model (stage 2). `bits: 4` turns it into QLoRA (CUDA + bitsandbytes)."""

    enabled: bool = False
    r: int = 64
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    bits: int | None = None  # None: plain LoRA on full-precision weights; 4 or 8: QLoRA
    merge: bool = True  # write a merged, plain HF-native checkpoint at the end


@dataclass
class ValidationConfig:
    """A held-out part of the data: eval loss every `eval_steps`, and a few generated answers logged."""

    fraction: float = 0.0  # of the stage's usable records, held out at random (fixed by `seed`)
    file: str | None = None  # or a separate records file (JSONL / JSON list), images under image_folder
    eval_steps: int = 500
    answers: int = 4  # held-out samples whose generated answers are logged at each evaluation
    max_new_tokens: int = 64


@dataclass
class TrainConfig:
    stage: str = ALIGNMENT
    model: str = ""  # HF-native directory (stage 2: stage 1's output directory)
    data: str = (
        ""  # a `qilin data build` folder (its `stage` files), a JSONL/JSON file, or a folder of *.jsonl
    )
    image_folder: str | None = None  # default: the build's image root, or the data file's directory
    output_dir: str = "runs/align"
    template: str = "chat"  # chat (processor's template) | plain (LLaVA pretrain) | vicuna_v1 | llm
    image_placement: str = (
        "front"  # front: `<image>\n` + text, as LLaVA trains | as_written: as in the record
    )
    token_cache_dir: str | None = None  # tokenized-records cache; default: <output_dir's parent>/token_cache
    tokenize_num_proc: int | None = None  # processes for the first tokenization; default: the CPUs (<= 16)
    projector_from: str | None = (
        None  # a projector for `model`: a run directory, projector.safetensors or mm_projector.bin
    )
    checkpoint_weights: str = (
        "auto"  # trainable: checkpoints hold the trained tensors only; auto: so in alignment
    )
    max_length: int = 2048
    packing: bool = False
    sampling: str = "group_by_length"  # unpacked path only; packing plans its own order
    unfreeze_vision: bool = False
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    global_batch_size: int | None = None  # when set, accumulation = global / (per-device batch x processes)
    learning_rate: float = 1e-3
    projector_lr: float | None = None  # a separate learning rate for the projector (LLaVA's mm_projector_lr)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    bf16: bool = False
    gradient_checkpointing: bool = False
    device: str = "auto"  # auto: CUDA when available; cpu: CPU even on a GPU machine (gloo for DDP)
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2 (GPU)
    load_dtype: str = "float32"  # weights as loaded; bf16 compute comes from `bf16: true` (autocast)
    logging_steps: int = 1
    save_steps: int = 500
    save_total_limit: int | None = 1
    seed: int = 42
    dataloader_num_workers: int = 0
    resume_from_checkpoint: str | None = None  # a checkpoint-N directory, or "latest" in output_dir
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    deepspeed: str | None = None  # path to a DeepSpeed JSON (configs/train/deepspeed/zero2.json)
    fsdp: str | None = None  # e.g. "full_shard auto_wrap": PyTorch FSDP through the Trainer's arguments
    fsdp_config: str | None = None  # its JSON (configs/train/fsdp/fsdp2.json)
    ddp_find_unused_parameters: bool | None = None  # None: on when some records have no image
    progress_bar: bool = True
    lora: LoraConfig = field(default_factory=LoraConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def validate(self, source: str = "config") -> TrainConfig:
        def bad(message: str) -> ConfigError:
            return ConfigError(f"{source}: {message}")

        if self.stage not in STAGES:
            raise bad(f"stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if self.template not in TEMPLATES:
            raise bad(f"template {self.template!r} is not one of {', '.join(TEMPLATES)}")
        if self.sampling not in SAMPLING:
            raise bad(f"sampling {self.sampling!r} is not one of {', '.join(SAMPLING)}")
        if not self.model:
            raise bad("`model` is empty: give an HF-native model directory (`qilin model create ...`)")
        if not self.data:
            raise bad(
                "`data` is empty: give a `qilin data build` folder, a JSONL file, a JSON list or a folder of *.jsonl"
            )
        if self.max_length < 8:
            raise bad(f"max_length {self.max_length} is too small")
        if self.lora.enabled and self.stage != INSTRUCTION:
            raise bad("LoRA applies to the language model, which only trains in stage `instruction`")
        if self.device not in ("auto", "cpu"):
            raise bad(f"device {self.device!r} is not auto or cpu (the launcher picks GPUs)")
        if self.load_dtype not in LOAD_DTYPES:
            raise bad(f"load_dtype {self.load_dtype!r} is not one of {', '.join(LOAD_DTYPES)}")
        if self.image_placement not in IMAGE_PLACEMENTS:
            raise bad(f"image_placement {self.image_placement!r} is not one of {', '.join(IMAGE_PLACEMENTS)}")
        if self.checkpoint_weights not in CHECKPOINT_WEIGHTS:
            raise bad(
                f"checkpoint_weights {self.checkpoint_weights!r} is not one of {', '.join(CHECKPOINT_WEIGHTS)}"
            )
        if self.global_batch_size is not None and self.global_batch_size < 1:
            raise bad(f"global_batch_size {self.global_batch_size} must be a positive number of samples")
        if not 0.0 <= self.validation.fraction < 1.0:
            raise bad(f"validation.fraction {self.validation.fraction} must be in [0, 1)")
        if self.validation.fraction and self.validation.file:
            raise bad("give validation.fraction or validation.file, not both")
        if self.lora.bits not in (None, 4, 8):
            raise bad(f"lora.bits must be 4, 8 or empty, not {self.lora.bits!r}")
        return self

    @property
    def trainable_checkpoints(self) -> bool:
        """Whether checkpoints hold only the trained tensors (stage 1 by default: ~31M of 13B)."""
        if self.checkpoint_weights == "auto":
            return self.stage == ALIGNMENT and not self.lora.enabled
        return self.checkpoint_weights == "trainable"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply overrides; relative paths in it stay relative to the working directory."""
    raw = apply_overrides(load_yaml(path, "training config"), overrides or [])
    return from_mapping(TrainConfig, raw, str(path)).validate(str(path))


def resolved_yaml(config: TrainConfig) -> str:
    header = "# The resolved configuration of this run; rerun it with `qilin train --config <this file>`.\n"
    return header + yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
