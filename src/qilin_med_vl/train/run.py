"""The training recipe, top to bottom: one stage of Qilin-Med-VL on transformers' Trainer.

load model → apply the stage table (what trains) → optional LoRA → tokenize records (drops counted)
→ padded or packed batches in a fixed order → Trainer (DDP/DeepSpeed/FSDP via accelerate) → save an
HF-native directory with the resolved config, the data summary, the log and the loss curves.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from qilin_med_vl.errors import QilinError
from qilin_med_vl.model.checkpoint import DTYPES, MODEL_CARD
from qilin_med_vl.model.projector import projector_type
from qilin_med_vl.model.sources import load_or_explain
from qilin_med_vl.train.callbacks import JsonlLogCallback, LossCurveCallback
from qilin_med_vl.train.collate import PackedCollator, PaddedCollator, plan_packs
from qilin_med_vl.train.config import TrainConfig, resolved_yaml
from qilin_med_vl.train.dataset import ConversationDataset, PackedDataset
from qilin_med_vl.train.lora import attach_lora, merge_lora, quantization_config
from qilin_med_vl.train.records import read_records, training_data
from qilin_med_vl.train.sampling import TrainingOrder
from qilin_med_vl.train.stages import apply_stage, trainable_counts
from qilin_med_vl.train.tokenize import ConversationTokenizer
from qilin_med_vl.train.trainer import QilinTrainer

logger = logging.getLogger(__name__)

CONFIG_FILE = "train_config.yaml"
DATA_SUMMARY_FILE = "data_summary.json"
RUN_SUMMARY_FILE = "train_summary.json"
TRAINER_STATE_FILE = "trainer_state.json"  # what Trainer writes in each checkpoint
ADAPTER_DIR = "adapter"  # LoRA runs: the peft adapter directory inside the output directory


@dataclass
class RunResult:
    output_dir: Path
    log_history: list[dict]
    data_summary: dict
    trainable: dict


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def load_model(config: TrainConfig, source: str | Path):
    """(model, processor) from `source`, with the attention kernel and (QLoRA) quantization asked for."""
    quantization = quantization_config(config.lora) if config.lora.enabled else None
    options = {"dtype": DTYPES[config.load_dtype], "attn_implementation": config.attn_implementation}
    if quantization is not None:
        options["quantization_config"] = quantization
    model = load_or_explain(
        "model", source, lambda s: LlavaForConditionalGeneration.from_pretrained(s, **options)
    )
    processor = load_or_explain("processor", source, AutoProcessor.from_pretrained)
    return model, processor


def build_dataset(config: TrainConfig, processor):
    """(dataset, collator, lengths for the sampler, data summary)."""
    data = training_data(config.data, config.stage, config.image_folder)
    records = read_records(data.files)
    tokenizer = ConversationTokenizer(processor, config.template, config.max_length)
    dataset = ConversationDataset(
        records,
        tokenizer,
        processor.image_processor,
        data.image_folder,
        progress=config.progress_bar and is_main_process(),
    )
    logger.info("data %s: %s", config.data, dataset.summary.line())
    if len(dataset) == 0:
        raise QilinError(
            f"{config.data}: no usable record ({dataset.summary.line()}); see {DATA_SUMMARY_FILE}"
        )
    pad = processor.tokenizer.pad_token_id
    if config.packing:
        packed = PackedDataset(dataset, plan_packs(dataset.lengths, config.max_length, config.seed))
        logger.info(
            "packing: %d samples into %d rows of at most %d tokens",
            len(dataset),
            len(packed),
            config.max_length,
        )
        return packed, PackedCollator(pad, config.attn_implementation), packed.lengths, dataset
    return dataset, PaddedCollator(pad), dataset.lengths, dataset


def training_arguments(config: TrainConfig, has_text_only: bool) -> TrainingArguments:
    find_unused = config.ddp_find_unused_parameters
    if find_unused is None:
        # A batch without images leaves the projector without gradients; DDP must then be told.
        find_unused = has_text_only
    return TrainingArguments(
        output_dir=config.output_dir,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps
        lr_scheduler_type=config.lr_scheduler_type,
        bf16=config.bf16,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=config.dataloader_num_workers,
        remove_unused_columns=False,  # our collator builds exactly the model's inputs
        report_to=config.report_to,
        deepspeed=config.deepspeed,
        ddp_find_unused_parameters=find_unused,
        disable_tqdm=not config.progress_bar,
        use_cpu=config.device == "cpu" or not torch.cuda.is_available(),
    )


def resume_point(config: TrainConfig) -> str | None:
    if config.resume_from_checkpoint != "latest":
        return config.resume_from_checkpoint
    last = get_last_checkpoint(config.output_dir) if Path(config.output_dir).is_dir() else None
    if last is None:
        logger.info(
            "resume_from_checkpoint=latest: no checkpoint in %s yet, starting fresh", config.output_dir
        )
    return last


def finished_run(config: TrainConfig, resume: str | None) -> RunResult | None:
    """The earlier result when resuming a run that already reached `max_steps` and wrote its model."""
    output_dir = Path(config.output_dir)
    if resume is None or config.max_steps <= 0 or not (output_dir / RUN_SUMMARY_FILE).is_file():
        return None
    state = json.loads((Path(resume) / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    if state.get("global_step", 0) < config.max_steps:
        return None
    summary = json.loads((output_dir / RUN_SUMMARY_FILE).read_text(encoding="utf-8"))
    return RunResult(output_dir, summary["log_history"], summary["data"], summary["trainable_parameters"])


def check_engine(config: TrainConfig) -> None:
    """Stop before any work when the config asks for DeepSpeed and it is not installed."""
    if config.deepspeed is None:
        return
    if importlib.util.find_spec("deepspeed") is None:
        raise QilinError(
            f"the config asks for DeepSpeed ({config.deepspeed}) but it is not installed: "
            "pip install 'qilin-med-vl[deepspeed]', or run plain DDP with deepspeed=null load_dtype=float32"
        )
    if not Path(config.deepspeed).is_file():
        raise QilinError(f"DeepSpeed config {config.deepspeed} not found (shipped: configs/train/deepspeed/)")


def has_hf_weights(directory: str | Path) -> bool:
    names = ("model.safetensors", "model.safetensors.index.json")
    return any((Path(directory) / name).is_file() for name in names)


def run(config: TrainConfig, extra_callbacks: list | None = None) -> RunResult:
    """Train one stage as `config` says; `extra_callbacks` are added to the Trainer's (e.g. to stop early)."""
    output_dir = Path(config.output_dir)
    check_engine(config)
    set_seed(config.seed)
    if is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / CONFIG_FILE).write_text(resolved_yaml(config), encoding="utf-8")

    # 1. the model, and what trains in this stage
    resume = resume_point(config)
    finished = finished_run(config, resume)
    if finished is not None:
        logger.info(
            "%s already reached max_steps=%d (%s): nothing left to train",
            output_dir,
            config.max_steps,
            resume,
        )
        return finished
    weights_from = config.model
    if resume is not None and not config.lora.enabled and not config.deepspeed and has_hf_weights(resume):
        # Trainer restores weights with a plain load_state_dict, which does not map the key names LLaVA
        # checkpoints are saved under (transformers 5.x) and so restores nothing; from_pretrained does.
        # Trainer still restores the optimizer, scheduler, RNG and step; LoRA adapters, DeepSpeed states
        # and sharded FSDP checkpoints load through their own code paths.
        weights_from = resume
        logger.info("resuming: model weights from %s", resume)
    model, processor = load_model(config, weights_from)
    model_config = model.config
    apply_stage(model, config.stage, config.unfreeze_vision)
    if config.lora.enabled:
        model = attach_lora(model, config.lora, config.gradient_checkpointing)
    trainable = trainable_counts(model.get_base_model() if config.lora.enabled else model)
    if config.gradient_checkpointing:
        model.config.use_cache = False

    # 2. the data: tokenized once, drops counted and written down
    train_dataset, collator, lengths, conversations = build_dataset(config, processor)
    if is_main_process():
        (output_dir / DATA_SUMMARY_FILE).write_text(
            json.dumps(conversations.summary.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8"
        )

    # 3. the Trainer
    args = training_arguments(config, conversations.has_text_only)
    order = TrainingOrder(
        lengths,
        "random" if config.packing and config.sampling == "group_by_length" else config.sampling,
        global_batch_size=args.per_device_train_batch_size
        * args.world_size
        * args.gradient_accumulation_steps,
        seed=config.seed,
    )
    trainer = QilinTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=processor,
        callbacks=[JsonlLogCallback(), LossCurveCallback(), *(extra_callbacks or [])],
        train_order=order,
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    trainer.train(resume_from_checkpoint=resume)

    # 4. an HF-native directory: plain transformers loads it
    if config.lora.enabled:
        trainer.save_model(str(output_dir / ADAPTER_DIR))  # the adapters alone, for peft users
    if config.lora.enabled and config.lora.merge:
        if trainer.is_world_process_zero():
            merged = merge_lora(trainer.accelerator.unwrap_model(trainer.model))
            merged.save_pretrained(output_dir)
            processor.save_pretrained(output_dir)
    else:
        trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        (output_dir / CONFIG_FILE).write_text(resolved_yaml(config), encoding="utf-8")
        card = MODEL_CARD.format(name=output_dir.name, projector=projector_type(model_config))
        (output_dir / "README.md").write_text(card, encoding="utf-8")
        summary = {
            "stage": config.stage,
            "world_size": args.world_size,
            "global_batch_size": order.global_batch_size,
            "trainable_parameters": trainable,
            "data": conversations.summary.to_dict(),
            "log_history": trainer.state.log_history,
        }
        (output_dir / RUN_SUMMARY_FILE).write_text(
            json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    return RunResult(output_dir, trainer.state.log_history, conversations.summary.to_dict(), trainable)
