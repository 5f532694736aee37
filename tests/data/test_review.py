"""`qilin data review export|import` on a build translated by a fake endpoint on 127.0.0.1: the sample covers
every stratum, an imported review lands in the translation memory as reviewed, and the next build changes
exactly the corrected records, byte for byte, without a request."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from qilin_med_vl.cli import main
from qilin_med_vl.data.review.agreement import edit_distance
from qilin_med_vl.data.review.sample import allocate
from qilin_med_vl.data.translation.memory import ORIGIN_REVIEW, ORIGIN_SERVICE, TranslationMemory
from tests.published_sources import write_published_sources

from .fake_openai_server import FakeChatServer

KEY_ENV = "QILIN_TEST_REVIEW_KEY"
DROPPED_TEXT = "A patient of case 3 presented with cough for two weeks."  # answered in English twice
CAPTION = "Chest radiograph number 2 shows a nodule."
QUESTION = "What did the computed tomography of case 5 show?"
VQA_QUESTION = "Which organism is seen in the culture?"


class TranslatedBuild:
    """A build of the public-format sources through the fake endpoint, rebuilt with the same command."""

    def __init__(self, root: Path, server: FakeChatServer) -> None:
        self.config = write_published_sources(root)
        self.out = root / "built"
        self.server = server

    def build(self) -> None:
        args = ["data", "build", "--config", str(self.config), "--no-progress", "--translator", "openai"]
        args += ["--base-url", self.server.base_url, "--model", "fake-gpt", "--api-key-env", KEY_ENV]
        assert main([*args, "--translator-option", "retry_backoff_s=0.001"]) == 0

    def records(self) -> dict[str, bytes]:
        """Record id -> its line, over every stage, test and drop-log file."""
        lines = {}
        for path in sorted(self.out.glob("*.jsonl")):
            for line in path.read_bytes().splitlines():
                lines[json.loads(line)["id"]] = line
        return lines


@pytest.fixture
def translated(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    with FakeChatServer({DROPPED_TEXT: ["english", "english"]}) as server:
        build = TranslatedBuild(tmp_path / "sources", server)
        build.build()
        yield build


def export(build: TranslatedBuild, count: int, *more: str) -> Path:
    assert main(["data", "review", "export", "--out", str(build.out), "--sample", str(count), *more]) == 0
    return build.out / "review/review-sample.xlsx"


def fill(sheet: Path, verdicts: dict[str, tuple[str, str]]) -> None:
    """Write (verdict, correction) into the rows of these English texts."""
    workbook = load_workbook(sheet)
    rows = workbook.active
    header = [cell.value for cell in rows[1]]
    for row in rows.iter_rows(min_row=2):
        english = row[header.index("english")].value
        if english in verdicts:
            row[header.index("verdict")].value, row[header.index("correction")].value = verdicts[english]
    workbook.save(sheet)


def sheet_rows(sheet: Path) -> list[dict]:
    workbook = load_workbook(sheet, read_only=True)
    rows = list(workbook.active.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_largest_remainder_allocation_by_hand():
    # one each first (8 - 3 = 5 left), then 5 * 9/13 = 3.46 and 5 * 4/13 = 1.54: floors 3 and 1, the last
    # draw to the larger remainder (b); c has nothing left
    assert allocate({"a": 10, "b": 5, "c": 1}, 8) == {"a": 4, "b": 3, "c": 1}
    assert allocate({"a": 10, "b": 5, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}  # fewer draws than strata
    assert allocate({"a": 2, "b": 1}, 50) == {"a": 2, "b": 1}


def test_edit_distance_by_hand():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("左肺结节", "右肺结节") == 1
    assert edit_distance("", "气胸") == 2 and edit_distance("气胸", "气胸") == 0


def test_the_sample_holds_every_stratum_in_xlsx_and_csv(translated):
    sheet = export(translated, 8)
    rows = sheet_rows(sheet)
    # 8 strata: 4 case-report fields, the caption, 2 PMC-VQA fields, and the dropped case context
    assert sorted((row["source"], row["field"], row["state"], row["check"]) for row in rows) == [
        ("pmc_case_report", "answer", "service", "passed"),
        ("pmc_case_report", "context", "dropped", "translation_not_chinese"),
        ("pmc_case_report", "context", "service", "passed"),
        ("pmc_case_report", "inline", "service", "passed"),
        ("pmc_case_report", "question", "service", "passed"),
        ("pmc_oa", "caption", "service", "passed"),
        ("pmc_vqa", "answer", "service", "passed"),
        ("pmc_vqa", "question", "service", "passed"),
    ]
    dropped = next(row for row in rows if row["state"] == "dropped")
    assert dropped["english"] == dropped["chinese"] == DROPPED_TEXT  # the rejected answer is shown
    with sheet.with_suffix(".csv").open(encoding="utf-8-sig", newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [row["english"] for row in csv_rows] == [row["english"] for row in rows]
    assert all(row["verdict"] is None and row["correction"] is None for row in rows)


def test_an_imported_review_changes_exactly_the_corrected_records(translated, capsys):
    before = translated.records()
    sheet = export(translated, 100)
    machine = {row["english"]: row["chinese"] for row in sheet_rows(sheet)}
    fill(
        sheet,
        {
            CAPTION: ("fix", "胸片2号显示一个结节。"),
            DROPPED_TEXT: ("", "第3例患者咳嗽两周。"),  # a correction without a verdict is a fix
            QUESTION: ("accept", None),
            VQA_QUESTION: ("reject", None),
        },
    )
    requests_before = len(translated.server.requests)
    capsys.readouterr()
    assert main(["data", "review", "import", str(sheet), "--out", str(translated.out)]) == 0
    assert "4 reviewed (1 accepted, 2 fixed, 1 rejected); 3 stored" in capsys.readouterr().out

    report = json.loads(sheet.with_name("review-sample.agreement.json").read_text())
    distances = [
        0,
        edit_distance(machine[CAPTION], "胸片2号显示一个结节。"),
        edit_distance(DROPPED_TEXT, "第3例患者咳嗽两周。"),
    ]
    assert report["accepted_share"] == 0.25
    assert report["mean_edit_distance"] == pytest.approx(sum(distances) / 3, abs=1e-4)
    assert report["per_check"]["translation_not_chinese"] == {
        "reviewed": 1, "accepted": 0, "fixed": 1, "rejected": 0, "accepted_share": 0.0,
        "mean_edit_distance": distances[2],
    }  # fmt: skip
    assert report["per_check"]["passed"]["reviewed"] == 3

    with TranslationMemory(translated.out / "translation_memory.sqlite") as memory:
        assert memory.translation("fake-gpt", "zh-v1", CAPTION) == "胸片2号显示一个结节。"
        assert memory.origin("fake-gpt", "zh-v1", CAPTION) == ORIGIN_REVIEW
        assert memory.origin("fake-gpt", "zh-v1", QUESTION) == ORIGIN_REVIEW  # accepted as it was
        assert memory.origin("fake-gpt", "zh-v1", VQA_QUESTION) == ORIGIN_SERVICE  # rejected: left alone

    translated.build()
    assert len(translated.server.requests) == requests_before  # the rebuild paid for nothing
    after = translated.records()
    changed = {
        record_id
        for record_id in before.keys() | after.keys()
        if before.get(record_id) != after.get(record_id)
    }
    # the caption's record and the case context's record (dropped before, kept now); nothing else
    assert changed == {"pmc_oa-000000002-alignment", "pmc_case_report-000000003-alignment"}
    assert "胸片2号显示一个结节。" in after["pmc_oa-000000002-alignment"].decode()
    assert json.loads(before["pmc_case_report-000000003-alignment"])["reason"] == "translation_not_chinese"
    assert "第3例患者咳嗽两周。" in after["pmc_case_report-000000003-alignment"].decode()

    rows_left = sheet_rows(export(translated, 100))
    assert len(rows_left) == len(machine) - 3  # what was reviewed is not sampled again


def test_a_bad_row_stops_the_import_before_anything_is_stored(translated, capsys):
    sheet = export(translated, 100)
    fill(sheet, {CAPTION: ("fix", "胸片。"), QUESTION: ("maybe", None)})
    assert main(["data", "review", "import", str(sheet), "--out", str(translated.out)]) == 1
    error = capsys.readouterr().err
    assert "verdict 'maybe'; write one of accept, fix, reject" in error and ", row " in error
    with TranslationMemory(translated.out / "translation_memory.sqlite") as memory:
        assert memory.origin("fake-gpt", "zh-v1", CAPTION) == ORIGIN_SERVICE

    fill(sheet, {QUESTION: ("accept", None)})
    workbook = load_workbook(sheet)
    workbook.active.cell(row=2, column=11).value = "an English text the build never had"
    workbook.active.cell(row=2, column=13).value = "accept"
    workbook.save(sheet)
    assert main(["data", "review", "import", str(sheet), "--out", str(translated.out)]) == 1
    assert "has no translation of this English text" in capsys.readouterr().err


def test_a_filled_in_csv_imports_like_the_xlsx(translated, capsys):
    csv_sheet = export(translated, 100).with_suffix(".csv")
    with csv_sheet.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["english"] == CAPTION:
            row["verdict"], row["correction"] = "fix", "胸片2号显示一个结节。"
    with csv_sheet.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["data", "review", "import", str(csv_sheet), "--out", str(translated.out)]) == 0
    assert "1 reviewed (0 accepted, 1 fixed, 0 rejected); 1 stored" in capsys.readouterr().out
    with TranslationMemory(translated.out / "translation_memory.sqlite") as memory:
        assert memory.translation("fake-gpt", "zh-v1", CAPTION) == "胸片2号显示一个结节。"


def test_a_build_made_without_translation_has_nothing_to_review(tmp_path, capsys):
    config = write_published_sources(tmp_path / "sources")
    assert main(["data", "build", "--config", str(config), "--no-progress"]) == 0
    assert main(["data", "review", "export", "--out", str(tmp_path / "sources/built"), "--sample", "5"]) == 1
    assert "made without translation (translator backend none)" in capsys.readouterr().err
