"""Data building: records/s of `qilin data build --workers 2` against `--workers 1` on multi-image case reports.

    .venv/bin/python benchmarks/data_workers.py                        # 1,000 case reports, 2 rounds
    .venv/bin/python benchmarks/data_workers.py --cases 6000 --size 512 --rounds 3

Writes a synthetic world with `qilin data synth` (PMC-CaseReport parquet shards in the public layout,
1-3 figures per case, so most records concatenate several pictures; a single PMC-OA caption and PMC-VQA
question besides), then runs the real command, `qilin data build --config build.yaml --translator none
--workers N`, with 2 workers and with 1, in turn, `--rounds` times, each into a fresh folder. Each
build runs in a child process whose wall time and peak resident set size (the kernel's `wait4`
rusage: the largest process of the build) are read; each side's best time is kept. Checks that both
wrote byte-identical record files. Prints records/s per side and the ratio. Memory against the number
of records (20,000 against 200,000) is benchmarks/data_memory.py.
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


def qilin_child(words: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of `qilin WORDS` run in `cwd`."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "qilin_med_vl.cli", *words],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"qilin {' '.join(words)} failed in {cwd}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def record_files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("*.jsonl"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="PMC-CaseReport cases (1-3 figures each)")
    parser.add_argument("--size", type=int, default=512, help="side of the synthetic figures in pixels")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        world = Path(scratch) / "world"
        qilin_child(
            [
                "data",
                "synth",
                "--out",
                str(world),
                "--captions",
                "1",
                "--vqa",
                "1",
                "--cases",
                str(args.cases),
                "--size",
                str(args.size),
                "--no-real",
                "--no-progress",
            ],
            Path(scratch),
        )
        times: dict[int, list[float]] = {2: [], 1: []}
        peaks: dict[int, float] = {}
        outputs: dict[int, dict[str, bytes]] = {}
        for round_number in range(args.rounds):
            for workers in (2, 1):
                out = world / f"built_w{workers}_{round_number}"
                seconds, peak = qilin_child(
                    [
                        "data",
                        "build",
                        "--config",
                        "build.yaml",
                        "--translator",
                        "none",
                        "--out",
                        str(out),
                        "--workers",
                        str(workers),
                        "--no-progress",
                    ],
                    world,
                )
                times[workers].append(seconds)
                peaks[workers] = max(peaks.get(workers, 0.0), peak)
                outputs[workers] = record_files(out)
                totals = json.loads((out / "manifest.json").read_text())["totals"]
            print(
                f"round {round_number + 1}: --workers 2 {times[2][-1]:.1f} s, --workers 1 {times[1][-1]:.1f} s",
                flush=True,
            )

    print(f"{totals['read']:,} records read, {totals['kept']:,} kept; {os.cpu_count()} CPUs")
    rates = {workers: totals["read"] / min(seconds) for workers, seconds in times.items()}
    for workers in (2, 1):
        print(
            f"qilin data build --workers {workers}: {min(times[workers]):6.1f} s  {rates[workers]:7.1f} records/s  "
            f"peak RSS {peaks[workers]:.0f} MiB"
        )
    print(f"same record files: {outputs[2] == outputs[1]}")
    print(f"speed-up (records/s): {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
