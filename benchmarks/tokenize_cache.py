"""Tokenization for training: speed per record (1 and 6 turns), peak memory against the number of records,
and the first start (tokenizing) against a start that finds the cache.

    PYTHONPATH=src .venv/bin/python benchmarks/tokenize_cache.py                  # 20,000 and 200,000 records
    PYTHONPATH=src .venv/bin/python benchmarks/tokenize_cache.py --sizes 2000 20000 --workers 2

Uses the tiny preset's processor (its small BPE tokenizer and the Vicuna v1 chat template) and
synthetic Chinese records of 1 or 6 question-answer turns, all pointing at one small PNG.
1. records/s of `ConversationTokenizer` in this process, single-threaded, for 1-turn and 6-turn records
   (and the time per turn, which stays flat when the cost is linear in the number of turns);
2. for each size, a child process does what `qilin train` does before the first step — tokenize into the
   cache (`--workers` processes) and open the training dataset — and a second child does it again on the
   same data, finding the cache; each child's peak resident set size comes from the kernel (`wait4`), and
   its start time is measured from after its imports to the dataset being ready. The cached start also
   reports its private memory (RssAnon) apart from the pages mapped from the Arrow files (RssFile:
   the page cache, shared by every process on the machine and given back under pressure).
Ends with the ratio of the largest to the smallest peak of the cached start, and of first to cached time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from transformers import AutoProcessor
from qilin_med_vl.train.dataset import ConversationDataset
from qilin_med_vl.train.token_cache import tokenized_rows
from qilin_med_vl.train.tokenize import ConversationTokenizer
model, data, cache, workers = sys.argv[1:5]
processor = AutoProcessor.from_pretrained(model)
tokenizer = ConversationTokenizer(processor, "chat", 2048)
start = time.perf_counter()  # from here on: what a start costs beyond importing and loading the processor
result = tokenized_rows([Path(data)], Path(data).parent, tokenizer, Path(cache), int(workers))
dataset = ConversationDataset(result.rows, processor.image_processor, Path(data).parent,
                              tokenizer.image_token_id, tokenizer.num_image_tokens)
total = int(dataset.lengths.sum())
for index in range(0, len(dataset), max(1, len(dataset) // 1000)):
    dataset.sample(index)  # what the data loader reads, without decoding pixels
status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("Rss"))
memory = {name: int(value.split()[0]) / 1024 for name, value in status.items()}  # MiB
print(json.dumps({"seconds": time.perf_counter() - start, "reused": result.reused, "samples": len(dataset),
                  "tokens": total, "private_mib": memory["RssAnon"], "file_mib": memory["RssFile"]}))
"""


def record(index: int, turns: int) -> dict:
    conversations = []
    for turn in range(turns):
        question = f"第{turn + 1}个问题：这张{index % 7}号图像的第{turn}处所见是什么？"
        if turn == 0:
            question = "<image>\n" + question
        conversations += [
            {"from": "human", "value": question},
            {
                "from": "gpt",
                "value": f"图像显示第{turn}处可见一处高密度影，边界清楚，考虑良性病变，建议随访。",
            },
        ]
    return {"id": f"r{index}", "image": "x.png", "conversations": conversations}


def write_records(path: Path, count: int, turns: int) -> Path:
    with open(path, "w", encoding="utf-8") as stream:
        for index in range(count):
            stream.write(json.dumps(record(index, turns), ensure_ascii=False) + "\n")
    return path


def tokenize_speed(processor, turns: int, count: int) -> float:
    from qilin_med_vl.train.records import parse_record
    from qilin_med_vl.train.tokenize import ConversationTokenizer

    tokenizer = ConversationTokenizer(processor, "chat", 4096)
    records = [parse_record(record(i, turns), f"bench:{i}") for i in range(count)]
    start = time.perf_counter()
    for item in records:
        tokenizer(item)
    return count / (time.perf_counter() - start)


def child(model: Path, data: Path, cache: Path, workers: int) -> tuple[dict, float]:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(model), str(data), str(cache), str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"child failed with status {status}")
    return json.loads(output.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024  # MiB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--workers", type=int, default=min(8, len(os.sched_getaffinity(0))))
    parser.add_argument("--speed-records", type=int, default=2000)
    options = parser.parse_args()

    from PIL import Image

    from qilin_med_vl.model.checkpoint import create_tiny, save_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model, processor = create_tiny()
        model_dir = save_checkpoint(model, processor, scratch / "tiny")
        one = tokenize_speed(processor, 1, options.speed_records)
        six = tokenize_speed(processor, 6, options.speed_records)
        print(f"tokenize 1-turn: {one:8.0f} records/s ({1000 / one:.3f} ms/record)")
        print(
            f"tokenize 6-turn: {six:8.0f} records/s ({1000 / six:.3f} ms/record, {1000 / six / 6:.3f} ms/turn)"
        )
        print(f"cost per turn, 6-turn / 1-turn: {one / six / 6:.2f} (1.00 = linear in the number of turns)")

        peaks, times = {}, {}
        for size in options.sizes:
            folder = scratch / f"data{size}"
            folder.mkdir()
            Image.new("RGB", (64, 64), (90, 90, 90)).save(folder / "x.png")
            data = write_records(folder / "records.jsonl", size, turns=1)
            cache = scratch / f"cache{size}"
            first, first_peak = child(model_dir, data, cache, options.workers)
            again, again_peak = child(model_dir, data, cache, options.workers)
            assert not first["reused"] and again["reused"] and first["samples"] == again["samples"] == size
            peaks[size], times[size] = again_peak, (first["seconds"], again["seconds"])
            print(f"{size:>8} records: first start {first['seconds']:7.1f} s, peak RSS {first_peak:7.0f} MiB "
                  f"({options.workers} workers); cached start {again['seconds']:5.1f} s, "
                  f"peak RSS {again_peak:6.0f} MiB (at the end {again['private_mib']:.0f} MiB private, "
                  f"{again['file_mib']:.0f} MiB mapped from files, shared)")  # fmt: skip
        small, large = min(options.sizes), max(options.sizes)
        print(
            f"ratio: cached-start peak RSS {large} / {small} records = {peaks[large] / peaks[small]:.2f} "
            f"(records x{large / small:.0f}); first / cached start at {large} = "
            f"{times[large][0] / times[large][1]:.1f}x"
        )


if __name__ == "__main__":
    main()
