"""Serving: 32 concurrent clients against `qilin serve` (batching on) against the same 32 requests one by one
through plain transformers `generate`.

    .venv/bin/python benchmarks/serving_concurrency.py                       # 32 clients, 3 rounds
    .venv/bin/python benchmarks/serving_concurrency.py --clients 64 --rounds 5 --new-tokens 64

Creates the tiny model (`qilin model create --preset tiny`), starts `qilin serve` on 127.0.0.1 in a child
process and waits for /health. Each round sends 32 chat requests (each a different question about a
different picture, greedy, the same `max_tokens`) from 32 client threads at once over HTTP, and then
answers the same 32 requests in this process with `LlavaForConditionalGeneration.generate`, one after
the other, as a script without a server would. Rounds alternate the two sides so that load from other
processes falls on both, and each round uses new pictures (the server caches image features; plain
generate cannot). Prints requests/s and p50/p95 latency of each side (best round; for the one-by-one
side also the latency clients who all arrived together would see, queueing included) and the ratio.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch
from PIL import Image, ImageDraw
from transformers import AutoProcessor, LlavaForConditionalGeneration

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


def picture(round_number: int, index: int) -> Image.Image:
    image = Image.new("RGB", (96, 80), (7 * index % 256, 30 + 20 * round_number % 200, 60))
    ImageDraw.Draw(image).ellipse((4 + index % 40, 12, 36 + index % 40, 44), fill=(240, 240, 230))
    return image


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def start_server(model: Path, port: int, max_batch_size: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "qilin_med_vl.cli",
        "serve",
        "--model",
        str(model),
        "--port",
        str(port),
        "--max-batch-size",
        str(max_batch_size),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"qilin serve exited with status {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit("qilin serve did not answer /health within 120 s")


def serve_round(
    port: int, jobs: list[tuple[str, Image.Image]], new_tokens: int
) -> tuple[float, list[float], int]:
    """(wall seconds, per-request latencies, completion tokens) of all jobs sent at once."""

    def ask(client: httpx.Client, question: str, image: Image.Image) -> tuple[float, int]:
        body = {
            "model": "tiny",
            "max_tokens": new_tokens,
            "temperature": 0,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": data_url(image)}},
                        {"type": "text", "text": question},
                    ],
                }
            ],
        }
        started = time.perf_counter()
        response = client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=300)
        response.raise_for_status()
        return time.perf_counter() - started, response.json()["usage"]["completion_tokens"]

    with httpx.Client(limits=httpx.Limits(max_connections=len(jobs))) as client:
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            started = time.perf_counter()
            results = list(pool.map(lambda job: ask(client, *job), jobs))
            seconds = time.perf_counter() - started
    return seconds, [latency for latency, _ in results], sum(tokens for _, tokens in results)


def generate_round(model, processor, jobs: list[tuple[str, Image.Image]], new_tokens: int):
    """(wall seconds, per-request latencies, completion tokens) of the jobs answered one by one."""
    latencies, tokens = [], 0
    started = time.perf_counter()
    for question, image in jobs:
        asked = time.perf_counter()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(images=[image], text=prompt, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
        tokens += output.shape[1] - inputs["input_ids"].shape[1]
        latencies.append(time.perf_counter() - asked)
    return time.perf_counter() - started, latencies, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=32, help="`qilin serve --max-batch-size`")
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

    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / "tiny"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "qilin_med_vl.cli",
                "model",
                "create",
                "--preset",
                "tiny",
                "--out",
                str(model_dir),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        server = start_server(model_dir, port, args.max_batch_size)
        try:
            model = LlavaForConditionalGeneration.from_pretrained(model_dir).eval()
            processor = AutoProcessor.from_pretrained(model_dir)
            warm = [(QUESTIONS[0], picture(99, 0))]
            serve_round(port, warm, 2)
            generate_round(model, processor, warm, 2)
            results: dict[str, list[tuple[float, list[float], int]]] = {"serve": [], "generate": []}
            for round_number in range(args.rounds):
                jobs = [
                    (QUESTIONS[i % len(QUESTIONS)], picture(round_number, i)) for i in range(args.clients)
                ]
                results["serve"].append(serve_round(port, jobs, args.new_tokens))
                results["generate"].append(generate_round(model, processor, jobs, args.new_tokens))
                print(
                    f"round {round_number + 1}: serve {results['serve'][-1][0]:.2f} s, "
                    f"one by one {results['generate'][-1][0]:.2f} s",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(
        f"{args.clients} requests of up to {args.new_tokens} new tokens; torch threads {torch.get_num_threads()}"
    )
    rates = {}
    for side, label in (
        ("serve", f"qilin serve, {args.clients} clients"),
        ("generate", "plain generate, one by one"),
    ):
        seconds, latencies, tokens = min(results[side], key=lambda result: result[0])
        rates[side] = args.clients / seconds
        print(
            f"{label:30s} {seconds:6.2f} s  {rates[side]:6.2f} requests/s  p50 {statistics.median(latencies):.2f} s  "
            f"p95 {percentile(latencies, 0.95):.2f} s  {tokens} tokens"
        )
    # one by one, the k-th of clients that all arrived together waits for the k-1 before it
    _, latencies, _ = min(results["generate"], key=lambda result: result[0])
    waited = [sum(latencies[: k + 1]) for k in range(len(latencies))]
    print(
        f"{'  (as waiting clients see it)':30s} p50 {statistics.median(waited):.2f} s  p95 {percentile(waited, 0.95):.2f} s"
    )
    print(f"speed-up (requests/s): {rates['serve'] / rates['generate']:.2f}x")


if __name__ == "__main__":
    main()
