"""OmniMedVQA open-access and ChiMed-VL (a built folder's test split) readers, and the prompts."""

import pytest

from qilin_med_vl.errors import DataError
from qilin_med_vl.eval.items import CAPTION, CHOICE, CLOSED, OPEN, TaskOptions
from qilin_med_vl.eval.prompts import prompts_version
from qilin_med_vl.eval.tasks import TASKS

from .benchmark_files import CHIMED_TEST, chimed_record, omni_record, write_chimed_build, write_omnimedvqa


def test_omnimedvqa_reads_every_open_access_file(tmp_path):
    files = {
        "ACRIMA.json": [omni_record("ACRIMA_0", ["Glaucoma", "Normal"], "Normal")],
        "Chest CT Scan.json": [
            omni_record("CT_0", ["Adenocarcinoma", "Normal", "Squamous cell carcinoma"], "adenocarcinoma"),
            {**omni_record("CT_1", ["A", "B", "C", "D"], "D"), "modality": "CT"},
        ],
    }
    for record in files["Chest CT Scan.json"][1:]:
        del record["modality_type"]  # one released file spells the field `modality`
    task = TASKS["omnimedvqa"](write_omnimedvqa(tmp_path, files), TaskOptions())
    items = list(task.items())
    assert [item.id for item in items] == ["ACRIMA/ACRIMA_0", "Chest CT Scan/CT_0", "Chest CT Scan/CT_1"]
    assert [item.reference for item in items] == ["B", "A", "D"]
    assert all(item.answer_type == CHOICE for item in items)
    assert items[0].choices == {"A": "Glaucoma", "B": "Normal"}  # two options present
    assert [item.modality for item in items] == ["Fundus Photography", "Fundus Photography", "CT"]
    assert items[0].image == tmp_path / "Images" / "ACRIMA" / "Im001.png"
    assert items[0].image.is_file()
    prompt = task.prompt(items[0])
    assert "A. Glaucoma\nB. Normal" in prompt and items[0].question in prompt
    assert task.score(items[0], "Normal").details["matched_by"] == "text"


def test_omnimedvqa_answer_must_be_an_option(tmp_path):
    write_omnimedvqa(tmp_path, {"x.json": [omni_record("x0", ["Glaucoma", "Normal"], "Cataract")]})
    with pytest.raises(DataError, match=r"x\.json record 1: gt_answer 'Cataract' is none of the options"):
        TASKS["omnimedvqa"](tmp_path, TaskOptions())


def test_omnimedvqa_needs_the_qa_folder(tmp_path):
    with pytest.raises(DataError, match="QA_information"):
        TASKS["omnimedvqa"](tmp_path, TaskOptions())


def test_chimed_vl_items_from_the_test_split(tmp_path):
    task = TASKS["chimed-vl"](write_chimed_build(tmp_path), TaskOptions())
    items = {item.id: item for item in task.items()}
    assert [items[key].answer_type for key in ("q1", "q2", "c1")] == [CLOSED, OPEN, CAPTION]
    closed = items["q1"]
    assert closed.question == "图中是否可见肺部结节？"  # <image> removed
    assert closed.language == "zh"
    assert closed.image == tmp_path / "images" / "pmc" / "PMC1_F1.jpg"
    assert closed.extra == {"source": "pmc_vqa", "ref": "PMC1", "stage": "instruction"}
    assert task.score(closed, "是的。").score == 1.0
    assert task.score(closed, "没有看到结节").score == 0.0
    assert task.prompt(closed) == "图中是否可见肺部结节？"
    caption = task.score(items["c1"], "胸部CT显示右肺上叶结节。")
    assert (caption.score, caption.details["bleu4"]) == (1.0, pytest.approx(1.0))


def test_chimed_vl_needs_a_test_split_and_valid_records(tmp_path):
    write_chimed_build(tmp_path / "train_only", split="instruction")
    with pytest.raises(DataError, match="has no 'test' files"):
        TASKS["chimed-vl"](tmp_path / "train_only", TaskOptions())
    broken = chimed_record("b1", "q", "a", "instruction")
    broken["conversations"] = broken["conversations"][:1]
    write_chimed_build(tmp_path / "broken", [CHIMED_TEST[0], broken])
    with pytest.raises(DataError, match="record 'b1'"):
        TASKS["chimed-vl"](tmp_path / "broken", TaskOptions())
    no_stage = chimed_record("s1", "q", "a", "instruction")
    del no_stage["meta"]["stage"]
    write_chimed_build(tmp_path / "no_stage", [no_stage])
    with pytest.raises(DataError, match=r"meta\.stage None"):
        TASKS["chimed-vl"](tmp_path / "no_stage", TaskOptions())


def test_prompts_follow_language_and_answer_type(tmp_path):
    from .benchmark_files import write_slake

    task = TASKS["slake"](write_slake(tmp_path), TaskOptions())
    items = {item.id: item for item in task.items()}
    assert task.prompt(items["11934"]) == "肺是健康的吗?\n请简短回答。"
    assert (
        task.prompt(items["1"]) == "Is the lung healthy?\nAnswer the question using a single word or phrase."
    )
    assert prompts_version() == "qilin-eval-prompts/1"
