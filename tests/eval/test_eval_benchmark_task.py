"""`qilin eval --task vqa-rad` end to end: a VQA-RAD-shaped folder, the fake endpoint, hand-checked scores."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from qilin_med_vl.cli import main

from .eval_helpers import by_id, read_json

EN_SUFFIX = "\nAnswer the question using a single word or phrase."  # the shipped English template
# qid, answer_type, question, reference, the endpoint's answer, its score by hand
ROWS = [
    ("1", "CLOSED", "Is there a fracture?", "yes", "Yes, there is.", 1.0),  # polarity yes = yes
    ("2", "CLOSED", "Is the heart enlarged?", "no", "yes", 0.0),  # polarity yes != no
    ("3", "OPEN", "Which lung is affected?", "left lung", "the left lung", 1.0),  # recall 2/2
    ("4", "OPEN", "What organ is shown?", "liver", "kidney", 0.0),  # recall 0/1
]


@pytest.fixture
def vqa_rad(tmp_path):
    folder = tmp_path / "vqa-rad"
    (folder / "images").mkdir(parents=True)
    records = []
    for qid, answer_type, question, reference, _, _ in ROWS:
        Image.new("RGB", (16, 16), (int(qid) * 40, 0, 0)).save(folder / "images" / f"synpic{qid}.jpg")
        records.append(
            {"qid": qid, "image_name": f"synpic{qid}.jpg", "question": question, "answer": reference,
             "answer_type": answer_type, "question_type": "PRES"}
        )  # fmt: skip
    (folder / "testset.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


def test_vqa_rad_through_the_endpoint(fake_server, vqa_rad, tmp_path, capsys):
    fake_server.answers = {question + EN_SUFFIX: answer for _, _, question, _, answer, _ in ROWS}
    out = tmp_path / "run"
    args = ["eval", "--task", "vqa-rad", "--data", str(vqa_rad), "--endpoint", fake_server.base_url]
    assert main([*args, "--model", "fake-vqa", "--out", str(out)]) == 0
    assert {key: record["score"] for key, record in by_id(out / "predictions.jsonl").items()} == {
        qid: score for qid, *_, score in ROWS
    }
    metrics = read_json(out / "metrics.json")
    assert metrics["overall"]["mean"] == pytest.approx(0.5)
    assert metrics["by_answer_type"]["closed"]["mean"] == pytest.approx(0.5)
    assert metrics["by_answer_type"]["open"]["mean"] == pytest.approx(0.5)
    assert metrics["by_content_type"]["PRES"]["count"] == 4
    # both closed references are yes/no words, so both are scored by polarity; both answers say yes
    assert metrics["by_answer_type"]["closed"]["detail_counts"] == {
        "prediction_polarity": {"yes": 2},
        "reference_polarity": {"no": 1, "yes": 1},
        "rule": {"polarity": 2},
    }
    assert metrics["metric_version"]["metrics"].startswith("qilin-eval-metrics/")
    assert metrics["prompt"]["version"].startswith("qilin-eval-prompts/")
    assert metrics["prompt"]["text"]["en"]["open"] == "{question}" + EN_SUFFIX
    assert all(request.image_is_png for request in fake_server.requests)  # JPEG files sent as PNG
