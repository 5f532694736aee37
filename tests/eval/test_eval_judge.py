"""The optional LLM judge of open answers: a fake judge on 127.0.0.1 with scripted verdicts per prompt.

The toy benchmark has four open items (q1, q3, q5, q6); the model's answers and the judge's replies are
scripted so that every verdict, the agreement with the rule-based score and Cohen's kappa can be
computed by hand.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from qilin_med_vl.cli import main
from qilin_med_vl.eval.stats import cohen_kappa

from .eval_helpers import by_id, endpoint_args, judge_key, read_json, read_jsonl
from .fake_vqa_server import FakeVQAServer
from .killed_run import kill_eval_when
from .toy_task import TOY_ITEMS, prompt_of, write_toy_benchmark

# the model's answers; the toy task scores 1 for a case-insensitive exact match
MODEL_ANSWERS = {
    "q0": "yes", "q1": "Lung", "q2": "否", "q3": "肝", "q4": "no", "q5": "a mass", "q6": "左侧", "q7": "no",
}  # fmt: skip
# the judge's replies about the open items, and the verdicts they are read as
JUDGE_REPLIES = {
    "q1": "Correct.",  # 1; rule score 1 (exact)
    "q3": "正确",  # 1; rule 0 (肝 is not 肝脏): the judge is more lenient
    "q5": "The answer is incorrect.",  # 0; rule 0
    "q6": "我不确定",  # no verdict word: null; rule 1
}
OPEN_ITEMS = sorted(JUDGE_REPLIES)


@pytest.fixture
def model_server(fake_server):
    questions = {item_id: question for item_id, question, *_ in TOY_ITEMS}
    fake_server.answers = {prompt_of(questions[key]): answer for key, answer in MODEL_ANSWERS.items()}
    return fake_server


@pytest.fixture
def judge_server():
    with FakeVQAServer(default_answer="unscripted") as server:
        server.answers = {judge_key(key, MODEL_ANSWERS[key]): reply for key, reply in JUDGE_REPLIES.items()}
        yield server


def judge_args(server: FakeVQAServer, model: str = "judge-llm") -> list[str]:
    return ["--judge-endpoint", server.base_url, "--judge-model", model]


def test_open_answers_are_judged_and_agreement_matches_hand_computation(
    model_server, judge_server, toy_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("QILIN_TEST_JUDGE_KEY", "judge-secret")
    judge_server.failures = {judge_key("q1", "Lung"): [503]}  # retried by the endpoint machinery
    out = tmp_path / "run"
    args = endpoint_args(toy_data, out, model_server.base_url, *judge_args(judge_server))
    assert main([*args, "--judge-api-key-env", "QILIN_TEST_JUDGE_KEY"]) == 0

    records = by_id(out / "predictions.jsonl")
    assert len(read_jsonl(out / "predictions.jsonl")) == 8  # one line per item once finished
    assert {key: records[key]["details"]["judge"] for key in OPEN_ITEMS} == {
        "q1": 1.0, "q3": 1.0, "q5": 0.0, "q6": None,
    }  # fmt: skip
    assert {key: records[key]["judge_reply"] for key in OPEN_ITEMS} == JUDGE_REPLIES
    assert all("judge" not in records[key]["details"] for key in ("q0", "q2", "q4", "q7"))  # closed
    assert [records[key]["score"] for key in OPEN_ITEMS] == [1.0, 0.0, 0.0, 1.0]  # the rule is unchanged

    # only the open items were sent to the judge, text only, with its own model name and key
    assert judge_server.requests_per_key() == {
        **{judge_key(key, MODEL_ANSWERS[key]): 1 for key in OPEN_ITEMS},
        judge_key("q1", "Lung"): 2,
    }
    assert all(
        request.image_colours is None and not request.image_is_png for request in judge_server.requests
    )
    assert {request.model for request in judge_server.requests} == {"judge-llm"}
    assert {request.authorization for request in judge_server.requests} == {"Bearer judge-secret"}
    assert {request.temperature for request in judge_server.requests} == {0}
    assert len(model_server.requests) == 8 and all(r.authorization is None for r in model_server.requests)

    metrics = read_json(out / "metrics.json")
    # readable: q1 (judge 1, rule 1), q3 (1, 0), q5 (0, 0). p_o = 2/3; judge yes 2/3, rule yes 1/3,
    # p_e = 2/3 * 1/3 + 1/3 * 2/3 = 4/9; kappa = (2/3 - 4/9) / (1 - 4/9) = 0.4
    overall = {
        "asked": 4, "count": 3, "unreadable": 1, "mean": pytest.approx(2 / 3),
        "rule_mean": pytest.approx(1 / 3), "agreement": pytest.approx(2 / 3), "kappa": pytest.approx(0.4),
    }  # fmt: skip
    assert metrics["overall"]["judge"] == overall
    assert metrics["by_answer_type"]["open"]["judge"] == overall
    assert "judge" not in metrics["by_answer_type"]["closed"]
    # en: q1 (1, 1), q5 (0, 0): full agreement, p_e = 1/2, kappa 1
    assert metrics["by_language"]["en"]["judge"]["agreement"] == 1.0
    assert metrics["by_language"]["en"]["judge"]["kappa"] == pytest.approx(1.0)
    # zh: q3 (1, 0) readable, q6 not: agreement 0; p_e = 1 * 0 + 0 * 1 = 0, kappa = 0
    zh = metrics["by_language"]["zh"]["judge"]
    assert (zh["count"], zh["unreadable"], zh["agreement"], zh["kappa"]) == (1, 1, 0.0, 0.0)
    assert metrics["by_modality"]["CT"]["judge"]["asked"] == 3  # q1, q5, q6
    assert "judge" not in metrics["by_modality"]["X-Ray"]

    shipped = json.loads(
        resources.files("qilin_med_vl.resources").joinpath("eval_judge_prompt.json").read_text("utf-8")
    )
    expected_judge = {
        "endpoint": judge_server.base_url,
        "model": "judge-llm",
        "prompt_version": shipped["version"],
        "template": {"zh": shipped["zh"], "en": shipped["en"]},
        "max_tokens": 32,
    }
    assert read_json(out / "run.json")["judge"] == expected_judge
    assert metrics["judge"] == expected_judge
    assert "--judge-model judge-llm" in read_json(out / "run.json")["command"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## LLM judge (open answers)" in report
    assert "| all | 4 | 3 | 1 | 0.6667 | 0.3333 | 0.6667 | 0.4000 |" in report
    assert "| language: zh | 2 | 1 | 1 | 1.0000 | 0.0000 | 0.0000 | 0.0000 |" in report


def test_cohen_kappa_against_hand_computation():
    # 50 items: both yes 20, first only 5, second only 10, both no 15. p_o = 35/50 = 0.7;
    # first yes 25/50, second yes 30/50: p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4
    first = [True] * 20 + [True] * 5 + [False] * 10 + [False] * 15
    second = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)  # p_o 0, p_e 1/2
    assert cohen_kappa([True, True], [True, True]) is None  # p_e = 1: undefined
    assert cohen_kappa([], []) is None


def test_a_refused_judge_request_is_recorded_as_no_verdict(model_server, judge_server, toy_data, tmp_path):
    judge_server.failures = {judge_key("q5", "a mass"): [400]}
    out = tmp_path / "run"
    assert main(endpoint_args(toy_data, out, model_server.base_url, *judge_args(judge_server))) == 0
    q5 = by_id(out / "predictions.jsonl")["q5"]
    assert q5["details"]["judge"] is None and q5["judge_reply"] == "" and "HTTP 400" in q5["judge_error"]
    judged = read_json(out / "metrics.json")["overall"]["judge"]
    assert (judged["asked"], judged["count"], judged["unreadable"]) == (4, 2, 2)


def test_killed_judging_resumes_without_asking_the_judge_again(
    model_server, judge_server, toy_data, tmp_path
):
    judge_server.hold_after(2)  # two verdicts, then every judge request hangs until the run is killed
    out = tmp_path / "run"
    args = endpoint_args(
        toy_data, out, model_server.base_url, *judge_args(judge_server), "--concurrency", "4"
    )
    kill_eval_when(args, out / "predictions.jsonl", lambda text: text.count('"judge_reply"') >= 2)
    judged_before = set(judge_server.answered_keys())
    assert len(judged_before) == 2

    judge_server.release()
    assert main(args) == 0
    asked = judge_server.requests_per_key()
    assert all(asked[key] == 1 for key in judged_before)  # never asked again
    assert set(judge_server.answered_keys()) == {judge_key(key, MODEL_ANSWERS[key]) for key in OPEN_ITEMS}
    assert len(model_server.requests) == 8  # the model was not asked again either
    assert len(read_jsonl(out / "predictions.jsonl")) == 8
    assert read_json(out / "metrics.json")["overall"]["judge"]["asked"] == 4


def test_judge_added_to_a_finished_run_and_another_judge_refused(
    model_server, judge_server, toy_data, tmp_path, capsys
):
    out = tmp_path / "run"
    plain = endpoint_args(toy_data, out, model_server.base_url)
    assert main(plain) == 0
    assert "judge" not in read_json(out / "metrics.json")["overall"]
    assert read_json(out / "run.json")["judge"] is None

    assert main([*plain, *judge_args(judge_server)]) == 0  # verdicts added, no answer asked again
    assert len(model_server.requests) == 8 and len(judge_server.requests) == 4
    assert read_json(out / "metrics.json")["overall"]["judge"]["kappa"] == pytest.approx(0.4)
    assert read_json(out / "run.json")["judge"]["model"] == "judge-llm"
    capsys.readouterr()

    assert main([*plain, *judge_args(judge_server, model="another-judge")]) == 1
    error = capsys.readouterr().err
    assert "another judge" in error and "model: 'judge-llm' here, 'another-judge' now" in error
    assert "Traceback" not in error
    assert len(judge_server.requests) == 4  # nothing asked

    assert main(plain) == 0  # without judge options the verdicts stay and are still reported
    assert read_json(out / "run.json")["judge"]["model"] == "judge-llm"
    assert read_json(out / "metrics.json")["overall"]["judge"]["asked"] == 4
    assert len(judge_server.requests) == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--judge-model", "m"], "--judge-model needs --judge-endpoint URL too"),
        (["--judge-endpoint", "{url}"], "--judge-endpoint needs --judge-model NAME too"),
        (["--judge-api-key-env", "KEY"], "--judge-api-key-env needs --judge-endpoint URL and --judge-model"),
        (["--judge-endpoint", "localhost:8001/v1", "--judge-model", "m"], "give an http:// or https:// base"),
        (
            [
                "--judge-endpoint",
                "{url}",
                "--judge-model",
                "m",
                "--judge-api-key-env",
                "QILIN_UNSET_JUDGE_KEY",
            ],
            "--judge-api-key-env QILIN_UNSET_JUDGE_KEY: that environment variable is not set",
        ),
    ],
)
def test_bad_judge_options_are_clear_errors_before_anything_is_asked(
    model_server, judge_server, toy_data, tmp_path, capsys, monkeypatch, options, message
):
    monkeypatch.delenv("QILIN_UNSET_JUDGE_KEY", raising=False)
    options = [option.format(url=judge_server.base_url) for option in options]
    out = tmp_path / "run"
    assert main([*endpoint_args(toy_data, out, model_server.base_url), *options]) == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not model_server.requests and not judge_server.requests and not out.exists()


def test_judged_shards_merge_and_shards_of_different_judges_do_not(
    model_server, judge_server, toy_data, tmp_path, capsys
):
    whole = tmp_path / "whole"
    assert main(endpoint_args(toy_data, whole, model_server.base_url, *judge_args(judge_server))) == 0
    parts = [tmp_path / f"part{index}" for index in range(2)]
    for index, folder in enumerate(parts):
        shard = ("--shard", f"{index}/2")
        assert (
            main(endpoint_args(toy_data, folder, model_server.base_url, *shard, *judge_args(judge_server)))
            == 0
        )
    merged = tmp_path / "merged"
    assert main(["eval", "merge", *map(str, parts), "--out", str(merged)]) == 0
    merged_metrics, whole_metrics = read_json(merged / "metrics.json"), read_json(whole / "metrics.json")
    assert merged_metrics["overall"]["judge"] == whole_metrics["overall"]["judge"]
    assert merged_metrics["by_language"] == whole_metrics["by_language"]
    asked = len(judge_server.requests)
    assert main(endpoint_args(toy_data, merged, model_server.base_url, *judge_args(judge_server))) == 0
    assert len(judge_server.requests) == asked  # every verdict came through the merge

    other = tmp_path / "other-judge"
    shard = ("--shard", "1/2")
    assert (
        main(endpoint_args(toy_data, other, model_server.base_url, *shard, *judge_args(judge_server, "j2")))
        == 0
    )
    capsys.readouterr()
    assert main(["eval", "merge", str(parts[0]), str(other), "--out", str(tmp_path / "mixed")]) == 1
    assert "different LLM judges" in capsys.readouterr().err


def test_an_item_in_a_language_without_a_judge_prompt_is_a_clear_error(
    model_server, judge_server, tmp_path, capsys
):
    data = write_toy_benchmark(tmp_path / "bench", [("f1", "Quel organe ?", "foie", "fr", "open", "CT")])
    assert main(endpoint_args(data, tmp_path / "run", model_server.base_url, *judge_args(judge_server))) == 1
    error = capsys.readouterr().err
    assert "item 'f1': language 'fr' has no judge prompt" in error and "Traceback" not in error
    assert not model_server.requests and not judge_server.requests  # refused before anything was asked
