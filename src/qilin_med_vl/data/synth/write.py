"""Write a `World` as the public source files `qilin data build` reads, plus its answers and references.

Layout of the output folder (paths relative to it):

    pmc_oa/pmc_oa.jsonl                          {"image", "caption", "pmcid", "url_name"} per line
    pmc_oa/images/PMC<id>_Fig<n>.jpg
    pmc_case_report/data/train-0000<i>-of-00002.parquet   PMC_id, context, inline, question, answer, img_ref
    pmc_case_report/figures/PMC<id>_<figure id>.jpg
    pmc_vqa/train.csv                            Figure_path, Question, Answer, Choice A-D, Answer_label
    pmc_vqa/figures/PMC<id>_F<n>.png
    translation_memory.jsonl                     {"source": English, "target": Chinese} per text
    ground_truth.jsonl                           what each row shows and the right answer, in both languages
    build.yaml                                   a `qilin data build` config for these files

Every file is written in a fixed order with fixed settings (no timestamps), so the same world gives
byte-identical files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from qilin_med_vl.data.records import (
    PMC_CASE_REPORT,
    PMC_OA,
    PMC_VQA,
    SOURCE_STAGES,
    Candidate,
    SourceRow,
)
from qilin_med_vl.data.sources import CASE_REPORT_FIELDS, CHOICE_LETTERS, VQA_REQUIRED_COLUMNS
from qilin_med_vl.data.synth.english import ANSWER_PREFIX, QUESTION_PREFIX
from qilin_med_vl.data.synth.findings import CAPTION
from qilin_med_vl.data.synth.real import load_real_picture
from qilin_med_vl.data.synth.render import render
from qilin_med_vl.data.synth.texts import Bilingual
from qilin_med_vl.data.synth.world import CaseRow, Figure, World
from qilin_med_vl.llava_format import INSTRUCTION

JPEG_QUALITY = 95
CASE_REPORT_SHARDS = 2
SOURCE_FOLDERS = {PMC_OA: "pmc_oa", PMC_CASE_REPORT: "pmc_case_report", PMC_VQA: "pmc_vqa"}
PMC_OA_RECORDS = f"{SOURCE_FOLDERS[PMC_OA]}/pmc_oa.jsonl"
PMC_OA_IMAGES = f"{SOURCE_FOLDERS[PMC_OA]}/images"
CASE_REPORT_IMAGES = f"{SOURCE_FOLDERS[PMC_CASE_REPORT]}/figures"
PMC_VQA_RECORDS = f"{SOURCE_FOLDERS[PMC_VQA]}/train.csv"
PMC_VQA_IMAGES = f"{SOURCE_FOLDERS[PMC_VQA]}/figures"
TRANSLATION_MEMORY_IMPORT = "translation_memory.jsonl"
BUILD_OUT = "built"  # where build.yaml writes the dataset, and where its translation memory lives
GROUND_TRUTH = "ground_truth.jsonl"
BUILD_CONFIG = "build.yaml"
TEST_FRACTION = 0.1  # share of articles build.yaml holds out as the test split, for scoring on unseen figures
IMAGE_FOLDERS = {PMC_OA: PMC_OA_IMAGES, PMC_CASE_REPORT: CASE_REPORT_IMAGES, PMC_VQA: PMC_VQA_IMAGES}
VQA_COLUMNS = (*VQA_REQUIRED_COLUMNS, "Answer_label")


def case_report_shard_paths() -> list[str]:
    return [
        f"{SOURCE_FOLDERS[PMC_CASE_REPORT]}/data/train-{index:05d}-of-{CASE_REPORT_SHARDS:05d}.parquet"
        for index in range(CASE_REPORT_SHARDS)
    ]


def case_question_text(case: CaseRow) -> str:
    return (QUESTION_PREFIX if case.question_prefixed else "") + case.question.en


def case_answer_text(case: CaseRow) -> str:
    return (ANSWER_PREFIX if case.answer_prefixed else "") + case.answer.en


def _record_ids(source: str, index: int) -> list[str]:
    """The ids `qilin data build` gives this row's records, one per stage the source feeds."""
    row = SourceRow(source=source, index=index)
    return [Candidate(row, stage).record_id for stage in SOURCE_STAGES[source]]


def _question_record_id(source: str, index: int, question) -> str | None:
    """The id of the record that asks the row's question: its instruction record (a case report's
    alignment record holds its figure text under a describe-the-image prompt). None for captions."""
    if question is None:
        return None
    return Candidate(SourceRow(source=source, index=index), INSTRUCTION).record_id


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_figure(out: Path, source: str, figure: Figure, size: int) -> None:
    if figure.real is not None:
        image = load_real_picture(figure.real)
    else:
        image = render(figure.modality, figure.finding, size, figure.seed)
    path = out / IMAGE_FOLDERS[source] / figure.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        image.save(path, format="PNG")
    else:
        image.save(path, format="JPEG", quality=JPEG_QUALITY)


def write_pmc_oa(out: Path, world: World) -> None:
    _write_jsonl(
        out / PMC_OA_RECORDS,
        (
            {
                "image": item.figure.name,
                "caption": item.caption.en,
                "pmcid": item.pmcid,
                "url_name": item.url_name,
            }
            for item in world.captions
        ),
    )


def write_case_reports(out: Path, world: World) -> None:
    """Two parquet shards, rows in world order (the first half in shard 0), every column a string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.string()) for name in CASE_REPORT_FIELDS])
    rows = [
        {
            "PMC_id": case.pmc_id,
            "context": case.context.en,
            "inline": case.inline.en,
            "question": case_question_text(case),
            "answer": case_answer_text(case),
            "img_ref": repr(list(case.figure_ids)),  # a Python list literal, as published
        }
        for case in world.cases
    ]
    per_shard = -(-len(rows) // CASE_REPORT_SHARDS)
    for shard, relative in enumerate(case_report_shard_paths()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        part = rows[shard * per_shard : (shard + 1) * per_shard]
        pq.write_table(pa.Table.from_pylist(part, schema=schema), path)


def _choice_cell(letter: str, text: str) -> str:
    return f" {letter}:{text}"  # PMC-VQA writes choices as " A:Pneumothorax"


def write_pmc_vqa(out: Path, world: World) -> None:
    path = out / PMC_VQA_RECORDS
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(VQA_COLUMNS)
        for row in world.vqa:
            choices = [
                _choice_cell(letter, choice.en)
                for letter, choice in zip(CHOICE_LETTERS, row.choices, strict=True)
            ]
            writer.writerow([row.figure.name, row.question.en, row.answer.en, *choices, row.answer_label])


def translation_pairs(world: World) -> list[tuple[str, str]]:
    """(English, Chinese) for every text the builder translates, sorted by English, each once.

    Case-report questions and answers are listed without their Q: / A: prefix: the reader strips it
    before the builder translates.
    """
    pairs: dict[str, str] = {}

    def add(english: str, chinese: str) -> None:
        known = pairs.setdefault(english, chinese)
        if known != chinese:
            raise ValueError(f"the phrase books give {english!r} two translations: {known!r} and {chinese!r}")

    def add_text(text: Bilingual) -> None:
        add(text.en, text.zh)

    for item in world.captions:
        add_text(item.caption)
    for case in world.cases:
        for text in (case.context, case.inline, case.question, case.answer):
            add_text(text)
    for row in world.vqa:
        for text in (row.question, row.answer, *row.choices):
            add_text(text)
    return sorted(pairs.items())


def write_translation_memory(out: Path, world: World) -> int:
    pairs = translation_pairs(world)
    _write_jsonl(out / TRANSLATION_MEMORY_IMPORT, ({"source": en, "target": zh} for en, zh in pairs))
    return len(pairs)


def _truth(source: str, index: int, ref: str, figures, question_type: str, question, answer) -> dict:
    first = figures[0]
    return {
        "source": source,
        "index": index,
        "record_ids": _record_ids(source, index),
        "question_record_id": _question_record_id(source, index, question),
        "ref": ref,
        "images": [figure.name for figure in figures],
        "question_type": question_type,
        "question_en": question.en if question else None,
        "question_zh": question.zh if question else None,
        "answer_en": answer.en,
        "answer_zh": answer.zh,
        "modality": first.modality,
        "findings": None if first.real is not None else first.finding.to_json(),
        "real": first.real is not None,
    }


def ground_truth_rows(world: World) -> list[dict]:
    """One row per PMC-OA caption, case-report case and PMC-VQA question (see docs/synth.md)."""
    rows = [
        _truth(PMC_OA, item.index, item.figure.name, [item.figure], CAPTION, None, item.caption)
        for item in world.captions
    ]
    rows += [
        _truth(
            PMC_CASE_REPORT,
            case.index,
            case.pmc_id,
            case.figures,
            case.question_type,
            case.question,
            case.answer,
        )
        for case in world.cases
    ]
    rows += [
        _truth(PMC_VQA, row.index, row.figure.name, [row.figure], row.question_type, row.question, row.answer)
        for row in world.vqa
    ]
    return rows


def write_ground_truth(out: Path, world: World) -> None:
    _write_jsonl(out / GROUND_TRUTH, ground_truth_rows(world))


def build_config_text(seed: int) -> str:
    """The `qilin data build` config of a synthetic folder; every path is relative to that folder."""
    shards = "\n".join(f"      - {path}" for path in case_report_shard_paths())
    return f"""\
# `qilin data build` config for the synthetic world written by `qilin data synth` (seed {seed}).
# Paths are relative to this folder: run the commands from here. The Chinese texts come from the
# translation memory the first command fills from translation_memory.jsonl (in {BUILD_OUT}/, where
# the build looks for it); nothing is sent anywhere.
#
#   qilin data tm import {TRANSLATION_MEMORY_IMPORT} --out {BUILD_OUT}
#   qilin data build --config {BUILD_CONFIG}
#
# For an English-only build, add --translator none.
out: {BUILD_OUT}
seed: {seed}
sources:
  {PMC_OA}:
    records: {PMC_OA_RECORDS}
    images: {PMC_OA_IMAGES}
  {PMC_CASE_REPORT}:
    records:
{shards}
    images: {CASE_REPORT_IMAGES}
  {PMC_VQA}:
    records: [{PMC_VQA_RECORDS}]
    images: {PMC_VQA_IMAGES}
split:
  test: {TEST_FRACTION}  # articles held out (all of an article's figures on one side) for evaluation
templates:
  vqa_format: open
  case_report_alignment_fields: [inline, context]
translator:
  backend: memory  # the imported translations alone; a text the memory lacks would be dropped
"""


def write_build_config(out: Path, seed: int) -> None:
    (out / BUILD_CONFIG).write_text(build_config_text(seed), encoding="utf-8", newline="\n")
