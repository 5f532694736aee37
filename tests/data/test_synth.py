"""`qilin data synth`: deterministic files, readable by the project's readers, pixels that carry the findings,
a Chinese reference for every English text, and a build config that turns them into a Chinese dataset."""

from __future__ import annotations

import ast
import csv
import dataclasses
import hashlib
import json
import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qilin_med_vl.cli import main
from qilin_med_vl.data import split
from qilin_med_vl.data.records import PMC_CASE_REPORT, PMC_OA, PMC_VQA, SourceRow
from qilin_med_vl.data.sources import READERS
from qilin_med_vl.data.synth import cli as synth_cli
from qilin_med_vl.data.synth import generate, write
from qilin_med_vl.data.synth.chinese import CHINESE
from qilin_med_vl.data.synth.english import ENGLISH
from qilin_med_vl.data.synth.findings import (
    LARGE,
    LEFT,
    LOWER,
    MODALITIES,
    NO_FINDING,
    QUESTION_TYPES,
    RIGHT,
    SMALL,
    UPPER,
    Finding,
)
from qilin_med_vl.data.synth.language import PhraseBook
from qilin_med_vl.data.synth.render import render
from qilin_med_vl.data.synth.world import Counts
from qilin_med_vl.llava_format import ALIGNMENT, INSTRUCTION, SPLITS, STAGES, TEST, built_files

SMALL_COUNTS = Counts(captions=8, cases=12, vqa=40)
MODEL_SIDE = 64  # what the demo model sees


def _synthesize(out: Path, seed: int = 0, real: bool = False, counts: Counts = SMALL_COUNTS):
    return generate.synthesize(out, seed=seed, counts=counts, size=96, real=real, progress=False)


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "world"
    _synthesize(out)
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _memory(folder: Path) -> dict[str, str]:
    lines = (folder / write.TRANSLATION_MEMORY_IMPORT).read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines]
    memory = {pair["source"]: pair["target"] for pair in pairs}
    assert len(memory) == len(pairs), "each English text is listed once"
    return memory


def _case_rows(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for relative in write.case_report_shard_paths():
        rows += pq.read_table(folder / relative).to_pylist()
    return rows


def _vqa_rows(folder: Path) -> list[dict]:
    with (folder / write.PMC_VQA_RECORDS).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path, synth_folder):
    _synthesize(tmp_path / "again")
    _synthesize(tmp_path / "other", seed=1)
    first, again, other = _digests(synth_folder), _digests(tmp_path / "again"), _digests(tmp_path / "other")
    assert first == again
    assert len(first) == 8 + 1 + 2 + 1 + 40 + 3 + sum(  # OA images + jsonl, shards, csv, VQA figures, 3 files
        len(ast.literal_eval(row["img_ref"])) for row in _case_rows(synth_folder)
    )
    assert first[write.PMC_VQA_RECORDS] != other[write.PMC_VQA_RECORDS]


def test_pmc_oa_and_pmc_vqa_files_parse_with_the_project_readers(synth_folder):
    captions = list(READERS[PMC_OA]([synth_folder / write.PMC_OA_RECORDS]))
    assert len(captions) == 8
    for row in captions:
        assert row.error is None and row.ref.startswith("PMC")
        assert (synth_folder / write.PMC_OA_IMAGES / row.images[0]).is_file()
    questions = list(READERS[PMC_VQA]([synth_folder / write.PMC_VQA_RECORDS]))
    assert len(questions) == 40
    assert len({row.images for row in questions}) == 40, "every question has its own figure"
    for row in questions:
        assert row.error is None
        assert row.texts["answer"] == row.texts[f"choice_{row.answer_label}"]
        (figure,) = row.images
        assert figure.startswith("PMC") and figure.endswith(".png")
        assert (synth_folder / write.PMC_VQA_IMAGES / figure).is_file()


def test_case_reports_are_two_parquet_shards_whose_figure_ids_name_files(synth_folder):
    import pyarrow.parquet as pq

    shards = [synth_folder / relative for relative in write.case_report_shard_paths()]
    assert [path.name for path in shards] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    for path in shards:
        assert pq.read_schema(path).names == ["PMC_id", "context", "inline", "question", "answer", "img_ref"]
    rows = _case_rows(synth_folder)
    assert len(rows) == 12
    for row in rows:
        assert isinstance(row["img_ref"], str)
        figure_ids = ast.literal_eval(row["img_ref"])
        assert 1 <= len(figure_ids) <= 3
        for figure_id in figure_ids:
            assert "." not in figure_id  # an id, not a file name
            assert (synth_folder / write.CASE_REPORT_IMAGES / f"{row['PMC_id']}_{figure_id}.jpg").is_file()
    parsed = list(READERS[PMC_CASE_REPORT](shards))
    assert [row.error for row in parsed] == [None] * 12
    assert len({row["PMC_id"] for row in rows}) < len(rows), "some articles hold several cases"


def _at_model_size(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((MODEL_SIDE, MODEL_SIDE), Image.Resampling.BICUBIC), float)


def _lesion_energy(modality: str, finding: Finding, seeds=range(4)) -> np.ndarray:
    """Mean |picture with the lesion - picture without| at 64x64, over a few anatomies: (64, 64)."""
    total = np.zeros((MODEL_SIDE, MODEL_SIDE))
    for seed in seeds:
        with_lesion = _at_model_size(render(modality, finding, 128, seed))
        without = _at_model_size(render(modality, NO_FINDING, 128, seed))
        total += np.abs(with_lesion - without)
    return total / len(seeds)


@pytest.mark.parametrize("modality", MODALITIES)
def test_the_lesion_changes_the_pixels_where_the_finding_says(modality):
    half = MODEL_SIDE // 2
    for side, region in ((LEFT, UPPER), (RIGHT, LOWER)):
        energy = _lesion_energy(modality, Finding(True, side, region, SMALL))
        left, right = energy[:, :half].mean(), energy[:, half:].mean()
        upper, lower = energy[:half].mean(), energy[half:].mean()
        near, far = (left, right) if side == LEFT else (right, left)
        assert near > 2 * far, f"{modality} {side}: {near:.2f} vs {far:.2f}"
        near, far = (upper, lower) if region == UPPER else (lower, upper)
        assert near > 2 * far, f"{modality} {region}: {near:.2f} vs {far:.2f}"
        # strong enough to see at 64x64: the lesion's pixels move by a fifth of the grey range or more
        quadrant = energy[:half, :half] if (side, region) == (LEFT, UPPER) else energy[half:, half:]
        assert quadrant.max() > 50 and quadrant.mean() > 3
    small = _lesion_energy(modality, Finding(True, LEFT, UPPER, SMALL)).sum()
    large = _lesion_energy(modality, Finding(True, LEFT, UPPER, LARGE)).sum()
    assert large > 2 * small


def test_the_modalities_look_different():
    """The average pictures of any two modalities differ by a quarter of the grey range at 64x64."""
    averages = {
        modality: np.mean(
            [
                np.asarray(render(modality, NO_FINDING, 128, seed).resize((MODEL_SIDE, MODEL_SIDE)), float)
                for seed in range(3)
            ],
            axis=0,
        )
        for modality in MODALITIES
    }
    for index, first in enumerate(MODALITIES):
        for second in MODALITIES[index + 1 :]:
            assert np.abs(averages[first] - averages[second]).mean() > 25, (first, second)


def test_every_english_text_the_builder_translates_has_its_chinese_reference(synth_folder):
    memory = _memory(synth_folder)
    shards = [synth_folder / relative for relative in write.case_report_shard_paths()]
    rows = [
        *READERS[PMC_OA]([synth_folder / write.PMC_OA_RECORDS]),
        *READERS[PMC_CASE_REPORT](shards),
        *READERS[PMC_VQA]([synth_folder / write.PMC_VQA_RECORDS]),
    ]
    english = {text for row in rows for text in row.texts.values() if text}
    assert len(english) > 40
    assert sorted(english - set(memory)) == []
    assert set(memory) == english, "the memory holds nothing the files do not say"
    for target in memory.values():
        assert any("\u4e00" <= character <= "\u9fff" for character in target)
    prefixed = [row for row in _case_rows(synth_folder) if row["question"].startswith("Q: ")]
    assert prefixed, "some case-report questions are written with the Q: prefix"


def test_short_answers_have_one_consistent_chinese_form(synth_folder):
    memory = _memory(synth_folder)
    expected = {
        "Yes": "是",
        "No": "否",
        "Left": "左侧",
        "Right": "右侧",
        "Upper": "上部",
        "Lower": "下部",
        "Small": "较小",
        "Large": "较大",
        "Chest X-ray": "胸部X光片",
        "Head CT": "头部CT",
        "Abdominal CT": "腹部CT",
        "Ultrasound": "超声",
        "Histology": "病理切片",
    }
    assert {english: memory[english] for english in expected if english in memory} == {
        english: chinese for english, chinese in expected.items() if english in memory
    }
    assert len([english for english in expected if english in memory]) >= 10


def test_ground_truth_describes_every_row_and_its_answer(synth_folder):
    lines = (synth_folder / write.GROUND_TRUTH).read_text(encoding="utf-8").splitlines()
    truth = [json.loads(line) for line in lines]
    by_source = {
        source: [row for row in truth if row["source"] == source]
        for source in (PMC_OA, PMC_CASE_REPORT, PMC_VQA)
    }
    assert [len(by_source[source]) for source in (PMC_OA, PMC_CASE_REPORT, PMC_VQA)] == [8, 12, 40]
    memory = _memory(synth_folder)
    for csv_row, row in zip(_vqa_rows(synth_folder), by_source[PMC_VQA], strict=True):
        assert row["ref"] == csv_row["Figure_path"]
        assert row["answer_en"] == csv_row["Answer"] and row["answer_zh"] == memory[csv_row["Answer"]]
        assert row["record_ids"] == [f"pmc_vqa-{row['index']:09d}-instruction"]
        assert row["question_record_id"] == row["record_ids"][0]
        finding = row["findings"]
        if row["question_type"] in ("side", "region", "size"):
            assert finding["present"] and row["answer_en"].lower() == finding[row["question_type"]]
        if row["question_type"] == "presence":
            assert row["answer_en"] == ("Yes" if finding["present"] else "No")
    assert {row["question_type"] for row in by_source[PMC_VQA]} == set(QUESTION_TYPES)
    for parquet_row, row in zip(_case_rows(synth_folder), by_source[PMC_CASE_REPORT], strict=True):
        assert row["ref"] == parquet_row["PMC_id"]
        assert parquet_row["answer"].removeprefix("A: ") == row["answer_en"]
        figure_ids = ast.literal_eval(parquet_row["img_ref"])
        assert row["images"] == [f"{parquet_row['PMC_id']}_{figure_id}.jpg" for figure_id in figure_ids]
        if len(figure_ids) > 1:
            assert row["question_type"] != "side", "side-by-side figures make 'which side' ambiguous"
        # the alignment record shows the figure text; the instruction record asks the question
        assert row["record_ids"] == [
            f"pmc_case_report-{row['index']:09d}-{stage}" for stage in (ALIGNMENT, INSTRUCTION)
        ]
        assert row["question_record_id"] == row["record_ids"][1]
    assert all(row["question_record_id"] is None for row in by_source[PMC_OA])


def test_real_dicom_pictures_become_pmc_oa_figures_with_their_modality(tmp_path):
    pytest.importorskip("pydicom.data")
    from qilin_med_vl.data.synth.real import REAL_DICOM_FILES, available_real_pictures

    if not available_real_pictures():
        pytest.skip("pydicom-data is not installed")
    summary = _synthesize(tmp_path / "world", real=True, counts=Counts(captions=2, cases=0, vqa=0))
    real_items = [item for item in summary.world.captions if item.figure.real is not None]
    assert len(real_items) == len(available_real_pictures()) <= len(REAL_DICOM_FILES)
    chest = next(item for item in real_items if item.figure.real.file_name.startswith("RG1"))
    assert chest.caption.en.startswith("Chest radiograph") and chest.caption.zh.startswith("胸部X光片")
    with Image.open(tmp_path / "world" / write.PMC_OA_IMAGES / chest.figure.name) as image:
        assert max(image.size) == 512 and image.mode == "RGB"


def test_cli_writes_the_world_and_refuses_to_mix_it_with_an_old_one(tmp_path, capsys):
    out = tmp_path / "world"
    arguments = ["data", "synth", "--out", str(out), "--captions", "2", "--cases", "2", "--vqa", "3"]
    assert main([*arguments, "--size", "64", "--no-real", "--no-progress"]) == 0
    assert "2 PMC-OA captions, 2 case reports, 3 PMC-VQA questions" in capsys.readouterr().out
    assert len(_vqa_rows(out)) == 3
    assert main([*arguments, "--no-real", "--no-progress"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*arguments, "--no-real", "--no-progress", "--overwrite", "--vqa", "1"]) == 0
    assert len(_vqa_rows(out)) == 1 and len(list((out / write.PMC_VQA_IMAGES).iterdir())) == 1
    assert main([*arguments, "--size", "16", "--overwrite"]) == 1


def test_several_questions_per_figure_ask_what_one_finding_answers_and_stay_on_one_side_of_the_split(
    tmp_path, monkeypatch, capsys
):
    """`--questions-per-figure 5`: every figure is asked everything its finding lets it answer, in rows that
    name the figure, which is written once; the build keeps every row and holds out whole figures."""
    out = tmp_path / "world"
    arguments = ["data", "synth", "--out", str(out), "--captions", "1", "--cases", "1", "--vqa", "80"]
    assert (
        main([*arguments, "--questions-per-figure", "5", "--size", "64", "--no-real", "--no-progress"]) == 0
    )
    assert "PMC-VQA questions about 80 figures" in capsys.readouterr().out
    every_row = [
        json.loads(line) for line in (out / write.GROUND_TRUTH).read_text(encoding="utf-8").splitlines()
    ]
    truth = [row for row in every_row if row["source"] == PMC_VQA]
    by_figure: dict[str, list[dict]] = {}
    for row in truth:
        by_figure.setdefault(row["ref"], []).append(row)
    assert len(by_figure) == 80 == len(list((out / write.PMC_VQA_IMAGES).iterdir()))
    assert [row["Figure_path"] for row in _vqa_rows(out)] == [row["ref"] for row in truth]
    with_lesion = 0
    for rows in by_figure.values():
        findings = {json.dumps(row["findings"]) for row in rows}
        assert len(findings) == 1, "the questions about one figure describe one finding"
        present = rows[0]["findings"]["present"]
        with_lesion += present
        expected = set(QUESTION_TYPES) if present else {"modality", "presence"}
        assert sorted(row["question_type"] for row in rows) == sorted(expected)
        presence = next(row for row in rows if row["question_type"] == "presence")
        assert presence["answer_en"] == ("Yes" if present else "No")
    assert 25 <= with_lesion <= 55, "about half of the figures have a lesion, so presence stays balanced"

    with pytest.raises(SystemExit):
        main([*arguments, "--questions-per-figure", "many"])
    assert main([*arguments, "--questions-per-figure", "0", "--overwrite"]) == 1
    assert "--questions-per-figure 0" in capsys.readouterr().err

    monkeypatch.chdir(out)
    assert main(["data", "tm", "import", write.TRANSLATION_MEMORY_IMPORT, "--out", write.BUILD_OUT]) == 0
    assert main(["data", "build", "--config", write.BUILD_CONFIG, "--no-progress"]) == 0
    side_of_figure: dict[str, set[str]] = {}
    kept = 0
    for name in SPLITS:
        for path in built_files(out / write.BUILD_OUT, name).files:
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                kept += 1
                if record["meta"]["source"] == PMC_VQA:
                    side_of_figure.setdefault(record["image"], set()).add(name)
    assert kept == sum(len(row["record_ids"]) for row in every_row), "every question is kept"
    assert len(side_of_figure) == 80 and all(len(sides) == 1 for sides in side_of_figure.values())
    assert {name for sides in side_of_figure.values() for name in sides} == {INSTRUCTION, TEST}


def test_cli_defaults_are_the_generator_defaults():
    assert (synth_cli.DEFAULT_CAPTIONS, synth_cli.DEFAULT_CASES, synth_cli.DEFAULT_VQA) == (
        generate.DEFAULT_COUNTS.captions,
        generate.DEFAULT_COUNTS.cases,
        generate.DEFAULT_COUNTS.vqa,
    )
    assert synth_cli.DEFAULT_SIZE == generate.DEFAULT_SIZE


def test_import_and_build_turn_the_world_into_a_chinese_dataset_without_a_service(
    tmp_path, monkeypatch, capsys
):
    """synth -> `qilin data tm import` -> `qilin data build --config build.yaml`, run from the synth folder."""
    out = tmp_path / "world"
    _synthesize(out)
    monkeypatch.chdir(out)
    assert main(["data", "tm", "import", write.TRANSLATION_MEMORY_IMPORT, "--out", write.BUILD_OUT]) == 0
    assert main(["data", "build", "--config", write.BUILD_CONFIG, "--no-progress"]) == 0
    truth = {}
    for line in (out / write.GROUND_TRUTH).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for record_id in row["record_ids"]:
            truth[record_id] = row
    records = {
        name: [
            json.loads(line)
            for path in built_files(out / write.BUILD_OUT, name).files
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
        for name in SPLITS
    }
    every_record = [record for name in SPLITS for record in records[name]]
    assert sorted(record["id"] for record in every_record) == sorted(truth), "every row is kept, none dropped"
    for record in every_record:
        expected = truth[record["id"]]
        answer = record["conversations"][1]["value"]
        if record["meta"]["stage"] == INSTRUCTION or record["meta"]["source"] == PMC_OA:
            assert answer == expected["answer_zh"]
        else:  # case-report alignment: the Chinese inline, then the Chinese context
            inline, context = answer.split("\n")
            assert inline.startswith("图") and context.startswith("患者，")
        # the record named as asking the row's question asks it; the row's other records do not
        asks = (
            expected["question_zh"] is not None
            and expected["question_zh"] in record["conversations"][0]["value"]
        )
        assert asks == (record["id"] == expected["question_record_id"])
    case_composites = [r for r in records[INSTRUCTION] + records[TEST] if len(r["meta"]["source_images"]) > 1]
    assert all(record["image"].startswith("pmc_case_report/composite/") for record in case_composites)
    # the held-out split takes whole articles

    def articles(split_names):
        return {
            split.article_id(SourceRow(record["meta"]["source"], 0, ref=record["meta"]["ref"]))
            for name in split_names
            for record in records[name]
        }

    held_out = articles([TEST])
    assert held_out and not held_out & articles(STAGES)


def _slots(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_the_english_and_chinese_phrase_books_have_the_same_entries_and_slots():
    for setting in dataclasses.fields(PhraseBook):
        english, chinese = getattr(ENGLISH, setting.name), getattr(CHINESE, setting.name)
        if isinstance(english, dict):
            assert english.keys() == chinese.keys(), setting.name
            pairs = [(english[key], chinese[key]) for key in english]
        elif isinstance(english, tuple):
            assert len(english) == len(chinese), setting.name
            pairs = list(zip(english, chinese, strict=True))
        else:
            pairs = [(english, chinese)]
        for first, second in pairs:
            if isinstance(first, tuple):  # question variants
                assert len(first) == len(second), setting.name
                assert [_slots(text) for text in first] == [_slots(text) for text in second], setting.name
            elif isinstance(first, str):
                assert _slots(first) == _slots(second), (setting.name, first)
