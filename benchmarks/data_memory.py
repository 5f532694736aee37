"""Peak memory of `qilin data build` against the number of records: it should stay flat.

    .venv/bin/python benchmarks/data_memory.py                 # 20,000 and 200,000 rows
    .venv/bin/python benchmarks/data_memory.py --sizes 5000    # a quick look

For each size, writes synthetic sources in the public formats (half PMC-OA rows, a quarter
PMC-CaseReport rows of which half name two figures, a quarter PMC-VQA rows) over a pool of small
JPEG figures larger than the builder's image cache, so images are decoded row after row as in a real
build. Then runs the build in a child process (translator `none`, one worker) and reads that child's
peak resident set size from the kernel (`wait4` rusage). Prints one line per size and the ratio of the
largest to the smallest peak.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

FIGURES_PER_SOURCE = 5_000  # more than the builder's image cache holds: every row decodes its images


def write_figures(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True)
    gradient = Image.linear_gradient("L").resize((64, 64))
    names = []
    for number in range(count):
        name = f"PMC{number:06d}_F1.jpg"
        Image.merge("RGB", (gradient, gradient.rotate(90), Image.new("L", (64, 64), number % 256))).save(
            folder / name, quality=80
        )
        names.append(name)
    return names


def write_sources(root: Path, rows: int) -> Path:
    """Synthetic PMC-OA / PMC-CaseReport / PMC-VQA files with `rows` rows in all, and their config."""
    oa_rows, case_rows = rows // 2, rows // 4
    vqa_rows = rows - oa_rows - case_rows
    figures = {
        source: write_figures(root / source / "images", FIGURES_PER_SOURCE)
        for source in ("pmc_oa", "pmc_case_report", "pmc_vqa")
    }
    with open(root / "pmc_oa/pmc_oa.jsonl", "w") as handle:
        for n in range(oa_rows):
            name = figures["pmc_oa"][n % FIGURES_PER_SOURCE]
            caption = f"Figure {n}: axial CT of case {n} showing a {n % 50} mm lesion in segment {n % 8}."
            handle.write(
                json.dumps({"image": name, "caption": caption, "pmcid": f"PMC{n}", "url_name": name}) + "\n"
            )
    with open(root / "pmc_case_report/case_report.jsonl", "w") as handle:
        names = figures["pmc_case_report"]
        for n in range(case_rows):
            refs = [names[n % FIGURES_PER_SOURCE]] + ([names[(n + 1) % FIGURES_PER_SOURCE]] if n % 2 else [])
            handle.write(
                json.dumps(
                    {
                        "PMC_id": f"PMC{n}",
                        "context": f"A {20 + n % 60}-year-old patient presented with pain. " * 8,
                        "inline": f"Imaging showed a lesion of {n % 40} mm (Figure {n % 9 + 1}).",
                        "question": f"What did imaging of patient {n} show?",
                        "answer": f"A lesion of {n % 40} mm.",
                        "img_ref": repr(refs),
                    }
                )
                + "\n"
            )
    with open(root / "pmc_vqa/train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Figure_path",
                "Question",
                "Answer",
                "Choice A",
                "Choice B",
                "Choice C",
                "Choice D",
                "Answer_label",
            ]
        )
        for n in range(vqa_rows):
            writer.writerow(
                [
                    figures["pmc_vqa"][n % FIGURES_PER_SOURCE],
                    f"What is shown, case {n}?",
                    "Mass",
                    " A:Mass",
                    " B:Cyst",
                    " C:Normal",
                    " D:Fluid, or air",
                    "A",
                ]
            )
    config = {
        "out": str(root / "out"),
        "sources": {
            "pmc_oa": {"records": str(root / "pmc_oa/pmc_oa.jsonl"), "images": str(root / "pmc_oa/images")},
            "pmc_case_report": {
                "records": str(root / "pmc_case_report/case_report.jsonl"),
                "images": str(root / "pmc_case_report/images"),
            },
            "pmc_vqa": {"records": str(root / "pmc_vqa/train.csv"), "images": str(root / "pmc_vqa/images")},
        },
        "translator": {"backend": "none"},
    }
    path = root / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def measure(rows: int) -> tuple[float, float, dict]:
    """(peak RSS in MiB, seconds, manifest totals) of one build over `rows` synthetic rows."""
    with tempfile.TemporaryDirectory() as folder:
        config = write_sources(Path(folder), rows)
        command = [
            sys.executable,
            "-m",
            "qilin_med_vl.cli",
            "data",
            "build",
            "--config",
            str(config),
            "--no-progress",
        ]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"build of {rows} rows failed")
        totals = json.loads((Path(folder) / "out/manifest.json").read_text())["totals"]
    return usage.ru_maxrss / 1024, seconds, totals  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000], help="rows per build")
    args = parser.parse_args()
    peaks = []
    for rows in args.sizes:
        peak, seconds, totals = measure(rows)
        peaks.append(peak)
        print(
            f"{rows:>8,} rows -> {totals['read']:>8,} records read, {totals['kept']:>8,} kept: "
            f"peak RSS {peak:7.1f} MiB, {seconds:6.1f} s ({rows / seconds:,.0f} rows/s)",
            flush=True,
        )
    if len(peaks) > 1:
        print(f"peak RSS ratio, largest / smallest build: {peaks[-1] / peaks[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
