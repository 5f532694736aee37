"""Engine throughput: one batch of 8 requests against the same 8 requests answered one by one.

Run:  .venv/bin/python benchmarks/engine_batching.py [--device cpu] [--new-tokens 32] [--repeats 5]

Builds the tiny model (offline, seconds), asks 8 different questions about 8 different pictures with
greedy decoding and the same token limit, checks that the batch gives the same tokens as the
sequential calls, and prints the best wall times of N alternating runs, the tokens generated and the speed-up.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from PIL import Image, ImageDraw

from qilin_med_vl.infer.engine import Engine, GenerationRequest, SamplingSettings
from qilin_med_vl.model.checkpoint import create_tiny, save_checkpoint

QUESTIONS = [
    "这张图像显示了什么？",
    "病灶在哪一侧？",
    "这是什么成像方式？",
    "请描述图中的异常。",
    "图像中是否有骨折？",
    "请给出诊断印象。",
    "肺野是否清晰？",
    "心影大小是否正常？",
]


def picture(index: int) -> Image.Image:
    image = Image.new("RGB", (96, 80), (10 * index, 30, 60))
    ImageDraw.Draw(image).ellipse((8 + 6 * index, 12, 40 + 6 * index, 44), fill=(240, 240, 230))
    return image


def requests(new_tokens: int) -> list[GenerationRequest]:
    settings = SamplingSettings(max_new_tokens=new_tokens)
    return [
        GenerationRequest(
            [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": picture(i)}, {"type": "text", "text": q}],
                }
            ],
            settings,
        )
        for i, q in enumerate(QUESTIONS)
    ]


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(*create_tiny(), folder)
        engine = Engine.from_pretrained(folder, device=args.device)
    # every run sees images whose features are already cached, so both sides time the same work
    engine.generate_batch(requests(1))

    # Alternate the two ways and keep each one's best time, so a burst of load from other processes
    # on a shared machine does not fall on one side only.
    sequential_times, batch_times = [], []
    for _ in range(args.repeats):
        seconds, sequential = timed(
            lambda: [engine.generate_batch([r])[0] for r in requests(args.new_tokens)]
        )
        sequential_times.append(seconds)
        seconds, batched = timed(lambda: engine.generate_batch(requests(args.new_tokens)))
        batch_times.append(seconds)
    sequential_s, batch_s = min(sequential_times), min(batch_times)

    same = [a.token_ids == b.token_ids for a, b in zip(sequential, batched, strict=True)]
    tokens = sum(c.completion_tokens for c in batched)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {tokens} tokens generated per run")
    print(f"8 sequential calls: {sequential_s:.3f} s")
    print(f"one batch of 8:     {batch_s:.3f} s")
    print(f"speed-up: {sequential_s / batch_s:.2f}x; batch tokens equal sequential tokens: {all(same)}")


if __name__ == "__main__":
    main()
