"""`qilin data link-images`: give the released ChiMed-VL files (text only) their images back.

The released records are LLaVA records `{"id", "image", "conversations"}`; `image` names a PMC-OA or
PMC-VQA figure (a bare file name, or a path whose last part is the file name; a list of names is
accepted too). Images are found by file name anywhere under the given folders. Output:

    OUT/<stem of each released file>.jsonl   records whose images were all found, `image` now
                                             relative to OUT/images/ (JSONL, whatever the input was)
    OUT/images/<file name>                   copied (or hard/symbolic links, `--mode`)
    OUT/missing.jsonl                        {"file", "id", "missing": [names]} per record left out
    OUT/link_report.json                     per input file: records, linked, missing; totals
    OUT/manifest.json                        the files of each training stage and the image root, so
                                             `qilin train ... data=OUT` and `qilin data stats OUT` read
                                             the folder like a build's (llava_format.built_files)

A released file's stage comes from its name (`RELEASED_FILE_STAGES`), or from `stage` for all files.

Memory: what is held is the name -> path index of the image folders (one entry per image) and the
set of names not found; records are streamed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath

from qilin_med_vl.data.build import write_json
from qilin_med_vl.data.sources import RELEASED_FILE_STAGES, iter_json_records
from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import IMAGES_DIR, MANIFEST_FILE, MANIFEST_FORMAT, STAGES

LINK_MODES = ("copy", "hardlink", "symlink")


def index_images(folders: list[Path]) -> dict[str, Path]:
    """File name -> path for every file under the folders (the first folder wins on a clash)."""
    index: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            raise DataError(f"--images {folder}: no such folder")
        for directory, _, files in os.walk(folder):
            for name in sorted(files):
                index.setdefault(name, Path(directory) / name)
    return index


def _image_names(value) -> list[str] | None:
    if isinstance(value, str) and value.strip():
        return [value.strip()]
    if isinstance(value, list) and value and all(isinstance(item, str) and item.strip() for item in value):
        return [item.strip() for item in value]
    return None


def _place(source: Path, target: Path, mode: str) -> None:
    if target.exists() or target.is_symlink():
        return
    if mode == "copy":
        shutil.copyfile(source, target)
    elif mode == "hardlink":
        os.link(source, target)
    else:
        os.symlink(source.resolve(), target)


def stage_of_released(path: Path, stage: str | None) -> str:
    if stage is not None:
        if stage not in STAGES:
            raise DataError(f"--stage {stage!r}: choose one of {', '.join(STAGES)}")
        return stage
    if path.stem in RELEASED_FILE_STAGES:
        return RELEASED_FILE_STAGES[path.stem]
    raise DataError(
        f"{path}: cannot tell which training stage it feeds (released names: "
        f"{', '.join(RELEASED_FILE_STAGES)}); pass --stage {'|'.join(STAGES)}"
    )


def link_released(
    released: list[Path], image_folders: list[Path], out: Path, mode: str = "copy", stage: str | None = None
) -> dict:
    """Link every released file against the image folders; returns the report (also written)."""
    if mode not in LINK_MODES:
        raise DataError(f"link mode {mode!r}: choose one of {', '.join(LINK_MODES)}")
    stems = [path.stem for path in released]
    if len(set(stems)) != len(stems):
        raise DataError("two released files have the same name; their outputs would overwrite each other")
    stages = {path: stage_of_released(path, stage) for path in released}
    index = index_images(image_folders)
    images_out = out / IMAGES_DIR
    images_out.mkdir(parents=True, exist_ok=True)
    report: dict = {"files": {}, "missing_images": 0}
    missing_names: set[str] = set()
    with open(out / "missing.jsonl", "w", encoding="utf-8") as missing_log:
        for path in released:
            entry = {"records": 0, "linked": 0, "missing": 0, "malformed": 0}
            with open(out / f"{path.stem}.jsonl", "w", encoding="utf-8") as linked:
                for location, item, error in iter_json_records(path):
                    entry["records"] += 1
                    names = (
                        _image_names(item.get("image")) if isinstance(item, dict) and error is None else None
                    )
                    if names is None:
                        entry["malformed"] += 1
                        missing_log.write(
                            json.dumps(
                                {
                                    "file": path.name,
                                    "location": location,
                                    "error": error or "no 'image' file name",
                                }
                            )
                            + "\n"
                        )
                        continue
                    bare = [PurePosixPath(name.replace("\\", "/")).name for name in names]
                    absent = [name for name in bare if name not in index]
                    if absent:
                        entry["missing"] += 1
                        missing_names.update(absent)
                        missing_log.write(
                            json.dumps(
                                {"file": path.name, "id": item.get("id"), "missing": absent},
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                        continue
                    for name in bare:
                        _place(index[name], images_out / name, mode)
                    item = dict(item)
                    item["image"] = bare[0] if len(bare) == 1 else bare
                    linked.write(json.dumps(item, ensure_ascii=False) + "\n")
                    entry["linked"] += 1
            report["files"][path.name] = entry
    report["missing_images"] = len(missing_names)
    report["totals"] = {
        key: sum(entry[key] for entry in report["files"].values())
        for key in ("records", "linked", "missing", "malformed")
    }
    write_json(out / "link_report.json", report)
    files = {split: [f"{path.stem}.jsonl" for path in released if stages[path] == split] for split in STAGES}
    manifest = {
        "format": MANIFEST_FORMAT,
        "files": {split: names for split, names in files.items() if names},
        "images": IMAGES_DIR,
        "linked_from": [str(path) for path in released],
    }
    write_json(out / MANIFEST_FILE, manifest)
    return report
