"""`qilin eval` against an OpenAI-compatible endpoint (a fake one on 127.0.0.1) with scripted answers."""

from __future__ import annotations

import pytest

from qilin_med_vl.cli import main

from .eval_helpers import by_id, endpoint_args, read_json
from .toy_task import prompt_of

# item -> the scripted answer; the toy task scores 1 for a case-insensitive exact match
ANSWERS = {
    "Is there a fracture?": "yes",  # q0 right
    "Which organ is shown?": "Lung",  # q1 right
    "是否有积液?": "否",  # q2 wrong
    "显示的是哪个器官?": "肝脏",  # q3 right
    "Is the heart enlarged?": "no",  # q4 right
    "What is abnormal?": "mass",  # q5 never asked successfully: HTTP 400
    "病灶在哪一侧?": "左侧",  # q6 right
    "Is this an MRI?": "no",  # q7 wrong
}


@pytest.fixture
def scripted(fake_server):
    fake_server.answers = {prompt_of(question): answer for question, answer in ANSWERS.items()}
    fake_server.failures = {
        prompt_of("Which organ is shown?"): [429, 500],  # retried, then answered
        prompt_of("What is abnormal?"): [400],  # refused for good: recorded with an empty answer
    }
    return fake_server


def test_scores_per_item_and_group_match_hand_computed_values(
    scripted, toy_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("QILIN_TEST_KEY", "secret-key")
    out = tmp_path / "run"
    args = endpoint_args(
        toy_data, out, scripted.base_url, "--api-key-env", "QILIN_TEST_KEY", "--batch-size", "3"
    )
    assert main(args) == 0
    assert "toy: 0.6250" in capsys.readouterr().out

    records = by_id(out / "predictions.jsonl")
    assert {key: record["score"] for key, record in records.items()} == {
        "q0": 1.0, "q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 1.0, "q5": 0.0, "q6": 1.0, "q7": 0.0,
    }  # fmt: skip
    assert records["q1"]["prediction"] == "Lung"
    assert records["q5"]["prediction"] == "" and "HTTP 400" in records["q5"]["error"]
    assert records["q2"]["language"] == "zh" and records["q2"]["modality"] == "CT"
    assert set(records["q0"]) >= {
        "id", "language", "answer_type", "modality", "content_type", "question", "reference",
        "prediction", "score", "details", "extra",
    }  # fmt: skip
    assert records["q0"]["extra"] == {"source": "toy"}

    metrics = read_json(out / "metrics.json")
    assert metrics["overall"]["count"] == 8
    assert metrics["overall"]["mean"] == pytest.approx(5 / 8)
    assert metrics["by_language"]["en"]["mean"] == pytest.approx(3 / 5)
    assert metrics["by_language"]["zh"]["mean"] == pytest.approx(2 / 3)
    assert metrics["by_answer_type"]["closed"]["mean"] == pytest.approx(2 / 4)
    assert metrics["by_answer_type"]["open"]["mean"] == pytest.approx(3 / 4)
    assert metrics["by_modality"]["X-Ray"]["ci95"] == [1.0, 1.0]  # every X-ray item right: no spread
    assert metrics["by_modality"]["CT"]["mean"] == pytest.approx(2 / 4)
    assert metrics["by_content_type"] == {}  # the toy items have none
    low, high = metrics["overall"]["ci95"]
    assert 0 <= low < 5 / 8 < high <= 1
    # details: exact match, and the answer length (3+4+1+2+2+0+2+2 characters over 8 items)
    assert metrics["overall"]["details"] == {
        "characters": pytest.approx(16 / 8),
        "exact": pytest.approx(5 / 8),
    }
    assert metrics["refused"] == 1 and metrics["complete"] is True
    assert metrics["model"] == {"kind": "endpoint", "endpoint": scripted.base_url, "model": "fake-vqa"}
    assert metrics["interval"]["resamples"] == 2000 and metrics["interval"]["seed"] == 0

    # each item asked once, plus the two retries of q1 and none of the refused q5
    assert sum(scripted.requests_per_key().values()) == 8 + 2
    assert all(request.authorization == "Bearer secret-key" for request in scripted.requests)
    assert all(request.image_is_png and request.temperature == 0 for request in scripted.requests)
    assert all(request.model == "fake-vqa" for request in scripted.requests)


def test_run_folder_traces_the_run(scripted, toy_data, tmp_path):
    out = tmp_path / "run"
    assert main(endpoint_args(toy_data, out, scripted.base_url, "--lang", "en")) == 0
    run = read_json(out / "run.json")
    assert run["task"] == "toy"
    assert run["identity"]["options"] == {"mode": None, "lang": "en", "metric_style": "qilin"}
    assert run["data"]["items"] == 5  # the English items only
    assert run["prompt"]["text"] == prompt_of("Is there a fracture?")
    assert run["command"].startswith("qilin eval --task-factory")
    assert run["qilin_version"] and run["date"] and run["metric_version"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| all | 5 | 0.6000 [" in report and "## By modality" in report
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wrong_key_stops_the_run_with_a_clear_error(fake_server, toy_data, tmp_path, capsys):
    fake_server.failures = {prompt_of("Is there a fracture?"): [401]}
    assert main(endpoint_args(toy_data, tmp_path / "run", fake_server.base_url, "--batch-size", "1")) == 1
    error = capsys.readouterr().err
    assert "HTTP 401" in error and "--api-key-env" in error and "Traceback" not in error


def test_endpoint_giving_no_answer_after_retries_stops_and_keeps_earlier_answers(
    fake_server, toy_data, tmp_path, capsys
):
    fake_server.failures = {prompt_of("Which organ is shown?"): [503, 503, 503]}
    out = tmp_path / "run"
    args = endpoint_args(toy_data, out, fake_server.base_url, "--batch-size", "1", "--max-retries", "2")
    assert main(args) == 1
    assert "after 2 retries" in capsys.readouterr().err
    assert list(by_id(out / "predictions.jsonl")) == ["q0"]  # answered before the failure, kept
    assert main(args) == 0  # the endpoint recovered: the rerun finishes without asking q0 again
    assert fake_server.requests_per_key()[prompt_of("Is there a fracture?")] == 1
    assert len(by_id(out / "predictions.jsonl")) == 8


def test_requests_in_flight_never_exceed_the_concurrency(fake_server, toy_data, tmp_path):
    fake_server.latency_s = 0.2  # long enough for every free slot to be taken
    assert main(endpoint_args(toy_data, tmp_path / "run", fake_server.base_url, "--concurrency", "3")) == 0
    assert len(fake_server.requests) == 8
    assert fake_server.max_in_flight == 3


def test_blank_images_sends_uniform_pictures_and_is_its_own_run(fake_server, toy_data, tmp_path, capsys):
    seeing, blind = tmp_path / "seeing", tmp_path / "blind"
    assert main(endpoint_args(toy_data, seeing, fake_server.base_url)) == 0
    grey = ((128, 128, 128),)
    assert all(request.image_colours != grey for request in fake_server.requests)  # the toy pictures
    sent = len(fake_server.requests)
    assert main(endpoint_args(toy_data, blind, fake_server.base_url, "--blank-images")) == 0
    assert {request.image_colours for request in fake_server.requests[sent:]} == {grey}
    assert read_json(blind / "run.json")["identity"]["blank_images"] is True
    assert "--blank-images" in read_json(blind / "run.json")["command"]
    # a blind run never resumes into a seeing run's folder
    assert main(endpoint_args(toy_data, seeing, fake_server.base_url, "--blank-images")) == 1
    assert "blank_images" in capsys.readouterr().err
