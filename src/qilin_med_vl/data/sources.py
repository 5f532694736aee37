"""Streaming readers for the public source formats: PMC-OA, PMC-CaseReport, PMC-VQA, released ChiMed-VL.

Every reader yields one item per row and never holds a whole file in memory (JSON arrays included).
A row that cannot be parsed is still yielded, as a `SourceRow` with `error` set, so that the builder
counts it as dropped (`malformed_record`) instead of losing it. A file that cannot be read at all (no
such file, a CSV without the required columns) raises `DataError` naming the file and the fix.

Formats, exactly as published:
- PMC-OA: JSONL rows `{"image", "caption", "pmcid", "url_name"}`; `image` names a file in `images/`.
- PMC-CaseReport: parquet (published as shards, `data/train-00000-of-00002-*.parquet`: `records`
  takes globs), CSV (what the authors' loader reads) or JSONL rows `{"PMC_id", "context", "inline",
  "question", "answer", "img_ref"}`. `img_ref` is a *string* holding a Python list literal of figure
  ids, e.g. "['pone-0001008-g001']", parsed with `ast.literal_eval` (never `eval`); the image of figure
  id X of article P is the file `P_X.jpg` (`PMC1999654_pone-0001008-g001.jpg`). Entries that already
  are file names (they end in an image suffix) are taken as they are. Questions and answers may start
  with `Q:` / `A:`, which is stripped.
- PMC-VQA: CSV with `Figure_path, Question, Answer, Choice A, Choice B, Choice C, Choice D, Answer_label`
  (v2 files add `index, Caption, split`, and `Answer` holds the letter); choices look like
  " A:Pneumothorax"; `Answer` is plain text and is never stripped of a prefix ("E. coli" stays); early
  copies spell the column `Anwser`.

Every source file's header is checked by `HEADER_CHECKS` before the build starts, so a wrong file
stops the build with nothing written.
- Released ChiMed-VL: `ChiMed-VL-Alignment.jsonl` (JSON lines), `ChiMed-VL-Instruction.json` and
  `ChiMed-VL-Chat.json` (JSON arrays); LLaVA records `{"id", "image", "conversations": [...]}`.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from qilin_med_vl.data.records import PMC_CASE_REPORT, PMC_OA, PMC_VQA, SourceRow
from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import ALIGNMENT, INSTRUCTION

VQA_REQUIRED_COLUMNS = ("Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D")
VQA_COLUMN_SPELLINGS = {"Anwser": "Answer"}  # early PMC-VQA copies misspell the column
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".bmp", ".webp")
CASE_REPORT_IMAGE_SUFFIX = ".jpg"  # figure id X of article P is the file P_X.jpg
CASE_REPORT_SUFFIXES = (".parquet", ".csv", ".jsonl")
GLOB_CHARACTERS = frozenset("*?[")
# "Q: What ..." / "A: ..." in PMC-CaseReport's QA fields
QUESTION_PREFIX = re.compile(r"^\s*Q\s*[:：]\s*")
ANSWER_PREFIX = re.compile(r"^\s*A\s*[:：]\s*")
CHOICE_LETTERS = ("A", "B", "C", "D")
CASE_REPORT_FIELDS = ("PMC_id", "context", "inline", "question", "answer", "img_ref")
PMC_OA_FIELDS = ("image", "caption")
# " A:Pneumothorax" -> ("A", "Pneumothorax"); tolerant of a full-width colon or a dot after the letter.
CHOICE_PATTERN = re.compile(r"^\s*([A-Z])\s*[:：.]\s*(.*?)\s*$", re.DOTALL)
# The released ChiMed-VL files (by stem) and the training stage each feeds.
RELEASED_FILE_STAGES = {
    "ChiMed-VL-Alignment": ALIGNMENT,
    "ChiMed-VL-Instruction": INSTRUCTION,
    "ChiMed-VL-Chat": INSTRUCTION,
}
JSON_READ_CHUNK = 1 << 20
JSON_MAX_ITEM_CHARS = 1 << 26  # an array item longer than this is taken as broken JSON, not read on


def parse_image_refs(value: Any) -> tuple[str, ...]:
    """Image names from a field that holds one name, a list, or a string holding a list literal.

    Raises ValueError for anything else (so the caller can record the row as malformed).
    """
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        names = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        if text.startswith(("[", "(")):
            try:
                names = ast.literal_eval(text)
            except (ValueError, SyntaxError) as error:
                raise ValueError(f"image list {text[:80]!r} is not a list literal ({error})") from None
            if not isinstance(names, (list, tuple)):
                raise ValueError(f"image list {text[:80]!r} is not a list")
        else:
            names = [text]
    else:
        raise ValueError(f"image reference {value!r} is neither a file name nor a list of file names")
    cleaned = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"image list entry {name!r} is not a file name")
        cleaned.append(name.strip())
    return tuple(cleaned)


def expand_globs(source: str, patterns: Iterable[Path]) -> list[Path]:
    """The files a source's `records` names: plain paths, or globs expanded in sorted order."""
    files: list[Path] = []
    for pattern in patterns:
        if GLOB_CHARACTERS & set(str(pattern)):
            anchor = Path(pattern.anchor) if pattern.is_absolute() else Path()
            matched = sorted(
                anchor.glob(str(pattern.relative_to(anchor)) if pattern.is_absolute() else str(pattern))
            )
            if not matched:
                raise DataError(
                    f"sources.{source}.records: {pattern} matches no file; fix the pattern in the build config"
                )
            files.extend(matched)
        elif not pattern.is_file():
            raise DataError(
                f"sources.{source}.records: {pattern}: no such file; fix the path in the build config"
            )
        else:
            files.append(pattern)
    return files


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the source paths in the build config")
    return path


def _text(value: Any) -> str:
    """A text field as a stripped string; null (parquet, JSON) counts as empty."""
    return "" if value is None else str(value).strip()


def iter_jsonl(path: Path) -> Iterator[tuple[str, Any, str | None]]:
    """(location, parsed object or None, error) for every non-blank line of a JSONL file."""
    with open(_require_file(path), encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{path}:{line_number}"
            try:
                yield location, json.loads(line), None
            except json.JSONDecodeError as error:
                yield location, None, f"invalid JSON ({error})"


def iter_json_array(
    handle: TextIO, path: Path, chunk_size: int = JSON_READ_CHUNK
) -> Iterator[tuple[str, Any, str | None]]:
    """Items of a top-level JSON array, decoded one at a time from a growing text buffer."""
    decoder = json.JSONDecoder()
    buffer = ""
    position = 0
    at_end = False
    started = False
    item_number = 0
    chunk = chunk_size

    def refill() -> bool:
        nonlocal buffer, position, at_end
        data = handle.read(chunk)
        if not data:
            at_end = True
            return False
        buffer = buffer[position:] + data
        position = 0
        return True

    while True:
        # skip whitespace and separators
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n,":
                position += 1
            if position < len(buffer) or at_end or not refill():
                break
        if position >= len(buffer):
            raise DataError(f"{path}: the JSON array is not closed (file truncated?)")
        if not started:
            if buffer[position] != "[":
                raise DataError(f"{path}: expected a JSON array of records ('[' first) or JSON lines")
            started = True
            position += 1
            continue
        if buffer[position] == "]":
            return
        try:
            item, end = decoder.raw_decode(buffer, position)
        except json.JSONDecodeError as error:
            if at_end or len(buffer) - position > JSON_MAX_ITEM_CHARS:
                raise DataError(f"{path}: invalid JSON in item {item_number + 1} ({error})") from None
            if not refill():
                continue
            chunk = min(chunk * 2, 1 << 26)  # an item larger than the buffer: read more at once
            continue
        item_number += 1
        position = end
        yield f"{path}#{item_number}", item, None


def iter_json_records(path: Path) -> Iterator[tuple[str, Any, str | None]]:
    """Records of a JSON-lines file or of a JSON array file (detected from the first character)."""
    with open(_require_file(path), encoding="utf-8") as handle:
        head = handle.read(4096).lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        with open(path, encoding="utf-8-sig") as handle:
            yield from iter_json_array(handle, path)
    else:
        yield from iter_jsonl(path)


def _image_names(
    item: Any, error: str | None, fields: tuple[str, ...], image_field: str
) -> tuple[list[str], str | None]:
    """The image names a parsed row refers to, or why the row is malformed."""
    if error is not None:
        return [], error
    if not isinstance(item, dict):
        return [], "the row is not a JSON object"
    missing = [name for name in fields if name not in item]
    if missing:
        return [], f"missing field(s) {', '.join(missing)}"
    try:
        return parse_image_refs(item[image_field]), None
    except ValueError as bad:
        return [], str(bad)


def read_pmc_oa(paths: Iterable[Path], start_index: int = 0) -> Iterator[SourceRow]:
    """PMC-OA JSONL rows; one alignment candidate each (its caption)."""
    index = start_index
    for path in paths:
        for location, item, error in iter_jsonl(Path(path)):
            row = dict(source=PMC_OA, index=index, location=location)
            index += 1
            images, error = _image_names(item, error, PMC_OA_FIELDS, "image")
            if error is not None:
                yield SourceRow(**row, error=error)
                continue
            yield SourceRow(
                **row,
                ref=_text(item.get("pmcid")),
                images=images,
                texts={"caption": _text(item["caption"])},
            )


def _csv_rows(path: Path) -> Iterator[tuple[str, dict[str, str], int]]:
    """(location, row, number of header columns) for each row of a CSV file with a header."""
    with open(_require_file(path), encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [VQA_COLUMN_SPELLINGS.get(name, name) for name in reader.fieldnames or []]
        reader.fieldnames = header
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({error})") from error
            yield f"{path}:{reader.line_num}", fields, len(header)


def _csv_header(path: Path) -> list[str]:
    with open(_require_file(path), encoding="utf-8-sig", newline="") as handle:
        try:
            header = next(csv.reader(handle), [])
        except csv.Error as error:
            raise DataError(f"{path}: unreadable CSV header ({error})") from error
    return [VQA_COLUMN_SPELLINGS.get(name.strip(), name.strip()) for name in header]


def _first_json_record(path: Path) -> Any:
    for _, item, error in iter_json_records(path):
        if error is not None:
            raise DataError(f"{path}: the first record is not JSON ({error}); is this the right file?")
        return item
    raise DataError(f"{path}: the file holds no records")


def _require_fields(path: Path, found: Iterable[str], required: tuple[str, ...], what: str, fix: str) -> None:
    found = list(found)
    missing = [name for name in required if name not in found]
    if missing:
        raise DataError(
            f"{path}: not a {what} file, missing column(s) {', '.join(missing)} "
            f"(found {', '.join(map(str, found)) or 'none'}); {fix}"
        )


def check_pmc_oa_header(path: Path) -> None:
    item = _first_json_record(path)
    fields = item if isinstance(item, dict) else {}
    _require_fields(path, fields, PMC_OA_FIELDS, "PMC-OA JSONL", "point pmc_oa.records at pmc_oa.jsonl")


def check_case_report_header(path: Path) -> None:
    fix = "point pmc_case_report.records at the release's parquet shards (e.g. data/train-*.parquet)"
    if path.suffix not in CASE_REPORT_SUFFIXES:
        raise DataError(
            f"{path}: PMC-CaseReport is read from {', '.join(CASE_REPORT_SUFFIXES)} files, not {path.suffix or 'a file without suffix'}; {fix}"
        )
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(_require_file(path)).names
        except Exception as error:  # pyarrow raises several types for a file that is not parquet
            raise DataError(f"{path}: cannot read as parquet ({error})") from error
    elif path.suffix == ".csv":
        names = _csv_header(path)
    else:
        item = _first_json_record(path)
        names = list(item) if isinstance(item, dict) else []
    _require_fields(path, names, CASE_REPORT_FIELDS, "PMC-CaseReport", fix)


def check_pmc_vqa_header(path: Path) -> None:
    fix = "point pmc_vqa.records at train.csv / test.csv (v1) or train_2.csv / test_2.csv (v2)"
    _require_fields(path, _csv_header(path), VQA_REQUIRED_COLUMNS, "PMC-VQA CSV", fix)


def _case_report_items(path: Path) -> Iterator[tuple[str, Any, str | None]]:
    if path.suffix == ".csv":
        for location, fields, columns in _csv_rows(path):
            error = (
                None if None not in fields else f"the row does not have the {columns} columns of the header"
            )
            yield location, fields, error
        return
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(_require_file(path))
        except Exception as error:  # pyarrow raises several types for a file that is not parquet
            raise DataError(f"{path}: cannot read as parquet ({error})") from error
        row_number = 0
        for batch in parquet.iter_batches(batch_size=1024):
            for item in batch.to_pylist():
                row_number += 1
                yield f"{path}#row{row_number}", item, None
    else:
        yield from iter_jsonl(path)


def case_report_image_names(pmc_id: str, refs: tuple[str, ...]) -> tuple[str, ...]:
    """Figure ids -> `{PMC_id}_{id}.jpg`; entries that already are file names are kept as they are."""
    return tuple(
        ref if ref.lower().endswith(IMAGE_SUFFIXES) else f"{pmc_id}_{ref}{CASE_REPORT_IMAGE_SUFFIX}"
        for ref in refs
    )


def read_pmc_case_report(paths: Iterable[Path], start_index: int = 0) -> Iterator[SourceRow]:
    """PMC-CaseReport rows (parquet, CSV or JSONL); alignment (inline + context) and instruction (QA)."""
    index = start_index
    for path in paths:
        for location, item, error in _case_report_items(Path(path)):
            row = dict(source=PMC_CASE_REPORT, index=index, location=location)
            index += 1
            images, error = _image_names(item, error, CASE_REPORT_FIELDS, "img_ref")
            if error is not None:
                yield SourceRow(**row, error=error)
                continue
            pmc_id = _text(item["PMC_id"])
            texts = {name: _text(item[name]) for name in ("context", "inline")}
            texts["question"] = QUESTION_PREFIX.sub("", _text(item["question"]))
            texts["answer"] = ANSWER_PREFIX.sub("", _text(item["answer"]))
            yield SourceRow(**row, ref=pmc_id, images=case_report_image_names(pmc_id, images), texts=texts)


def split_choice(value: str) -> tuple[str | None, str]:
    """ " A:Pneumothorax" -> ("A", "Pneumothorax"); a value without a letter prefix -> (None, text)."""
    match = CHOICE_PATTERN.match(value or "")
    if match:
        return match.group(1), match.group(2)
    return None, (value or "").strip()


def _vqa_row(fields: dict[str, str]) -> tuple[dict[str, str], str | None, str | None]:
    """(texts, answer label, error) for one PMC-VQA CSV row."""
    texts = {"question": _text(fields["Question"])}
    for letter in CHOICE_LETTERS:
        _, choice_text = split_choice(fields[f"Choice {letter}"])
        texts[f"choice_{letter}"] = choice_text
    label = _text(fields.get("Answer_label")).upper() or None
    answer_text = _text(fields["Answer"])  # plain text: "E. coli" is an answer, not choice E
    if label is None and answer_text in CHOICE_LETTERS:  # v2 files: Answer holds the bare letter
        label, answer_text = answer_text, ""
    if label is None:
        for letter in CHOICE_LETTERS:
            if answer_text and texts[f"choice_{letter}"].casefold() == answer_text.casefold():
                label = letter
                break
    if label is not None and label not in CHOICE_LETTERS:
        return texts, None, f"Answer_label {label!r} is not one of A-D"
    if not answer_text and label is not None:
        answer_text = texts[f"choice_{label}"]
    texts["answer"] = answer_text
    return texts, label, None


def read_pmc_vqa(paths: Iterable[Path], start_index: int = 0) -> Iterator[SourceRow]:
    """PMC-VQA CSV rows (v1 and v2 layouts); instruction candidates."""
    index = start_index
    for path in paths:
        path = Path(path)
        check_pmc_vqa_header(path)
        for location, fields, columns in _csv_rows(path):
            row = dict(source=PMC_VQA, index=index, location=location)
            index += 1
            if None in fields or any(fields[name] is None for name in VQA_REQUIRED_COLUMNS):
                yield SourceRow(**row, error=f"the row does not have the {columns} columns of the header")
                continue
            texts, label, error = _vqa_row(fields)
            try:
                images = parse_image_refs(fields["Figure_path"])
            except ValueError as bad:
                error = error or str(bad)
            if error is not None:
                yield SourceRow(**row, error=error)
                continue
            yield SourceRow(
                **row, ref=fields["Figure_path"].strip(), images=images, texts=texts, answer_label=label
            )


READERS = {PMC_OA: read_pmc_oa, PMC_CASE_REPORT: read_pmc_case_report, PMC_VQA: read_pmc_vqa}
HEADER_CHECKS = {
    PMC_OA: check_pmc_oa_header,
    PMC_CASE_REPORT: check_case_report_header,
    PMC_VQA: check_pmc_vqa_header,
}
