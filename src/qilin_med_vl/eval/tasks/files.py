"""Reading benchmark files for the tasks: JSON lists, CSV with required columns, parquet, embedded images.

Each reader checks the shape up front and raises DataError naming the file and what to do, so a run
never starts on the wrong file. Items without an id in the release get one from their content
(`content_id`), made unique in file order (`unique_ids`), so ids stay the same run after run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from qilin_med_vl.errors import DataError

IMAGE_CACHE_DIR = ".qilin-eval-images"  # beside the data, when TaskOptions.image_cache is not given


def find_file(data: Path, candidates: Sequence[str], what: str) -> Path:
    """`data` itself when it is a file, else the first of `candidates` (relative paths or globs) in it."""
    if data.is_file():
        return data
    if not data.is_dir():
        raise DataError(f"{data}: no such file or folder; give the folder holding {what}")
    for candidate in candidates:
        matches = sorted(data.glob(candidate))
        if matches:
            return matches[0]
    raise DataError(f"{data}: found none of {', '.join(candidates)}; give the folder holding {what}")


def read_json_list(path: Path) -> list:
    try:
        records = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read as JSON ({error}); use the file as published") from error
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, found {type(records).__name__}")
    return records


def require_fields(record: object, fields: Iterable[str], where: str, fix: str) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(record).__name__}; {fix}")
    missing = [name for name in fields if name not in record]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; {fix}")
    return record


def read_csv(path: Path, required: Sequence[str], fix: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header, [(line number, row)]) of a CSV that has every `required` column."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        missing = [name for name in required if name not in header]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(header) or 'no header'}); {fix}"
            )
        rows = []
        try:
            for row in reader:
                if None in row or any(row[name] is None for name in required):
                    raise DataError(f"{path}:{reader.line_num}: the row does not have the header's columns")
                rows.append((reader.line_num, row))
        except csv.Error as error:
            raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({error})") from error
    return header, rows


def read_parquet(path: Path, required: Sequence[str], fix: str) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a file that is not parquet
        raise DataError(f"{path}: cannot read as parquet ({error}); {fix}") from error
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(table.column_names)}); {fix}"
        )
    return table.to_pylist()


def content_id(*parts: str | bytes) -> str:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def unique_ids(ids: Iterable[str]) -> list[str]:
    """`ids` with repeats suffixed `~2`, `~3`... in order, so every item keeps its own resume key."""
    seen: dict[str, int] = {}
    result = []
    for item_id in ids:
        seen[item_id] = seen.get(item_id, 0) + 1
        result.append(item_id if seen[item_id] == 1 else f"{item_id}~{seen[item_id]}")
    return result


def image_bytes(value: object, where: str) -> bytes:
    """The bytes of a parquet image cell: a {bytes, path} struct (as published) or raw bytes."""
    if isinstance(value, dict) and isinstance(value.get("bytes"), bytes):
        return value["bytes"]
    if isinstance(value, bytes):
        return value
    raise DataError(f"{where}: `image` holds no image bytes; use the parquet files as published")


def image_suffix(data: bytes) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = (image.format or "png").lower()
    except Exception:  # PIL raises several types; the backend reports the unreadable image later
        return ".bin"
    return ".jpg" if kind == "jpeg" else f".{kind}"


def write_embedded_image(data: bytes, folder: Path, item_id: str) -> Path:
    """The image file for an embedded image, written once (a rerun reuses it)."""
    path = folder / f"{item_id}{image_suffix(data)}"
    if not path.is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(path.suffix + ".partial")
            partial.write_bytes(data)
            partial.replace(path)
        except OSError as error:
            raise DataError(
                f"{folder}: cannot write the images embedded in the parquet file ({error}); "
                "make the folder writable or give another image cache folder"
            ) from error
    return path


def image_cache_folder(data: Path, image_cache: Path | None, task_name: str, source: Path) -> Path:
    root = (
        image_cache if image_cache is not None else (data if data.is_dir() else data.parent) / IMAGE_CACHE_DIR
    )
    return root / task_name / source.stem
