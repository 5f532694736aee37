"""LoRA and QLoRA on the language model (stage 2) via peft, and the merge back into a plain checkpoint.

Adapters go on the LLM's linear layers only (a regex over module paths keeps them off the vision
tower, whose attention layers share names with the LLM's); the projector trains fully and is saved
with the adapters (`modules_to_save`), so checkpoints and resumes keep it.

The merge never reads the training model's parameters, which under ZeRO-3 or FSDP are shards: it
loads the base model afresh on the main process and the adapter directory the Trainer wrote (gathered
from every process), and folds one into the other. QLoRA loads the base model in
4 or 8 bits with bitsandbytes, which needs CUDA: on other devices it stops with a clear error.
"""

from __future__ import annotations

import re

import torch

from qilin_med_vl.errors import QilinError
from qilin_med_vl.train.config import LoraConfig
from qilin_med_vl.train.stages import freeze_identity_projector_layers

LLM_MODULE_PATH = r"model\.language_model\..*"  # under LlavaForConditionalGeneration (transformers 5)
PROJECTOR_MODULE = "multi_modal_projector"


def quantization_config(lora: LoraConfig):
    """The BitsAndBytesConfig of QLoRA, or None for plain LoRA; a clear error where it cannot run."""
    if lora.bits is None:
        return None
    if not torch.cuda.is_available():
        raise QilinError(
            f"lora.bits={lora.bits} (QLoRA) needs a CUDA GPU and bitsandbytes; on this machine use plain "
            "LoRA (lora.bits=null)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise QilinError("QLoRA needs bitsandbytes: pip install bitsandbytes") from error
    from transformers import BitsAndBytesConfig

    if lora.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def attach_lora(model, lora: LoraConfig, gradient_checkpointing: bool = False):
    """Wrap `model` in a PeftModel: LoRA on the LLM's `target_modules`, projector trained in full."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if lora.bits is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    names = "|".join(re.escape(name) for name in lora.target_modules)
    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=rf"{LLM_MODULE_PATH}\.({names})",
        modules_to_save=[PROJECTOR_MODULE],
        task_type="CAUSAL_LM",
    )
    wrapped = get_peft_model(model, peft_config)
    freeze_identity_projector_layers(wrapped)
    return wrapped


def merge_lora(config, adapter_dir, load_model):
    """The base model of `config` (`load_model(config, source)` loads it) with the adapters of
    `adapter_dir` folded into its weights: a plain LlavaForConditionalGeneration."""
    from peft import PeftModel
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    if config.lora.bits is not None:
        raise QilinError(
            "cannot merge adapters into a quantized (QLoRA) model in place: reload the base model in bf16, "
            "load the adapter directory with peft, and merge that"
        )
    if is_deepspeed_zero3_enabled():
        # training is over; the base must load whole on this one process, not partitioned across all
        unset_hf_deepspeed_config()
    base = load_model(config, config.model)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
