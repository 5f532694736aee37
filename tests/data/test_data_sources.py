"""Readers of the public formats, on fixtures written exactly as the datasets publish them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from qilin_med_vl.data.sources import (
    iter_json_array,
    iter_json_records,
    parse_image_refs,
    read_pmc_case_report,
    read_pmc_oa,
    read_pmc_vqa,
    split_choice,
)
from qilin_med_vl.errors import DataError

from .data_fixtures import FIXTURES


def test_image_refs_are_parsed_as_literals_never_evaluated():
    assert parse_image_refs("['PMC1_F1.jpg', 'PMC1_F2.jpg']") == ("PMC1_F1.jpg", "PMC1_F2.jpg")
    assert parse_image_refs("PMC1_F1.jpg") == ("PMC1_F1.jpg",)
    assert parse_image_refs(["a.jpg"]) == ("a.jpg",)
    assert parse_image_refs("[]") == ()
    assert parse_image_refs(None) == ()
    for bad in ("['a.jpg', __import__('os').getcwd()]", "['a.jpg'", "[1, 2]", "['']", "('a.jpg', 3)"):
        with pytest.raises(ValueError):
            parse_image_refs(bad)


def test_choices_lose_their_letter_prefix():
    assert split_choice(" A:Pneumothorax") == ("A", "Pneumothorax")
    assert split_choice(" B:Right ") == ("B", "Right")
    assert split_choice(' A:A "mass", likely benign') == ("A", 'A "mass", likely benign')
    assert split_choice("no prefix") == (None, "no prefix")


def test_pmc_oa_rows_including_broken_lines():
    rows = list(read_pmc_oa([FIXTURES / "pmc_oa/pmc_oa.jsonl"]))
    assert [row.index for row in rows] == list(range(12))
    assert rows[0].images == ("PMC100_F1.jpg",) and rows[0].ref == "PMC100"
    assert rows[1].texts == {"caption": ""}
    assert "invalid JSON" in rows[8].error and rows[8].location.endswith("pmc_oa.jsonl:9")
    assert rows[9].error == "missing field(s) image"
    assert rows[10].texts["caption"] == 'Coronal CT: "double-duct" sign, 2.5 cm; see Fig. 2 — 90% stenosis.'


def test_case_report_jsonl_and_parquet_read_the_same(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = FIXTURES / "pmc_case_report/case_report.jsonl"
    from_jsonl = list(read_pmc_case_report([source]))
    assert from_jsonl[1].images == ("PMC201_tall_a.jpg", "PMC201_tall_b.jpg")
    assert len(from_jsonl[6].images) == 6
    assert from_jsonl[7].images == () and from_jsonl[7].error is None
    assert "not a list literal" in from_jsonl[8].error
    assert from_jsonl[12].error == "missing field(s) answer"
    items = [json.loads(line) for line in source.read_text().splitlines()]
    parquet_path = tmp_path / "case_report.parquet"
    pq.write_table(pa.Table.from_pylist(items), parquet_path, row_group_size=5)
    from_parquet = list(read_pmc_case_report([parquet_path]))
    assert len(from_parquet) == len(from_jsonl)
    for jsonl_row, parquet_row in zip(from_jsonl[:12], from_parquet[:12], strict=True):
        assert (jsonl_row.images, jsonl_row.texts, jsonl_row.ref, jsonl_row.error) == (
            parquet_row.images,
            parquet_row.texts,
            parquet_row.ref,
            parquet_row.error,
        )
    # in parquet a field absent from a row is a null: read as empty text, left to the filters
    assert from_parquet[12].error is None and from_parquet[12].texts["answer"] == ""


def test_pmc_vqa_csv_quoting_choices_and_v2_layout():
    rows = list(read_pmc_vqa([FIXTURES / "pmc_vqa/train.csv", FIXTURES / "pmc_vqa/train_2.csv"]))
    assert [row.index for row in rows] == list(range(9))
    first = rows[0]
    assert first.images == ("PMC300_F1.jpg",) and first.answer_label == "A"
    assert first.texts == {
        "question": "What is shown in the chest X-ray?",
        "choice_A": "Pneumothorax",
        "choice_B": "Pneumonia",
        "choice_C": "Pleural effusion",
        "choice_D": "Normal lung",
        "answer": "Pneumothorax",
    }
    assert rows[1].texts["question"] == "Which side, left or right, is affected?"
    assert rows[1].texts["choice_A"] == "Left"
    assert rows[2].texts["answer"] == 'A "mass", likely benign'
    assert rows[3].texts["question"] == "What is seen\nin the axial MRI?" and rows[3].answer_label == "B"
    assert rows[6].error is not None and rows[6].location.endswith("train.csv:9")
    assert rows[7].answer_label == "C" and rows[7].texts["answer"] == "Right kidney"
    assert rows[8].texts["answer"] == "Yes"


def test_a_csv_without_the_columns_is_refused_by_name(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("image,text\na.jpg,hello\n")
    with pytest.raises(DataError, match=r"other\.csv.*Figure_path"):
        list(read_pmc_vqa([path]))


def test_released_files_stream_as_records():
    released = FIXTURES / "released"
    alignment = [item for _, item, _ in iter_json_records(released / "ChiMed-VL-Alignment.jsonl")]
    instruction = [item for _, item, _ in iter_json_records(released / "ChiMed-VL-Instruction.json")]
    chat = [item for _, item, _ in iter_json_records(released / "ChiMed-VL-Chat.json")]
    assert [len(alignment), len(instruction), len(chat)] == [3, 3, 2]
    assert instruction == json.loads((released / "ChiMed-VL-Instruction.json").read_text("utf-8"))
    assert len(chat[1]["conversations"]) == 6


def test_json_array_reader_handles_items_across_chunk_boundaries():
    items = [
        {"id": n, "text": '逗号, 括号 ] [ 和 "引号" ' * (n % 5), "nested": [[n], {"k": "}"}]}
        for n in range(40)
    ]
    text = json.dumps(items, ensure_ascii=False, indent=1)
    for chunk_size in (1, 7, 4096):
        decoded = [item for _, item, _ in iter_json_array(io.StringIO(text), Path("x.json"), chunk_size)]
        assert decoded == items
    assert [item for _, item, _ in iter_json_array(io.StringIO(" [ ] "), Path("e.json"))] == []
    with pytest.raises(DataError, match="t.json"):
        list(iter_json_array(io.StringIO(text[: len(text) // 2]), Path("t.json"), 64))
