"""VQA-RAD (official JSON, train/test split, parquet) and PathVQA (pickle, parquet) readers."""

import pickle

import pytest

from qilin_med_vl.errors import DataError
from qilin_med_vl.eval.items import CLOSED, OPEN, TaskOptions
from qilin_med_vl.eval.tasks import TASKS

from .benchmark_files import (
    PATHVQA_RECORDS,
    QA_PARQUET_ROWS,
    VQA_RAD_OFFICIAL,
    vqa_rad_record,
    write_pathvqa_pickle,
    write_qa_parquet,
    write_vqa_rad_json,
)


def test_vqa_rad_official_json_keeps_only_test_phrases(tmp_path):
    write_vqa_rad_json(tmp_path, "VQA_RAD Dataset Public.json", VQA_RAD_OFFICIAL)
    items = list(TASKS["vqa-rad"](tmp_path, TaskOptions()).items())
    assert [item.id for item in items] == ["2", "3", "4"]
    assert [item.answer_type for item in items] == [CLOSED, OPEN, OPEN]
    assert items[2].reference == "2"
    assert items[0].image == tmp_path / "images" / "synpic100.jpg"
    assert items[0].extra["phrase_type"] == "test_freeform"


def test_vqa_rad_split_testset_reads_every_record(tmp_path):
    records = [vqa_rad_record(7, "Is this a CT?", "yes", "CLOSED", "freeform"), VQA_RAD_OFFICIAL[2]]
    write_vqa_rad_json(tmp_path, "testset.json", records)
    (tmp_path / "trainset.json").write_text("[]", encoding="utf-8")
    task = TASKS["vqa-rad"](tmp_path, TaskOptions())
    items = list(task.items())
    assert [item.id for item in items] == ["7", "3"]
    assert task.score(items[0], "Yes, it is a CT scan.").score == 1.0
    assert task.score(items[1], "A mass in the right upper lobe").score == 1.0  # recall 3/3


def test_vqa_rad_parquet_writes_its_images_and_keeps_ids(tmp_path):
    data = tmp_path / "vqa_rad"
    write_qa_parquet(data / "data" / "test-00000-of-00001.parquet", QA_PARQUET_ROWS)
    cache = tmp_path / "cache"
    items = list(TASKS["vqa-rad"](data, TaskOptions(image_cache=cache)).items())
    assert [item.answer_type for item in items] == [CLOSED, CLOSED, OPEN]
    assert len({item.id for item in items}) == 3  # the same question on two images: two ids
    assert all(item.image.is_file() and item.image.is_relative_to(cache) for item in items)
    assert items[0].image.read_bytes() == QA_PARQUET_ROWS[0][0]
    again = [item.id for item in TASKS["vqa-rad"](data, TaskOptions(image_cache=cache)).items()]
    assert again == [item.id for item in items]


def test_vqa_rad_missing_fields_and_columns(tmp_path):
    record = dict(VQA_RAD_OFFICIAL[1])
    del record["image_name"]
    write_vqa_rad_json(tmp_path / "json", "testset.json", [record])
    with pytest.raises(DataError, match=r"testset\.json record 1: missing field\(s\) image_name"):
        TASKS["vqa-rad"](tmp_path / "json", TaskOptions())
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"question": ["q"], "answer": ["yes"]}), tmp_path / "pq" / "test.parquet")
    with pytest.raises(DataError, match=r"test\.parquet: missing column\(s\) image"):
        TASKS["vqa-rad"](tmp_path / "pq", TaskOptions())
    with pytest.raises(DataError, match="found none of"):
        TASKS["vqa-rad"](tmp_path / "pq" / "..", TaskOptions())


def test_pathvqa_pickle(tmp_path):
    write_pathvqa_pickle(tmp_path, PATHVQA_RECORDS)
    task = TASKS["pathvqa"](tmp_path, TaskOptions())
    items = list(task.items())
    assert [item.answer_type for item in items] == [CLOSED, OPEN]
    assert items[0].image == tmp_path / "images" / "test" / "test_0001.jpg"
    assert items[0].image.is_file()
    assert items[0].id.startswith("test_0001#") and items[0].id != items[1].id
    assert task.score(items[0], "Yes.").score == 1.0
    assert task.score(items[1], "necrosis").score == pytest.approx(0.5)  # recall: 1 of 2 words


def test_pathvqa_parquet(tmp_path):
    write_qa_parquet(tmp_path / "test.parquet", QA_PARQUET_ROWS)
    items = list(TASKS["pathvqa"](tmp_path, TaskOptions()).items())
    assert [item.reference for item in items] == ["yes", "no", "a mass"]
    assert all(item.image.is_file() for item in items)  # written beside the data by default


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pathvqa_pickle_that_names_code_is_refused(tmp_path):
    path = tmp_path / "qas" / "test" / "test_qa.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps([Exploit()]))
    with pytest.raises(DataError, match="not a pickle of plain lists and dicts"):
        TASKS["pathvqa"](tmp_path, TaskOptions())


def test_pathvqa_pickle_records_need_their_fields(tmp_path):
    write_pathvqa_pickle(tmp_path, [{"image": "test_0001", "question": "q"}])
    with pytest.raises(DataError, match=r"test_qa\.pkl record 1: missing field\(s\) answer"):
        TASKS["pathvqa"](tmp_path, TaskOptions())
