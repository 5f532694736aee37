"""Evaluation: items/s of `qilin eval` with the batched Engine (`--batch-size 8`) against one by one (`--batch-size 1`).

    .venv/bin/python benchmarks/eval_batching.py                         # 96 SLAKE-layout items, 2 rounds
    .venv/bin/python benchmarks/eval_batching.py --items 400 --rounds 3

Creates the tiny model (`qilin model create --preset tiny`) and a benchmark folder in SLAKE 1.0's public
layout (`test.json` and `imgs/xmlabN/source.jpg`; Chinese open and closed questions over 24 different
pictures), then runs the real command, `qilin eval --task slake --data DIR --model TINY --out RUN`, with
`--batch-size 8` and with `--batch-size 1`, in turn, `--rounds` times (fresh run folders each time, so
nothing is resumed), and keeps each side's best wall time. The time is the whole command, start-up and
model loading included, as a user waits for it; a run over one item measures that fixed cost, and the
final ratio is taken without it. Checks that both sides wrote the same predictions. Prints items/s per
side and the ratios.
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

from PIL import Image, ImageDraw

PICTURES = 24
QUESTIONS = [  # (question, answer, answer type)
    ("肺是健康的吗?", "不是", "CLOSED"),
    ("图中包含肝脏吗?", "不包含", "CLOSED"),
    ("这张图片的扫描平面是什么?", "横断面", "CLOSED"),
    ("图中最大的器官是什么?", "肝脏", "OPEN"),
    ("病灶位于哪一侧?", "左侧", "OPEN"),
    ("这是什么成像方式?", "CT", "OPEN"),
]


def write_benchmark(root: Path, items: int) -> Path:
    for number in range(PICTURES):
        image = Image.new("RGB", (128, 128), (20 + 9 * number, 20, 40))
        ImageDraw.Draw(image).ellipse((10 + 3 * number, 30, 60 + 3 * number, 80), fill=(230, 230, 230))
        (root / "imgs" / f"xmlab{number}").mkdir(parents=True)
        image.save(root / "imgs" / f"xmlab{number}" / "source.jpg", quality=90)
    records = []
    for qid in range(items):
        question, answer, answer_type = QUESTIONS[qid % len(QUESTIONS)]
        picture = qid % PICTURES
        records.append(
            {
                "img_id": picture,
                "img_name": f"xmlab{picture}/source.jpg",
                "question": question,
                "answer": answer,
                "q_lang": "zh",
                "location": "Lung",
                "modality": "CT",
                "answer_type": answer_type,
                "base_type": "vqa",
                "content_type": "Organ",
                "triple": ["vhead", "_", "_"],
                "qid": qid,
            }
        )
    (root / "test.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return root


def qilin(*words: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "qilin_med_vl.cli", *words],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def evaluate(
    data: Path, model: Path, out: Path, batch: int, new_tokens: int, limit: int | None = None
) -> float:
    """Wall seconds of one `qilin eval` run of the SLAKE-layout folder into a fresh `out`."""
    words = ["eval", "--task", "slake", "--data", str(data), "--model", str(model), "--out", str(out)]
    words += ["--batch-size", str(batch), "--max-new-tokens", str(new_tokens), "--device", "cpu"]
    return qilin(*words, *(["--limit", str(limit)] if limit else []))


def predictions(run_dir: Path) -> list[str]:
    """The answers a run wrote, in item order (whatever the JSONL file of predictions holds)."""
    path = next(run_dir.glob("predictions*.jsonl"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        json.dumps(row.get("prediction"), ensure_ascii=False)
        for row in sorted(rows, key=lambda r: str(r["id"]))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the commands (default: torch's own, all cores); 1 on a machine other jobs load",
    )
    args = parser.parse_args()
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by torch in the child processes

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = folder / "tiny"
        qilin("model", "create", "--preset", "tiny", "--out", str(model))
        data = write_benchmark(folder / "slake", args.items)
        times: dict[int, list[float]] = {8: [], 1: []}
        start_up: list[float] = []
        answers: dict[int, list[str]] = {}
        for round_number in range(args.rounds):
            for batch in (8, 1):
                out = folder / f"run_b{batch}_{round_number}"
                times[batch].append(evaluate(data, model, out, batch, args.max_new_tokens))
                answers[batch] = predictions(out)
            # the same command over one item: start-up, model loading and one answer
            start_up.append(
                evaluate(data, model, folder / f"run_one_{round_number}", 1, args.max_new_tokens, 1)
            )
            print(
                f"round {round_number + 1}: --batch-size 8 {times[8][-1]:.1f} s, --batch-size 1 "
                f"{times[1][-1]:.1f} s, one item {start_up[-1]:.1f} s",
                flush=True,
            )

    rates = {batch: args.items / min(seconds) for batch, seconds in times.items()}
    fixed = min(start_up)
    for batch in (8, 1):
        print(f"qilin eval --batch-size {batch}: {min(times[batch]):6.1f} s  {rates[batch]:6.2f} items/s")
    print(
        f"{args.items} items, up to {args.max_new_tokens} new tokens; same predictions: {answers[8] == answers[1]}; "
        f"start-up and first item: {fixed:.1f} s"
    )
    whole = f"speed-up (items/s): whole command {rates[8] / rates[1]:.2f}x"
    if fixed < min(times[8]):
        net = {batch: (args.items - 1) / (min(seconds) - fixed) for batch, seconds in times.items()}
        print(f"{whole}, without start-up {net[8] / net[1]:.2f}x")
    else:  # load from other processes made the one-item run longer than a whole one
        print(f"{whole}; start-up not separable in this run")


if __name__ == "__main__":
    main()
