"""The training recipe, top to bottom: one stage of Qilin-Med-VL on transformers' Trainer.

distributed setup (TrainingArguments first, so ZeRO-3 / FSDP are registered before any weight loads)
→ tokenize records once into a shared, memory-mapped cache (the main process works, the others wait
and map it) → load the model (+ a projector file) → apply the stage table (what trains) → optional
LoRA → padded or packed batches in a fixed order → Trainer (DDP/DeepSpeed/FSDP via accelerate;
checkpoints of what trains) → save an HF-native directory with the resolved config, the data summary,
the log and the loss curves.
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
from qilin_med_vl.train.records import training_data
from qilin_med_vl.train.sampling import GROUP_BY_LENGTH, GROUP_BY_MODALITY, RANDOM, TrainingOrder
from qilin_med_vl.train.stages import apply_stage, trainable_counts
from qilin_med_vl.train.token_cache import tokenized_rows
from qilin_med_vl.train.tokenize import ConversationTokenizer
from qilin_med_vl.train.trainer import QilinTrainer, resident_parameter_bytes
from qilin_med_vl.train.validation import HeldOutAnswers, split_off
from qilin_med_vl.train.weights import is_trainable_only, load_projector, save_projector

logger = logging.getLogger(__name__)

CONFIG_FILE = "train_config.yaml"
DATA_SUMMARY_FILE = "data_summary.json"
RUN_SUMMARY_FILE = "train_summary.json"
TRAINER_STATE_FILE = "trainer_state.json"  # what Trainer writes in each checkpoint
ADAPTER_DIR = "adapter"  # LoRA runs: the peft adapter directory inside the output directory
TOKEN_CACHE_DIR = "token_cache"  # default cache folder, beside the output directory


@dataclass
class RunResult:
    output_dir: Path
    log_history: list[dict]
    data_summary: dict
    trainable: dict


@dataclass
class RunData:
    train: object  # the dataset the Trainer draws from (ConversationDataset or PackedDataset)
    collator: object
    conversations: ConversationDataset  # the training samples, unpacked
    validation: ConversationDataset | None
    reused_cache: bool


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def gradient_accumulation(config: TrainConfig, processes: int) -> int:
    """Accumulation steps: from `global_batch_size` when set (any GPU count), else as configured."""
    if config.global_batch_size is None:
        return config.gradient_accumulation_steps
    per_step = config.per_device_train_batch_size * processes
    if config.global_batch_size % per_step:
        raise QilinError(
            f"global_batch_size {config.global_batch_size} is not a multiple of per_device_train_batch_size "
            f"{config.per_device_train_batch_size} x {processes} processes; change per_device_train_batch_size"
        )
    return config.global_batch_size // per_step


def load_processor(source: str | Path):
    return load_or_explain("processor", source, AutoProcessor.from_pretrained)


def load_model(config: TrainConfig, source: str | Path):
    """The model from `source`, with the attention kernel and (QLoRA) quantization asked for, and the
    projector from `projector_from` when given. Call it after the TrainingArguments exist: under ZeRO-3
    transformers then partitions the weights as they load, under FSDP it loads on rank 0 only."""
    quantization = quantization_config(config.lora) if config.lora.enabled else None
    options = {"dtype": DTYPES[config.load_dtype], "attn_implementation": config.attn_implementation}
    if quantization is not None:
        options["quantization_config"] = quantization
    model = load_or_explain(
        "model", source, lambda s: LlavaForConditionalGeneration.from_pretrained(s, **options)
    )
    if config.projector_from:
        load_projector(model, config.projector_from)
        logger.info("projector: weights from %s", config.projector_from)
    return model


def zero_stage(config: TrainConfig) -> int | None:
    if config.deepspeed is None:
        return None
    return (
        json.loads(Path(config.deepspeed).read_text(encoding="utf-8"))
        .get("zero_optimization", {})
        .get("stage")
    )


def check_text_only_safety(config: TrainConfig, dataset: ConversationDataset) -> None:
    """Under ZeRO-3 a micro-batch without images on one process would stall the others in the vision
    tower's parameter gathering; modality-grouped batches make every process agree at each step."""
    if zero_stage(config) != 3 or not dataset.has_text_only or not dataset.has_image.any():
        return
    if config.packing or config.sampling != GROUP_BY_MODALITY:
        raise QilinError(
            f"{config.data}: records with and without images under ZeRO-3 need sampling={GROUP_BY_MODALITY} "
            "and packing=false (so that each step is all-image or all-text on every process)"
        )


def tokenized(config: TrainConfig, processor, files, image_folder):
    tokenizer = ConversationTokenizer(processor, config.template, config.max_length, config.image_placement)
    cache_dir = Path(config.token_cache_dir or Path(config.output_dir).parent / TOKEN_CACHE_DIR)
    result = tokenized_rows(files, image_folder, tokenizer, cache_dir, config.tokenize_num_proc)
    dataset = ConversationDataset(
        result.rows,
        processor.image_processor,
        image_folder,
        tokenizer.image_token_id,
        tokenizer.num_image_tokens,
    )
    return dataset, result.reused


def build_data(config: TrainConfig, processor) -> RunData:
    """The training (and validation) data; tokenized once, drops counted."""
    data = training_data(config.data, config.stage, config.image_folder)
    dataset, reused = tokenized(config, processor, data.files, data.image_folder)
    logger.info("data %s: %s", config.data, dataset.summary.line())
    if len(dataset) == 0:
        raise QilinError(
            f"{config.data}: no usable record ({dataset.summary.line()}); see {DATA_SUMMARY_FILE}"
        )
    validation = None
    if config.validation.file:
        validation, _ = tokenized(config, processor, [Path(config.validation.file)], data.image_folder)
    elif config.validation.fraction:
        dataset, validation = split_off(dataset, config.validation.fraction, config.seed)
    if validation is not None:
        logger.info("validation: %d held-out samples", len(validation))
    pad = processor.tokenizer.pad_token_id
    if config.packing:
        packed = PackedDataset(dataset, plan_packs(dataset.lengths, config.max_length, config.seed))
        logger.info(
            "packing: %d samples into %d rows of at most %d tokens",
            len(dataset),
            len(packed),
            config.max_length,
        )
        return RunData(packed, PackedCollator(pad, config.attn_implementation), dataset, validation, reused)
    return RunData(dataset, PaddedCollator(pad), dataset, validation, reused)


def fsdp_options(config: TrainConfig) -> dict | None:
    """The FSDP JSON as a dict, without its `_comment`."""
    if not config.fsdp_config:
        return None
    path = Path(config.fsdp_config)
    if not path.is_file():
        raise QilinError(f"fsdp_config {path} not found (shipped: configs/train/fsdp/fsdp2.json)")
    return {
        key: value for key, value in json.loads(path.read_text(encoding="utf-8")).items() if key != "_comment"
    }


def training_arguments(config: TrainConfig, accumulation: int, evaluate: bool) -> TrainingArguments:
    """The Trainer's arguments. Creating them registers DeepSpeed's config (and initialises the process
    group), which is why they exist before the model loads."""
    return TrainingArguments(
        output_dir=config.output_dir,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=accumulation,
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
        eval_strategy="steps" if evaluate else "no",
        eval_steps=config.validation.eval_steps if evaluate else None,
        prediction_loss_only=True,  # validation reports eval_loss; the kept logits are not per-sample
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=config.dataloader_num_workers,
        remove_unused_columns=False,  # our collator builds exactly the model's inputs
        report_to=config.report_to,
        deepspeed=config.deepspeed,
        fsdp=config.fsdp or "",
        fsdp_config=fsdp_options(config),
        ddp_find_unused_parameters=config.ddp_find_unused_parameters,
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


def upcast_trainable(model, config: TrainConfig) -> None:
    """Without DeepSpeed (which keeps float32 master weights itself), parameters that train are held in
    float32 while the frozen ones stay in `load_dtype`: stage 1 on DDP trains its projector in full
    precision beside a bf16 LLM."""
    if config.deepspeed is not None or config.lora.bits is not None:
        return
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.is_floating_point() and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def run(config: TrainConfig, extra_callbacks: list | None = None, model_loader=load_model) -> RunResult:
    """Train one stage as `config` says; `extra_callbacks` are added to the Trainer's (e.g. to stop early).
    `model_loader(config, source)` loads the model once the DeepSpeed config is registered (default
    `load_model`); a caller may wrap it, e.g. to see the state in which the weights load."""
    output_dir = Path(config.output_dir)
    check_engine(config)
    set_seed(config.seed)
    if is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / CONFIG_FILE).write_text(resolved_yaml(config), encoding="utf-8")
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

    # 1. the distributed setup, before any weights exist
    evaluate = bool(config.validation.fraction or config.validation.file)
    args = training_arguments(config, gradient_accumulation(config, world_size()), evaluate)

    # 2. the data: tokenized once by the main process into the cache, memory-mapped by the others
    processor = load_processor(config.model)
    with args.main_process_first(desc="tokenizing"):
        data = build_data(config, processor)
    conversations = data.conversations
    check_text_only_safety(config, conversations)
    if is_main_process():
        (output_dir / DATA_SUMMARY_FILE).write_text(
            json.dumps(conversations.summary.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8"
        )
    if args.ddp_find_unused_parameters is None:
        # A batch without images leaves the projector without gradients; DDP must then be told. The
        # argument is read when the Trainer wraps the model.
        args.ddp_find_unused_parameters = conversations.has_text_only

    # 3. the model, and what trains in this stage
    weights_from = config.model
    if (
        resume is not None
        and not config.lora.enabled
        and not config.deepspeed
        and has_hf_weights(resume)
        and not is_trainable_only(resume)
    ):
        # Trainer restores weights with a plain load_state_dict, which does not map the key names LLaVA
        # checkpoints are saved under (transformers 5.x) and so restores nothing; from_pretrained does.
        # Trainer still restores the optimizer, scheduler, RNG and step; trainable-only checkpoints (held
        # under the module's own names), LoRA adapters, DeepSpeed states and sharded FSDP checkpoints
        # load through the Trainer's own code paths.
        weights_from = resume
        logger.info("resuming: model weights from %s", resume)
    model = model_loader(config, weights_from)
    model_config = model.config
    crop = processor.image_processor.crop_size
    apply_stage(model, config.stage, config.unfreeze_vision, (crop["height"], crop["width"]))
    upcast_trainable(model, config)
    if config.lora.enabled:
        model = attach_lora(model, config.lora, config.gradient_checkpointing)
    trainable = trainable_counts(model.get_base_model() if config.lora.enabled else model)
    if config.gradient_checkpointing:
        model.config.use_cache = False

    # 4. the Trainer
    order = TrainingOrder(
        data.train.lengths,
        RANDOM
        if config.packing and config.sampling in (GROUP_BY_LENGTH, GROUP_BY_MODALITY)
        else config.sampling,
        global_batch_size=args.per_device_train_batch_size
        * args.world_size
        * args.gradient_accumulation_steps,
        seed=config.seed,
        has_image=None if config.packing else conversations.has_image,
    )
    callbacks = [JsonlLogCallback(), LossCurveCallback()]
    eval_dataset = data.validation
    if eval_dataset is not None:
        callbacks.append(HeldOutAnswers(eval_dataset, processor.tokenizer, config.validation.answers,
                                        config.validation.max_new_tokens))  # fmt: skip
        if config.packing:
            eval_dataset = PackedDataset(eval_dataset, [[i] for i in range(len(eval_dataset))])
    trainer = QilinTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=eval_dataset,
        data_collator=data.collator,
        processing_class=processor,
        callbacks=[*callbacks, *(extra_callbacks or [])],
        train_order=order,
        pad_token_id=processor.tokenizer.pad_token_id,
        trainable_checkpoints=config.trainable_checkpoints,
        projector_lr=config.projector_lr,
    )
    trainer.train(resume_from_checkpoint=resume)
    resident = resident_parameter_bytes(trainer.model_wrapped)  # this process's share, sharded or not

    # 5. an HF-native directory: plain transformers loads it
    trainer.trainable_checkpoints = False
    if config.lora.enabled:
        trainer.save_model(str(output_dir / ADAPTER_DIR))  # the adapters alone (gathered), for peft users
    if config.lora.enabled and config.lora.merge:
        if trainer.is_world_process_zero():
            merged = merge_lora(config, output_dir / ADAPTER_DIR, load_model)
            merged.save_pretrained(output_dir)
            processor.save_pretrained(output_dir)
    else:
        trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        if config.stage == "alignment" and not config.lora.enabled:
            save_projector(trainer.accelerator.unwrap_model(trainer.model), output_dir)
        (output_dir / CONFIG_FILE).write_text(resolved_yaml(config), encoding="utf-8")
        card = MODEL_CARD.format(name=output_dir.name, projector=projector_type(model_config))
        (output_dir / "README.md").write_text(card, encoding="utf-8")
        summary = {
            "stage": config.stage,
            "world_size": args.world_size,
            "global_batch_size": order.global_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "resident_parameter_bytes": resident,
            "trainable_parameters": trainable,
            "token_cache_reused": data.reused_cache,
            "training_samples": len(conversations),
            "validation_samples": len(data.validation) if data.validation is not None else 0,
            "data": conversations.summary.to_dict(),
            "log_history": trainer.state.log_history,
        }
        (output_dir / RUN_SUMMARY_FILE).write_text(
            json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    return RunResult(output_dir, trainer.state.log_history, conversations.summary.to_dict(), trainable)
