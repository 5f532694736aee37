"""`synthesize`: make the world of one seed and write all its files into a folder, with a progress bar."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.data.synth import write
from qilin_med_vl.data.synth.real import available_real_pictures
from qilin_med_vl.data.synth.world import Counts, World, make_world
from qilin_med_vl.errors import DataError

DEFAULT_COUNTS = Counts(captions=1000, cases=600, vqa=3000)
DEFAULT_SIZE = 128
MIN_SIZE = 64  # below the model's input size a lesion would no longer cover a patch
# what a previous run wrote: removed by --overwrite, nothing else in the folder is touched
OUTPUT_FOLDERS = tuple(write.SOURCE_FOLDERS.values())
OUTPUT_FILES = (write.TRANSLATION_MEMORY_IMPORT, write.GROUND_TRUTH, write.BUILD_CONFIG)


@dataclass(frozen=True)
class Summary:
    world: World
    figures: int
    translation_pairs: int


def _prepare_folder(out: Path, overwrite: bool) -> None:
    owned = [out / name for name in OUTPUT_FOLDERS + OUTPUT_FILES]
    present = [path for path in owned if path.exists()]
    if present and not overwrite:
        raise DataError(
            f"{out} already holds synthetic data ({present[0].name}); pass --overwrite to replace it "
            "or choose another --out"
        )
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def synthesize(
    out: Path,
    seed: int = 0,
    counts: Counts = DEFAULT_COUNTS,
    size: int = DEFAULT_SIZE,
    real: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> Summary:
    """Write the world of `seed` into `out` (layout: write.py); the same arguments give the same bytes."""
    from tqdm import tqdm

    if size < MIN_SIZE:
        raise DataError(f"--size {size}: pictures must be at least {MIN_SIZE} pixels wide")
    if min(counts.captions, counts.cases, counts.vqa) < 0:
        raise DataError("--captions, --cases and --vqa must be 0 or more")
    if counts.questions_per_figure < 1:
        raise DataError(
            f"--questions-per-figure {counts.questions_per_figure}: ask at least 1 question a figure"
        )
    _prepare_folder(out, overwrite)
    world = make_world(seed, counts, available_real_pictures() if real else [])
    figures = world.figures()
    # disable=None: the bar shows on a terminal only
    for source, figure in tqdm(
        figures, desc="rendering figures", unit=" img", disable=None if progress else True
    ):
        write.write_figure(out, source, figure, size)
    write.write_pmc_oa(out, world)
    write.write_case_reports(out, world)
    write.write_pmc_vqa(out, world)
    pairs = write.write_translation_memory(out, world)
    write.write_ground_truth(out, world)
    write.write_build_config(out, seed)
    return Summary(world=world, figures=len(figures), translation_pairs=pairs)
