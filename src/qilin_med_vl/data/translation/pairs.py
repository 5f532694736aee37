"""Files of (English, Chinese) pairs that `qilin data tm import|export` read and write.

Files:
- TSV: two columns `source<TAB>target`, an optional header row `source<TAB>target`; fields that hold a
  tab, a newline or start with a double quote are double-quoted (Python csv's excel-tab dialect, which
  is what export writes).
- JSONL: one object per line, {"source": "...", "target": "..."}.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from qilin_med_vl.errors import DataError

FORMATS = ("tsv", "jsonl")
FORMAT_BY_SUFFIX = {".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
TSV_HEADER = ["source", "target"]


def format_of(path: Path, chosen: str | None) -> str:
    if chosen:
        return chosen
    found = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"cannot tell the format of {path} from its suffix: add --format tsv or --format jsonl"
        )
    return found


def read_pairs(path: Path, file_format: str) -> Iterator[tuple[str, str]]:
    """(source, target) pairs of a TSV or JSONL file; DataError names the line and the fix."""
    if not path.is_file():
        raise DataError(f"{path} does not exist: give the TSV or JSONL file of pairs to import")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if file_format == "tsv":
            reader = csv.reader(handle, dialect="excel-tab")
            for row in reader:
                line = reader.line_num
                if not row or (line == 1 and row == TSV_HEADER):
                    continue
                if len(row) != 2 or not row[0].strip() or not row[1].strip():
                    raise DataError(
                        f"{path}, line {line}: expected two non-empty tab-separated fields (source, target), "
                        f"got {len(row)} field(s); double-quote a field that contains a tab or a newline"
                    )
                yield row[0], row[1]
        else:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}, line {line}: not JSON ({error.msg})") from error
                source = record.get("source") if isinstance(record, dict) else None
                target = record.get("target") if isinstance(record, dict) else None
                if (
                    not isinstance(source, str)
                    or not isinstance(target, str)
                    or not source.strip()
                    or not target
                ):
                    raise DataError(
                        f'{path}, line {line}: expected {{"source": "<English>", "target": "<Chinese>"}} '
                        "with two non-empty strings"
                    )
                yield source, target


def write_pairs(path: Path, file_format: str, pairs) -> int:
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        if file_format == "tsv":
            writer = csv.writer(handle, dialect="excel-tab", lineterminator="\n")
            writer.writerow(TSV_HEADER)
            for source, target in pairs:
                writer.writerow([source, target])
                count += 1
        else:
            for source, target in pairs:
                handle.write(json.dumps({"source": source, "target": target}, ensure_ascii=False) + "\n")
                count += 1
    return count
