"""Validation during training: the held-out split, and a few generated answers logged at each evaluation.

The split is either a fraction of the stage's usable records (a seeded random choice, so a resume
holds out the same ones) or a separate records file. Trainer computes `eval_loss` on it every
`eval_steps`; `HeldOutAnswers` then generates greedy answers for the first `answers` held-out samples
(the prompt is the sample's tokens before its first supervised token) and appends them, with the
reference answer, to `eval_answers.jsonl`. Every process generates (under ZeRO-3 generation is a
collective); only the main process writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from qilin_med_vl.train.dataset import ConversationDataset
from qilin_med_vl.train.tokenize import IGNORE_INDEX

logger = logging.getLogger(__name__)

ANSWERS_FILE = "eval_answers.jsonl"


def split_off(dataset: ConversationDataset, fraction: float, seed: int):
    """(training part, held-out part): `fraction` of the samples, at least one, chosen with `seed`."""
    count = max(1, round(len(dataset) * fraction))
    if count >= len(dataset):
        raise ValueError(
            f"validation.fraction {fraction} leaves nothing to train on ({len(dataset)} samples)"
        )
    order = np.random.default_rng(seed).permutation(len(dataset))
    held_out, kept = np.sort(order[:count]), np.sort(order[count:])
    return dataset.subset(kept), dataset.subset(held_out)


class HeldOutAnswers(TrainerCallback):
    def __init__(self, dataset: ConversationDataset, tokenizer, count: int, max_new_tokens: int):
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.count = min(count, len(dataset))
        self.max_new_tokens = max_new_tokens

    def prompt_and_reference(self, index: int) -> tuple[dict, str]:
        item = self.dataset[index]
        supervised = torch.nonzero(item["labels"] != IGNORE_INDEX)
        first = int(supervised[0])
        end = first
        while end < len(item["labels"]) and item["labels"][end] != IGNORE_INDEX:
            end += 1  # the first answer's supervised run
        inputs = {"input_ids": item["input_ids"][None, :first]}  # (1, prompt)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if item["pixel_values"] is not None:
            inputs["pixel_values"] = item["pixel_values"][None]  # (1, 3, H, W)
        reference = self.tokenizer.decode(item["labels"][first:end].tolist(), skip_special_tokens=True)
        return inputs, reference.strip()

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or self.count == 0:
            return
        was_training = model.training
        model.eval()
        lines = []
        device = next(model.parameters()).device
        dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        with torch.no_grad():
            for index in range(self.count):
                inputs, reference = self.prompt_and_reference(index)
                inputs = {k: v.to(device) for k, v in inputs.items()}
                if "pixel_values" in inputs:
                    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                output = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
                answer = self.tokenizer.decode(
                    output[0, inputs["input_ids"].shape[1] :].tolist(), skip_special_tokens=True
                )
                lines.append({"step": state.global_step, "sample": index, "answer": answer.strip(),
                              "reference": reference})  # fmt: skip
        if was_training:
            model.train()
        if state.is_world_process_zero:
            with open(Path(args.output_dir) / ANSWERS_FILE, "a", encoding="utf-8") as stream:
                stream.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            for line in lines:
                logger.info("step %d held-out %d: %r (reference %r)", line["step"], line["sample"],
                            line["answer"][:80], line["reference"][:80])  # fmt: skip
