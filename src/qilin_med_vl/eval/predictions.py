"""predictions.jsonl: one scored item per line, appended and flushed as each answer arrives.

The file is the run's memory: a rerun reads it, skips every item already in it and appends the rest.
A run killed while writing leaves at most one unfinished last line (no newline at its end); reading
drops it and `PredictionWriter` cuts it off before appending, so the file stays one JSON object a line.
An item may have more than one line: the optional judge appends the item's record again with its
verdict (see `judge`); the last line of an id is the item's record (`latest_per_id`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from qilin_med_vl.errors import DataError
from qilin_med_vl.eval.items import EvalItem, ItemScore

PREDICTIONS_FILE = "predictions.jsonl"


def prediction_record(
    index: int, item: EvalItem, prediction: str, scored: ItemScore, image_root: Path, error: str | None = None
) -> dict:
    """The line written for one answered item; `index` is the item's place in the task's order."""
    record = {
        "index": index,
        "id": item.id,
        "language": item.language,
        "answer_type": item.answer_type,
        "modality": item.modality,
        "content_type": item.content_type,
        "question": item.question,
        "choices": item.choices,
        "image": relative_image_path(item.image, image_root),
        "reference": item.reference,
        "prediction": prediction,
        "score": float(scored.score),
        "details": scored.details,
        "extra": item.extra,
    }
    if error is not None:
        record["error"] = error  # the backend refused this item; the prediction is empty
    return record


def relative_image_path(image: Path | None, image_root: Path) -> str | None:
    """The image's path relative to the data folder (as recorded), or as given when it lies elsewhere."""
    if image is None:
        return None
    try:
        return Path(image).resolve().relative_to(image_root.resolve()).as_posix()
    except ValueError:
        return str(image)


def read_predictions(path: Path) -> list[dict]:
    """Every complete record of `path` (none if it does not exist); an unfinished last line is dropped."""
    if not path.exists():
        return []
    records = []
    # the last piece has no newline after it: empty, or the write a kill interrupted (never a record)
    lines = path.read_bytes().split(b"\n")[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise DataError(
                f"{path}, line {number}: not a JSON record ({error}); the file was edited or corrupted. "
                "Delete that line (its item is asked again on the next run) or start a new --out"
            ) from error
        if not isinstance(record, dict) or "id" not in record:
            raise DataError(f"{path}, line {number}: not a prediction record (no 'id'); start a new --out")
        records.append(record)
    return records


def latest_per_id(records: Iterable[dict]) -> list[dict]:
    """Each id's last record (a later line only adds to an earlier one, e.g. a judge verdict), in item order."""
    latest = {record["id"]: record for record in records}
    return sorted(latest.values(), key=lambda record: record["index"])


class PredictionWriter:
    """Appends records to predictions.jsonl, one flushed line each."""

    def __init__(self, path: Path):
        _cut_unfinished_line(path)
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()  # in the OS's hands now: a killed process loses nothing it reported

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _cut_unfinished_line(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def write_predictions(path: Path, records: Iterable[dict]) -> None:
    """Replace a whole predictions file at once (merged shards, a finished run put in item order)."""
    temporary = path.with_suffix(".jsonl.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    temporary.replace(path)  # a kill leaves the old file or the new one, never a mix
