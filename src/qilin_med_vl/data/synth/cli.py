"""`qilin data synth`: write a procedurally rendered medical world in the public source formats."""

from __future__ import annotations

import argparse
from pathlib import Path

# literal defaults, kept equal to generate.DEFAULT_COUNTS / DEFAULT_SIZE by a test, so that
# `qilin --help` does not import numpy
DEFAULT_CAPTIONS, DEFAULT_CASES, DEFAULT_VQA, DEFAULT_SIZE = 1000, 600, 3000, 128

DESCRIPTION = """\
Render a synthetic medical world from one seed and write it as the English public source files that
`qilin data build` reads, so the whole pipeline (build, train, evaluate) can run offline on a CPU.

Pictures: chest X-ray, head CT, abdominal CT, ultrasound and H&E histology, each with one lesion or none;
a lesion lies on the left or right and in the upper or lower part of the picture and is small or large,
and it changes the pixels (it stays visible at 64x64). Real DICOM pictures of pydicom-data, when
installed, are added as PMC-OA figures (modality only).

Files in OUT: pmc_oa/ (JSONL + images), pmc_case_report/ (two parquet shards + figures), pmc_vqa/
(train.csv + figures), translation_memory.jsonl (the Chinese reference of every English
text, for `qilin data tm import`), ground_truth.jsonl (modality, finding and answer of every row, for
scoring per question type) and build.yaml (a build config; paths relative to OUT). Questions ask for
the modality, whether there is a lesion, its side, region and size. The same seed and counts give
byte-identical files. Guide: docs/synth.md."""


def register(commands) -> None:
    parser = commands.add_parser(
        "synth",
        help="write a synthetic medical world (images + PMC-format sources + Chinese references)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if absent)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument(
        "--captions", type=int, default=DEFAULT_CAPTIONS, help=f"PMC-OA captions (default {DEFAULT_CAPTIONS})"
    )
    parser.add_argument(
        "--cases",
        type=int,
        default=DEFAULT_CASES,
        help=f"PMC-CaseReport cases, 1-3 figures each (default {DEFAULT_CASES})",
    )
    parser.add_argument(
        "--vqa",
        type=int,
        default=DEFAULT_VQA,
        help=f"PMC-VQA figures (default {DEFAULT_VQA})",
    )
    parser.add_argument(
        "--questions-per-figure",
        type=int,
        default=1,
        metavar="K",
        help="PMC-VQA questions about each figure, at most: distinct types its finding allows (modality "
        "and presence always; side, region and size when it has a lesion, which half of them have); "
        "each is a row of train.csv naming the figure (default 1: a question type drawn per figure)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SIZE,
        help=f"side of the rendered pictures in pixels (default {DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--no-real", action="store_true", help="leave out the real DICOM pictures of pydicom-data"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace synthetic data already in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from qilin_med_vl.data.synth.generate import synthesize
    from qilin_med_vl.data.synth.world import Counts

    summary = synthesize(
        args.out,
        seed=args.seed,
        counts=Counts(
            captions=args.captions,
            cases=args.cases,
            vqa=args.vqa,
            questions_per_figure=args.questions_per_figure,
        ),
        size=args.size,
        real=not args.no_real,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    world = summary.world
    print(
        f"{args.out}: {len(world.captions)} PMC-OA captions, {len(world.cases)} case reports, "
        f"{len(world.vqa)} PMC-VQA questions about {len({row.figure.name for row in world.vqa})} figures, "
        f"{summary.figures} pictures in all, "
        f"{summary.translation_pairs} translation pairs"
    )
    print(f"next: cd {args.out} && see build.yaml for the import and build commands")
    return 0
