"""Read LLaVA conversation records for training: a JSONL file, a JSON list file, or a folder of *.jsonl.

Each record is `{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": ...}, ...]}`. Every
record keeps where it came from (`file:line`) so that errors and drop reports can name it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import DataError

ROLES = {"human": "user", "gpt": "assistant"}


@dataclass
class ConversationRecord:
    id: str
    image: str | None  # path relative to the image folder
    turns: list[tuple[str, str]]  # (role "user"|"assistant", text)
    where: str  # "file:line", for messages

    @property
    def name(self) -> str:
        return f"record {self.id!r} ({self.where})"


def data_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise DataError(f"{path}: the folder holds no *.jsonl shards")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such data file or folder (give a .jsonl, a .json list or a folder)")
    return [path]


def _raw_records(path: Path) -> Iterator[tuple[dict, str]]:
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
    if not isinstance(raw, dict) or not isinstance(raw.get("conversations"), list):
        raise DataError(f"{where}: a record needs a `conversations` list of {{from, value}} turns")
    record_id = str(raw.get("id", where))
    turns = []
    for index, turn in enumerate(raw["conversations"]):
        speaker = turn.get("from") if isinstance(turn, dict) else None
        if speaker not in ROLES or not isinstance(turn.get("value"), str):
            raise DataError(
                f"{where}: record {record_id!r} turn {index}: expected {{'from': 'human'|'gpt', 'value': str}}"
            )
        turns.append((ROLES[speaker], turn["value"]))
    roles = [role for role, _ in turns]
    expected = ["user", "assistant"] * (len(turns) // 2)
    if not turns or roles != expected:
        raise DataError(
            f"{where}: record {record_id!r}: turns must alternate human, gpt, human, gpt... (got {roles})"
        )
    image = raw.get("image")
    if image is not None and not isinstance(image, str):
        raise DataError(
            f"{where}: record {record_id!r}: `image` must be one relative path (images are "
            "concatenated into one picture by the dataset builder)"
        )
    return ConversationRecord(id=record_id, image=image, turns=turns, where=where)


def read_records(path: str | Path) -> list[ConversationRecord]:
    return [parse_record(raw, where) for file in data_files(path) for raw, where in _raw_records(file)]


def default_image_folder(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent
