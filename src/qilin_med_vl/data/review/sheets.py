"""The review sheet: the sample as XLSX (openpyxl) and CSV with the same columns, and reading either back.

Columns, left to right: what the reviewer reads (`row`, `source`, `field`, `length`, `length_band`,
`state`, `check`, `check_detail`, `chinese_share`, `occurrences`, `english`, `chinese`), what the
reviewer fills in (`verdict`: accept | fix | reject, `correction`, `comment`), and the memory key the
row belongs to (`model`, `prompt_version`). The CSV is UTF-8 with a byte-order mark, which Excel and
LibreOffice open as Unicode. Only `english`, `chinese`, `verdict`, `correction`, `check`, `model` and
`prompt_version` are read back; the reviewer may sort, hide or add columns.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.data.review.items import ReviewItem
from qilin_med_vl.data.review.sample import length_band
from qilin_med_vl.errors import DataError

SHOWN = ("row", "source", "field", "length", "length_band", "state", "check", "check_detail",
         "chinese_share", "occurrences", "english", "chinese")  # fmt: skip
FILLED = ("verdict", "correction", "comment")
KEY = ("model", "prompt_version")
COLUMNS = (*SHOWN, *FILLED, *KEY)
READ_BACK = ("english", "chinese", "check", "verdict", "correction", *KEY)
VERDICTS = ("accept", "fix", "reject")
WIDE_COLUMNS = {"english": 60, "chinese": 45, "correction": 45, "check_detail": 30, "comment": 25}
SHEET_TITLE = "review"


@dataclass(frozen=True)
class SheetRow:
    line: int  # row number in the sheet (the header is 1), for messages
    english: str
    chinese: str
    check: str
    verdict: str
    correction: str
    model: str
    prompt_version: str


def fits_a_worksheet(item: ReviewItem) -> bool:
    """False for texts with control characters a worksheet cannot hold (openpyxl refuses them): such a
    text could not come back unchanged from the spreadsheet, so it is not offered for review."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return not (ILLEGAL_CHARACTERS_RE.search(item.english) or ILLEGAL_CHARACTERS_RE.search(item.chinese))


def _values(number: int, item: ReviewItem, model: str, prompt_version: str) -> list:
    return [number, item.source, item.field, len(item.english), length_band(item.english), item.state,
            item.check, item.check_detail, item.chinese_share, item.occurrences, item.english, item.chinese,
            "", "", "", model, prompt_version]  # fmt: skip


def write_csv(path: Path, items: list[ReviewItem], model: str, prompt_version: str) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for number, item in enumerate(items, start=1):
            writer.writerow(_values(number, item, model, prompt_version))


def write_xlsx(path: Path, items: list[ReviewItem], model: str, prompt_version: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SHEET_TITLE
    sheet.append(COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for number, item in enumerate(items, start=1):
        sheet.append(_values(number, item, model, prompt_version))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # a text, never a formula
    for index, name in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = WIDE_COLUMNS.get(name, 12)
        if name in WIDE_COLUMNS:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    verdicts = DataValidation(type="list", formula1=f'"{",".join(VERDICTS)}"', allow_blank=True)
    verdict_column = get_column_letter(COLUMNS.index("verdict") + 1)
    verdicts.add(f"{verdict_column}2:{verdict_column}{max(2, len(items) + 1)}")
    sheet.add_data_validation(verdicts)
    sheet.freeze_panes = "B2"
    workbook.save(path)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a spreadsheet turned "12" into 12.0
    return str(value)


def _rows_of_xlsx(path: Path) -> list[list]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises zipfile, KeyError and its own errors for broken files
        raise DataError(f"{path}: not a readable XLSX workbook ({error}); save it again as .xlsx") from error
    sheet = workbook[SHEET_TITLE] if SHEET_TITLE in workbook.sheetnames else workbook.worksheets[0]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    workbook.close()
    return rows


def _rows_of_csv(path: Path) -> list[list]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def read_sheet(path: Path) -> list[SheetRow]:
    """The rows of a filled-in review sheet (XLSX or CSV, by suffix); DataError names the file and fix."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the XLSX or CSV written by `qilin data review export`")
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise DataError(f"{path}: a review sheet is .xlsx or .csv, not {suffix or 'a file without suffix'}")
    rows = _rows_of_xlsx(path) if suffix == ".xlsx" else _rows_of_csv(path)
    if not rows:
        raise DataError(f"{path}: the sheet is empty; give the file `qilin data review export` wrote")
    header = [_text(cell).strip() for cell in rows[0]]
    missing = [name for name in READ_BACK if name not in header]
    if missing:
        raise DataError(
            f"{path}: the header lacks the column(s) {', '.join(missing)}; keep the columns of "
            "`qilin data review export` (others may be added, hidden or reordered)"
        )
    position = {name: header.index(name) for name in READ_BACK}
    result = []
    for line, row in enumerate(rows[1:], start=2):
        cells = {name: _text(row[index]) if index < len(row) else "" for name, index in position.items()}
        if not any(cells.values()):
            continue
        result.append(SheetRow(line=line, **cells))
    return result
