"""Training step time with logits at supervised positions only (our collators) against every position.

    .venv/bin/python benchmarks/training_kept_logits.py                  # default: 8 rounds, ~1 minute
    .venv/bin/python benchmarks/training_kept_logits.py --rounds 20 --threads 1

The model is the `tiny` preset that `make demo` trains (`qilin model create --preset tiny`: 2-layer
CLIP-style tower, 64 image tokens, 2-layer 128-wide LLaMA, 6,261-token vocabulary). The batches have
the shape of the demo's stage-2 batches: 16 rows of a chat-template prompt (the Vicuna system line,
64 image tokens, a question: about 140 tokens) and a short supervised answer (4 tokens), padded by
`PaddedCollator`. Both sides run forward and backward on the same batch with the same weights:
- ours: the batch as the collator writes it, with `logits_to_keep` (a (B, T) mask of the positions
  whose next token is supervised) and `shift_labels`;
- the baseline: the same batch without those two keys, so the model computes logits at every
  position, which is what transformers does by default.
Rounds alternate which side goes first; each side's best time is kept. Prints both times, the loss of
each (they must agree), the logits each side holds, and the speed-up.

What it shows is the head's share of a step: large for a small model with a 6k vocabulary, where the
head over every position is most of the arithmetic; for a 13B LLaMA (5,120 wide, 32,000 tokens) the
head is about 1% of the arithmetic, and what is saved there is memory: fp32 logits of a 16 x 2,048
batch are 4.2 GB, of its supervised positions a fraction of that.
"""

from __future__ import annotations

import argparse
import time

import torch

from qilin_med_vl.model.compose import assemble
from qilin_med_vl.model.tiny import tiny_parts
from qilin_med_vl.train.collate import PaddedCollator
from qilin_med_vl.train.tokenize import IGNORE_INDEX

SYSTEM_AND_QUESTION_TOKENS = 76  # around the 64 image tokens, as the tiny tokenizer splits a demo prompt
ANSWER_TOKENS = 4  # a short answer as the tiny tokenizer splits it, e.g. "▁", "较", "大", "</s>"


def demo_shaped_samples(model, rows: int, seed: int) -> list[dict]:
    """`rows` samples of random tokens in the demo's layout: prompt, image tokens, answer supervised."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.text_config.vocab_size
    image_tokens = model.config.image_seq_length
    samples = []
    for _ in range(rows):
        prompt = SYSTEM_AND_QUESTION_TOKENS + int(torch.randint(-6, 7, (1,), generator=generator))
        ids = torch.randint(10, vocab - 1, (prompt + image_tokens + ANSWER_TOKENS,), generator=generator)
        ids[40 : 40 + image_tokens] = model.config.image_token_index  # (L,)
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[-ANSWER_TOKENS:] = ids[-ANSWER_TOKENS:]
        pixels = torch.randn(3, 64, 64, generator=generator)
        samples.append({"input_ids": ids, "labels": labels, "pixel_values": pixels})
    return samples


def step_seconds(model, batch: dict) -> tuple[float, float]:
    """(seconds, loss) of one forward and backward pass on `batch`."""
    model.zero_grad(set_to_none=True)
    started = time.perf_counter()
    items = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
    loss = model(**batch, num_items_in_batch=items).loss
    loss.backward()
    return time.perf_counter() - started, loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=8, help="rounds of both sides (default 8)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch (default 16, as the demo)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    encoder, llm, tokenizer = tiny_parts(seed=0)
    model, _ = assemble(encoder, llm, tokenizer, "mlp2x_gelu")
    model.train()
    for parameter in model.model.vision_tower.parameters():
        parameter.requires_grad = False  # stage 2: the vision tower is frozen
    ours = PaddedCollator(tokenizer.pad_token_id)(demo_shaped_samples(model, args.batch_size, seed=0))
    baseline = {key: value for key, value in ours.items() if key not in ("logits_to_keep", "shift_labels")}
    sides = {"ours (supervised positions)": ours, "baseline (every position)": baseline}
    rows, positions = ours["input_ids"].shape
    print(
        f"batch {rows} x {positions} tokens, {len(ours['shift_labels'])} supervised; "
        f"torch threads {torch.get_num_threads()}"
    )
    for batch in sides.values():
        step_seconds(model, batch)  # warm-up: first-call allocations
    best = dict.fromkeys(sides, float("inf"))
    losses = {}
    for round_number in range(args.rounds):
        order = list(sides) if round_number % 2 == 0 else list(sides)[::-1]
        for name in order:
            seconds, losses[name] = step_seconds(model, sides[name])
            best[name] = min(best[name], seconds)
    vocab = model.config.text_config.vocab_size
    for name, batch in sides.items():
        kept = len(batch["shift_labels"]) if "shift_labels" in batch else rows * positions
        print(
            f"{name:<28} {best[name] * 1000:8.1f} ms/step  loss {losses[name]:.6f}  "
            f"logits {kept:,} x {vocab:,} ({kept * vocab * 4 / 2**20:.1f} MiB fp32)"
        )
    names = list(sides)
    print(f"speed-up (step time): {best[names[1]] / best[names[0]]:.2f}x")


if __name__ == "__main__":
    main()
