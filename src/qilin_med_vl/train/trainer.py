"""transformers' Trainer with the project's data order and throughput, through public extension points only.

- `get_train_dataloader`: our sampler (length-grouped or packed order, fixed per seed and epoch) and
  collator, prepared by accelerate for DDP/DeepSpeed/FSDP like the default one.
- `compute_loss`: counts the real (non-padding) input tokens of each micro-batch, then defers to Trainer.
- `log`: adds `tokens_per_second` (all processes together) to every training log line.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from qilin_med_vl.train.sampling import TrainingOrder


class QilinTrainer(Trainer):
    def __init__(self, *args, train_order: TrainingOrder, pad_token_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_order = train_order
        self.pad_token_id = pad_token_id
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
