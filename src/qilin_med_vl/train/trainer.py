"""transformers' Trainer with the project's data order, checkpoints and throughput, through public extension
points only.

- `get_train_dataloader`: our sampler (length- or modality-grouped or packed order, fixed per seed and
  epoch) and collator, prepared by accelerate for DDP/DeepSpeed/FSDP like the default one.
- `compute_loss`: counts the real (non-padding) input tokens of each micro-batch, then defers to Trainer.
- `log`: adds `tokens_per_second` (all processes together) to every training log line.
- `save_model`: while `trainable_checkpoints` is on, writes only the tensors that train (see
  train/weights.py); the run turns it off before the final, full save.
- `create_optimizer`: with `projector_lr`, the projector's parameters get their own learning rate
  (LLaVA's `mm_projector_lr`); otherwise Trainer's own optimizer.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from qilin_med_vl.train.sampling import TrainingOrder
from qilin_med_vl.train.weights import save_trainable


def resident_parameter_bytes(model) -> int:
    """Bytes of parameters this process holds: its shard under FSDP2 (DTensor) or ZeRO-3 (`ds_tensor`)."""
    from torch.distributed.tensor import DTensor

    total = 0
    for parameter in model.parameters():
        local = (
            parameter.to_local()
            if isinstance(parameter, DTensor)
            else getattr(parameter, "ds_tensor", parameter)
        )
        total += local.numel() * local.element_size()
    return total


def projector_parameter_ids(model) -> set[int]:
    """ids of every projector parameter (also of peft's trained copy), found by module type."""
    return {
        id(p)
        for module in model.modules()
        if isinstance(module, LlavaMultiModalProjector)
        for p in module.parameters()
    }


class QilinTrainer(Trainer):
    def __init__(
        self,
        *args,
        train_order: TrainingOrder,
        pad_token_id: int,
        trainable_checkpoints: bool = False,
        projector_lr: float | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.train_order = train_order
        self.pad_token_id = pad_token_id
        self.trainable_checkpoints = trainable_checkpoints
        self.projector_lr = projector_lr
        self._tokens_since_log = 0
        self._last_log_time = time.perf_counter()

    def get_train_dataloader(self) -> DataLoader:
        loader = DataLoader(
            self.train_dataset,
            batch_size=self.args.per_device_train_batch_size,
            sampler=self.train_order,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
            drop_last=self.args.dataloader_drop_last,
            persistent_workers=self.args.dataloader_num_workers > 0,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Padding is the pad id; a real token equal to it (LLaMA pads with <unk>) is rare enough to ignore.
        if model.training:
            self._tokens_since_log += int((inputs["input_ids"] != self.pad_token_id).sum())
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            tokens = torch.tensor(self._tokens_since_log, dtype=torch.float64, device=self.args.device)
            tokens = self.accelerator.reduce(tokens, reduction="sum")  # every process logs together
            now = time.perf_counter()
            logs["tokens_per_second"] = round(float(tokens) / max(now - self._last_log_time, 1e-9), 1)
            self._tokens_since_log, self._last_log_time = 0, now
        super().log(logs, start_time)

    def trained_tensors(self) -> dict[str, torch.Tensor]:
        """{parameter name: tensor} of the parameters that train, whole (gathered under ZeRO-3 / FSDP)."""
        model = self.accelerator.unwrap_model(self.model)
        names = {name for name, p in model.named_parameters() if p.requires_grad}
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            # a collective: every process takes part, every process gets the full tensors
            state = self.accelerator.get_state_dict(
                self.deepspeed if self.is_deepspeed_enabled else self.model
            )
            return {name: tensor for name, tensor in (state or {}).items() if name in names}
        return {name: p for name, p in model.named_parameters() if name in names}

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if not self.trainable_checkpoints:
            super().save_model(output_dir, _internal_call)
            return
        tensors = self.trained_tensors()
        if self.args.should_save:
            save_trainable(tensors, output_dir or self.args.output_dir)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.projector_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(model))
        projector = projector_parameter_ids(model)
        groups: dict[tuple[bool, bool], list] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                groups.setdefault((id(parameter) in projector, name in decay), []).append(parameter)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if decays else 0.0,
                **({"lr": self.projector_lr} if is_projector else {}),
            }
            for (is_projector, decays), params in sorted(groups.items())
        ]
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer
