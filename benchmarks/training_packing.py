"""Stage-2 training throughput: `qilin train ... packing=true` against transformers' Trainer on padded batches.

    .venv/bin/python benchmarks/training_packing.py                      # default: 80 samples, 3 rounds
    .venv/bin/python benchmarks/training_packing.py --samples 400 --repeats 3   # larger, steadier

The model is a CPU-sized LLaVA (`LlavaForConditionalGeneration`: a 4-layer CLIP-style vision tower on
64×64 images in 8-pixel patches → 64 image tokens, the mlp2x_gelu projector, a 4-layer 512-wide
LLaMA-style LM with the tiny tokenizer; about 21 M parameters), composed with the project's public
`assemble`. The samples follow ChiMed-VL-Instruction's length distribution (question median 20 tokens,
quartiles 16 / 25, maximum 4,040; answer median 22, quartiles 12 / 34, maximum 732): a log-normal body
through the medians and quartiles, and for questions a log-uniform tail up to the maximum as thin as
the paper's token totals allow, truncated at `--max-length` (512) like any run.

Three ways to train the same samples for one epoch, the same number of samples per optimizer step
on average, the same tokenization (the project's tokenizer, so every side sees identical tokens):
- ours: the project's `run` (what `qilin train --config X packing=true` calls) — packs of at most
  `max_length` tokens with a block-diagonal 4-D mask;
- the upstream recipe: plain `transformers.Trainer` + `LlavaForConditionalGeneration`, each batch padded to
  its longest sample (LLaVA's collator), in random order (`train_sampling_strategy="random"`, default);
- the same, length-grouped (`train_sampling_strategy="group_by_length"`, LLaVA's `group_by_length`),
  with the mega-batch of 50 batches transformers uses on the full dataset (on a few samples it would
  shrink it to one batch, which is random order).
The three run in turn, `--repeats` times, each round starting with the next side, so load bursts from
other processes fall on all of them; each side's best time is kept. Each trained model is then scored on the same held-out samples (loss parity).
Prints supervised tokens/s per side and the ratios, ours over each baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch.utils.data import Sampler
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_pt_utils import get_length_grouped_indices
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from qilin_med_vl.model.checkpoint import save_checkpoint
from qilin_med_vl.model.compose import VisionEncoder, assemble
from qilin_med_vl.model.tiny_tokenizer import build_tiny_tokenizer
from qilin_med_vl.train.config import TrainConfig
from qilin_med_vl.train.dataset import ConversationDataset
from qilin_med_vl.train.run import run
from qilin_med_vl.train.token_cache import tokenized_rows
from qilin_med_vl.train.tokenize import IGNORE_INDEX, ConversationTokenizer

# ChiMed-VL-Instruction token lengths (the paper's Table 2): (Q1, median, Q3, maximum)
QUESTION_LENGTHS = (16, 20, 25, 4040)
ANSWER_LENGTHS = (12, 22, 34, 732)
# The paper's token totals (10 M question and 13 M answer tokens over 469,441 pairs: means 21.3 and 27.7)
# leave room for about 0.02% of questions in a tail reaching 4,040 tokens; the answers' log-normal alone
# already has a mean of 29.6 and reaches about 760 tokens over 469,441 draws, so answers get no extra tail.
QUESTION_TAIL_SHARE = 0.0002
ANSWER_TAIL_SHARE = 0.0
QUARTILE_Z = 0.6745  # the standard normal's third quartile
WORDS = "患者胸部影像显示右肺下叶结节边界清晰未见明显钙化建议随访复查心影大小正常肝脏密度均匀"
VISION = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    image_size=64,
    patch_size=8,
    projection_dim=128,
)
LLM = dict(
    hidden_size=512,
    intermediate_size=1408,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=8,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)
MEGA_BATCHES = 50  # transformers' mega-batch, in batches, on any dataset of 3,200 samples or more
SIDES = ("ours (packing)", "Trainer, padded, random order", "Trainer, padded, length-grouped")


def draw_length(quartiles: tuple[int, int, int, int], tail_share: float, rng: random.Random) -> int:
    """A token count from a log-normal through (Q1, median, Q3), with a thin log-uniform tail to the max."""
    q1, median, q3, maximum = quartiles
    if rng.random() < tail_share:
        return int(math.exp(rng.uniform(math.log(2 * q3), math.log(maximum))))
    sigma = math.log(q3 / q1) / (2 * QUARTILE_Z)
    return max(1, min(maximum, round(math.exp(rng.gauss(math.log(median), sigma)))))


def text_of(tokens: int, tokenizer, rng: random.Random) -> str:
    """Chinese text of about `tokens` tokens under `tokenizer`."""
    probe = "".join(rng.choice(WORDS) for _ in range(400))
    chars_per_token = len(probe) / len(tokenizer(probe, add_special_tokens=False)["input_ids"])
    return "".join(rng.choice(WORDS) for _ in range(max(1, round(tokens * chars_per_token))))


def write_records(folder: Path, count: int, seed: int, tokenizer) -> Path:
    """`count` instruction records with one picture each; token lengths as ChiMed-VL's."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    path = folder / f"records_{seed}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for number in range(count):
            name = f"images/{seed}_{number}.png"
            image = Image.new("RGB", (64, 64), (number * 7 % 256, 40, 90))
            ImageDraw.Draw(image).ellipse((number % 30, 10, number % 30 + 24, 40), fill=(230, 230, 220))
            image.save(folder / name)
            question = text_of(draw_length(QUESTION_LENGTHS, QUESTION_TAIL_SHARE, rng), tokenizer, rng)
            answer = text_of(draw_length(ANSWER_LENGTHS, ANSWER_TAIL_SHARE, rng), tokenizer, rng)
            record = {
                "id": f"{seed}-{number}",
                "image": name,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{question}"},
                    {"from": "gpt", "value": answer},
                ],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def create_model(folder: Path) -> Path:
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    vision = CLIPVisionModel(CLIPVisionConfig(**VISION))
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **LLM,
        )
    )
    encoder = VisionEncoder(vision.eval(), list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD))
    model, processor = assemble(encoder, llm.eval(), tokenizer, "mlp2x_gelu")
    return save_checkpoint(model, processor, folder / "model")


class WallClock(TrainerCallback):
    """Seconds from the start of training to the end of its last step (loading, plotting and saving excluded)."""

    def __init__(self):
        self.seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self.started


class AtScaleGrouping(Sampler[int]):
    """transformers' length grouping with the mega-batches it uses on the full dataset (50 batches).

    `get_length_grouped_indices` shrinks the mega-batch to a quarter of a small dataset: on these few
    samples it would be a single batch, i.e. random order. With 469,441 samples it is 50 batches.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        return iter(
            get_length_grouped_indices(
                self.lengths, self.batch_size, mega_batch_mult=MEGA_BATCHES, generator=generator
            )
        )


class GroupedTrainer(Trainer):
    """The upstream recipe's Trainer with `group_by_length` as it behaves on the full dataset."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return AtScaleGrouping(dataset.lengths, self.args.per_device_train_batch_size, self.args.seed)


class UpstreamCollator:
    """LLaVA's DataCollatorForSupervisedDataset: right-pad to the batch's longest, mask = not padding."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict]) -> dict:
        input_ids = torch.nn.utils.rnn.pad_sequence(
            [item["input_ids"] for item in items], batch_first=True, padding_value=self.pad_token_id
        )  # (B, T)
        labels = torch.nn.utils.rnn.pad_sequence(
            [item["labels"] for item in items], batch_first=True, padding_value=IGNORE_INDEX
        )  # (B, T)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": input_ids.ne(self.pad_token_id),
            "pixel_values": torch.stack([item["pixel_values"] for item in items]),  # (B, 3, H, W)
        }


def common_arguments(args, output_dir: Path) -> dict:
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=1,
        learning_rate=2e-4,
        warmup_steps=0.03,
        lr_scheduler_type="cosine",
        logging_steps=1,
        save_strategy="no",
        seed=args.seed,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
    )


def train_ours(
    args, model_dir: Path, data: Path, output_dir: Path, packs_per_step: int
) -> tuple[float, Path]:
    clock = WallClock()
    config = TrainConfig(
        stage="instruction",
        model=str(model_dir),
        data=str(data),
        output_dir=str(output_dir),
        max_length=args.max_length,
        packing=True,
        per_device_train_batch_size=packs_per_step,
        learning_rate=2e-4,
        save_steps=10**9,
        seed=args.seed,
        report_to=[],
        progress_bar=False,
        device="cpu",
    )
    run(config, extra_callbacks=[clock])
    return clock.seconds, output_dir


def train_upstream(args, model_dir: Path, dataset, output_dir: Path, sampling: str):
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    model.model.vision_tower.requires_grad_(False)  # stage 2: the vision tower stays frozen
    clock = WallClock()
    trainer_class = GroupedTrainer if sampling == "group_by_length" else Trainer
    trainer = trainer_class(
        model=model,
        args=TrainingArguments(
            per_device_train_batch_size=args.batch_size,
            train_sampling_strategy=sampling,
            remove_unused_columns=False,
            **common_arguments(args, output_dir),
        ),
        train_dataset=dataset,
        data_collator=UpstreamCollator(dataset.pad_token_id),
        callbacks=[clock],
    )
    trainer.train()
    return clock.seconds, model


@torch.no_grad()
def held_out_loss(model, dataset) -> float:
    """Token-weighted mean cross-entropy of `model` over every held-out sample."""
    model.eval()
    total, tokens = 0.0, 0
    for index in range(len(dataset)):
        item = dataset[index]
        labels = item["labels"][None]  # (1, L)
        supervised = int((labels[:, 1:] != IGNORE_INDEX).sum())
        output = model(
            input_ids=item["input_ids"][None], pixel_values=item["pixel_values"][None], labels=labels
        )
        total, tokens = total + float(output.loss) * supervised, tokens + supervised
    return total / tokens


class TokenizedSamples(ConversationDataset):
    """The project's tokenized samples (tokenized in memory, as `qilin train` tokenizes them), with the
    pad id the upstream collator needs."""

    def __init__(self, path: Path, processor, max_length: int):
        tokenizer = ConversationTokenizer(processor, "chat", max_length)
        rows = tokenized_rows([path], path.parent, tokenizer, cache_dir=None).rows
        super().__init__(
            rows, processor.image_processor, path.parent, tokenizer.image_token_id, tokenizer.num_image_tokens
        )
        self.pad_token_id = processor.tokenizer.pad_token_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=80, help="training samples (one epoch)")
    parser.add_argument("--held-out", type=int, default=24, help="samples scored after training")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per step of the baselines")
    parser.add_argument("--max-length", type=int, default=512, help="truncation, and the pack length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for both sides (default: torch's own, all cores); 1 on a machine other jobs load",
    )
    args = parser.parse_args()
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the child processes' torch
        torch.set_num_threads(args.threads)
    from transformers import AutoProcessor

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model_dir = create_model(folder)
        processor = AutoProcessor.from_pretrained(model_dir)
        train_file = write_records(folder, args.samples, args.seed, processor.tokenizer)
        held_out_file = write_records(folder, args.held_out, args.seed + 1, processor.tokenizer)
        samples = TokenizedSamples(train_file, processor, args.max_length)
        held_out = TokenizedSamples(held_out_file, processor, args.max_length)
        lengths = samples.lengths
        supervised = samples.summary.supervised_tokens
        # as many samples per optimizer step as the baselines, on average
        per_pack = args.max_length / (sum(lengths) / len(lengths))
        packs_per_step = max(1, round(args.batch_size / per_pack))
        parameters = sum(
            p.numel() for p in LlavaForConditionalGeneration.from_pretrained(model_dir).parameters()
        )
        print(
            f"model {parameters / 1e6:.1f} M parameters, {samples.image_tokens} image tokens; "
            f"{len(samples)} samples, {sum(lengths):,} tokens (median {sorted(lengths)[len(lengths) // 2]}, "
            f"max {max(lengths)}), {supervised:,} supervised; torch threads {torch.get_num_threads()}",
            flush=True,
        )
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        losses: dict[str, float] = {}
        sampling_of = {SIDES[1]: "random", SIDES[2]: "group_by_length"}
        for repeat in range(args.repeats):
            # each round starts with a different side, so no side always runs first after a held-out scoring
            for side in SIDES[repeat % len(SIDES) :] + SIDES[: repeat % len(SIDES)]:
                if side == SIDES[0]:
                    seconds, ours_dir = train_ours(
                        args, model_dir, train_file, folder / f"ours{repeat}", packs_per_step
                    )
                    model = LlavaForConditionalGeneration.from_pretrained(ours_dir)
                else:
                    seconds, model = train_upstream(
                        args, model_dir, samples, folder / f"up{repeat}", sampling_of[side]
                    )
                times[side].append(seconds)
                losses[side] = held_out_loss(model, held_out)
            print(
                f"round {repeat + 1}: " + ", ".join(f"{s}: {t[-1]:.1f} s" for s, t in times.items()),
                flush=True,
            )
        rates = {side: supervised / min(seconds) for side, seconds in times.items()}
        for side in SIDES:
            print(
                f"{side:34s} {min(times[side]):7.1f} s  {rates[side]:8.1f} supervised tokens/s  "
                f"held-out loss {losses[side]:.4f}"
            )
        print(
            f"ours: {packs_per_step} packs of <= {args.max_length} tokens per step; baselines: {args.batch_size} samples"
        )
        print(
            f"speed-up (supervised tokens/s): {rates[SIDES[0]] / rates[SIDES[1]]:.2f}x vs random order, "
            f"{rates[SIDES[0]] / rates[SIDES[2]]:.2f}x vs length-grouped; held-out loss ours/random "
            f"{losses[SIDES[0]] / losses[SIDES[1]]:.3f}"
        )


if __name__ == "__main__":
    main()
