"""SLAKE and PMC-VQA readers on files written in their public layouts."""

import pytest

from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.eval.items import CHOICE, CLOSED, OPEN, TaskOptions
from qilin_med_vl.eval.tasks import TASKS

from .benchmark_files import (
    PMC_V1_HEADER,
    PMC_V1_ROWS,
    PMC_V2_HEADER,
    PMC_V2_ROWS,
    SLAKE_TEST,
    slake_record,
    write_csv,
    write_pmc_vqa,
    write_slake,
)


def test_registry_names_every_benchmark():
    assert set(TASKS) == {"pmc-vqa", "slake", "vqa-rad", "pathvqa", "omnimedvqa", "chimed-vl"}
    assert all(factory.name == name for name, factory in TASKS.items())


def test_slake_items_keep_the_record_fields(tmp_path):
    task = TASKS["slake"](write_slake(tmp_path), TaskOptions())
    items = {item.id: item for item in task.items()}
    assert len(items) == len(SLAKE_TEST)
    lung = items["11934"]
    assert (lung.question, lung.reference, lung.language, lung.answer_type) == (
        "肺是健康的吗?",
        "不是",
        "zh",
        CLOSED,
    )
    assert (lung.modality, lung.content_type) == ("CT", "Abnormality")
    assert lung.image == tmp_path / "imgs" / "xmlab104" / "source.jpg"
    assert lung.image.is_file()
    assert items["11937"].answer_type == OPEN


@pytest.mark.parametrize(("lang", "count"), [("zh", 4), ("en", 3), ("all", 7)])
def test_slake_language_filter(tmp_path, lang, count):
    task = TASKS["slake"](write_slake(tmp_path), TaskOptions(lang=lang))
    items = list(task.items())
    assert len(items) == count
    assert lang == "all" or {item.language for item in items} == {lang}


def test_slake_scores_chinese_closed_answers(tmp_path):
    task = TASKS["slake"](write_slake(tmp_path), TaskOptions(lang="zh"))
    items = {item.id: item for item in task.items()}
    assert task.score(items["11934"], "不是，存在异常").score == 1.0
    assert task.score(items["11934"], "是的").score == 0.0
    assert task.score(items["11935"], "包含").score == 0.0  # the reference is 不包含
    assert task.score(items["11935"], "不包含").score == 1.0
    assert task.score(items["11936"], "横斷面").score == 1.0  # traditional characters
    assert task.score(items["11937"], "肝").score == 1.0  # synonym 肝 = 肝脏


def test_slake_ids_are_stable_across_reads(tmp_path):
    first = [item.id for item in TASKS["slake"](write_slake(tmp_path), TaskOptions()).items()]
    second = [item.id for item in TASKS["slake"](tmp_path, TaskOptions()).items()]
    assert first == second == [str(record["qid"]) for record in SLAKE_TEST]


def test_slake_missing_field_names_the_file_and_record(tmp_path):
    broken = slake_record(5, "q", "a", "en", "OPEN")
    del broken["q_lang"]
    write_slake(tmp_path, [SLAKE_TEST[0], broken])
    with pytest.raises(DataError, match=r"test\.json record 2: missing field\(s\) q_lang"):
        TASKS["slake"](tmp_path, TaskOptions())


def test_slake_refuses_an_unknown_language_option(tmp_path):
    with pytest.raises(QilinError, match="--lang"):
        TASKS["slake"](write_slake(tmp_path), TaskOptions(lang="fr"))


def test_pmc_vqa_v1_choice_mode_keeps_answer_text_as_published(tmp_path):
    write_pmc_vqa(tmp_path, "test_clean.csv", PMC_V1_HEADER, PMC_V1_ROWS)
    items = list(TASKS["pmc-vqa"](tmp_path, TaskOptions()).items())
    coli = items[0]
    assert coli.answer_type == CHOICE
    assert coli.reference == "B"
    assert coli.choices == {"A": "S. aureus", "B": "E. coli", "C": "Candida", "D": "HIV"}
    assert coli.extra["answer_column"] == "E. coli"  # never split into letter "E" and "coli"
    assert coli.image == tmp_path / "images" / "PMC1_F1.jpg"
    assert len({item.id for item in items}) == 3  # same figure, different questions: different ids


def test_pmc_vqa_answers_given_as_letters_phrases_or_option_text(tmp_path):
    write_pmc_vqa(tmp_path, "test.csv", PMC_V1_HEADER, PMC_V1_ROWS)
    task = TASKS["pmc-vqa"](tmp_path, TaskOptions(mode="choice"))
    coli = next(task.items())
    for answer, matched_by in [
        ("B", "letter"),
        ("答案是B", "letter"),
        ("E. coli", "text"),
        ("e coli bacteria", "text"),
    ]:
        result = task.score(coli, answer)
        assert (result.score, result.details["matched_by"]) == (1.0, matched_by), answer
    assert task.score(coli, "A").score == 0.0


def test_pmc_vqa_open_mode_asks_without_options(tmp_path):
    write_pmc_vqa(tmp_path, "test_clean.csv", PMC_V1_HEADER, PMC_V1_ROWS)
    task = TASKS["pmc-vqa"](tmp_path, TaskOptions(mode="open"))
    coli = next(task.items())
    assert (coli.answer_type, coli.reference, coli.choices) == (OPEN, "E. coli", {})
    assert "S. aureus" not in task.prompt(coli)
    assert task.score(coli, "E. coli").score == 1.0


def test_pmc_vqa_early_copies_spell_answer_anwser(tmp_path):
    header = [name.replace("Answer", "Anwser") for name in PMC_V1_HEADER]
    write_pmc_vqa(tmp_path, "test.csv", header, PMC_V1_ROWS)
    items = list(TASKS["pmc-vqa"](tmp_path, TaskOptions()).items())
    assert [item.reference for item in items] == ["B", "C", "A"]


def test_pmc_vqa_without_label_column_finds_the_letter_from_the_answer_text(tmp_path):
    write_pmc_vqa(tmp_path, "test.csv", PMC_V1_HEADER[:-1], [row[:-1] for row in PMC_V1_ROWS])
    assert [item.reference for item in TASKS["pmc-vqa"](tmp_path, TaskOptions()).items()] == ["B", "C", "A"]


def test_pmc_vqa_v2_answer_is_the_letter_and_images_are_in_figures(tmp_path):
    write_pmc_vqa(tmp_path, "test_2.csv", PMC_V2_HEADER, PMC_V2_ROWS)
    items = list(TASKS["pmc-vqa"](tmp_path, TaskOptions()).items())
    assert [item.id for item in items] == ["17", "18"]
    assert [item.reference for item in items] == ["A", "B"]
    assert items[0].image == tmp_path / "figures" / "PMC9_F2.jpg"
    assert items[0].extra["caption"] == "Axial CT of the chest."


def test_pmc_vqa_missing_columns_and_bad_labels_are_data_errors(tmp_path):
    write_pmc_vqa(tmp_path, "test.csv", ["Figure_path", "Question"], [["a.jpg", "q"]])
    with pytest.raises(DataError, match=r"test\.csv: missing column\(s\) Choice A"):
        TASKS["pmc-vqa"](tmp_path, TaskOptions())
    bad = [PMC_V1_ROWS[0][:-1] + ["E"]]
    write_pmc_vqa(tmp_path, "test.csv", PMC_V1_HEADER, bad)
    with pytest.raises(DataError, match=r"test\.csv:2: the correct option 'E'"):
        TASKS["pmc-vqa"](tmp_path, TaskOptions())
    with pytest.raises(QilinError, match="--mode"):
        TASKS["pmc-vqa"](tmp_path, TaskOptions(mode="caption"))


def test_missing_images_are_reported_before_any_question(tmp_path):
    write_csv(tmp_path / "test.csv", PMC_V1_HEADER, PMC_V1_ROWS)  # the figures were never unpacked
    with pytest.raises(DataError, match=r"none of the 3 images of pmc-vqa exists .*images/PMC1_F1\.jpg"):
        TASKS["pmc-vqa"](tmp_path, TaskOptions())
