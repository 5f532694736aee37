"""Read LLaVA conversation records for training, from a built folder or from plain record files.

`data` may be:
- a folder written by `qilin data build` or `qilin data link-images` (it holds manifest.json): the
  stage's files as the manifest lists them (every shard; never the drop logs or the held-out split),
  with the images under the build's image root;
- a JSONL file, a JSON list file, or a folder of *.jsonl files (the released ChiMed-VL files, your own),
  with the images under `image_folder` (default: beside the data).

Each record keeps where it came from (`file:line`) so that errors and drop reports can name it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import built_files, is_built_folder, record_turns


@dataclass
class ConversationRecord:
    id: str
    image: str | None  # path relative to the image folder
    turns: list[tuple[str, str]]  # (role "user"|"assistant", text)
    where: str  # "file:line", for messages

    @property
    def name(self) -> str:
        return f"record {self.id!r} ({self.where})"


@dataclass(frozen=True)
class TrainingData:
    files: list[Path]
    image_folder: Path


def training_data(data: str | Path, stage: str, image_folder: str | Path | None = None) -> TrainingData:
    """The record files of `stage` in `data` and the folder their `image` paths are relative to."""
    path = Path(data)
    if is_built_folder(path):
        built = built_files(path, stage)
        return TrainingData(built.files, Path(image_folder) if image_folder else built.image_root)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise DataError(
                f"{path}: the folder has no manifest.json (not a `qilin data build` output) and no *.jsonl files"
            )
    elif path.is_file():
        files = [path]
    else:
        raise DataError(
            f"{path}: no such data file or folder (give a `qilin data build` folder, a .jsonl, a .json list "
            "or a folder of .jsonl files)"
        )
    return TrainingData(
        files, Path(image_folder) if image_folder else (path if path.is_dir() else path.parent)
    )


def raw_records(path: Path) -> Iterator[tuple[dict, str]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from error
        for index, item in enumerate(items):
            yield item, f"{path}[{index}]"
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line), f"{path}:{number}"
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not a JSON object per line ({error})") from error


def parse_record(raw: dict, where: str) -> ConversationRecord:
    turns = record_turns(raw, where)
    record_id = str(raw.get("id", where))
    image = raw.get("image")
    if image is not None and not isinstance(image, str):
        raise DataError(
            f"{where}: record {record_id!r}: `image` must be one relative path (images are "
            "concatenated into one picture by the dataset builder)"
        )
    return ConversationRecord(id=record_id, image=image, turns=turns, where=where)


def read_records(files: list[Path]) -> list[ConversationRecord]:
    return [parse_record(raw, where) for file in files for raw, where in raw_records(file)]
