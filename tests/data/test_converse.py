"""`qilin data converse` over a build of public-format sources, against a fake endpoint on 127.0.0.1 that
writes grounded conversations and, for scripted figures, invented sizes, wrong sides and non-JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qilin_med_vl.cli import main
from qilin_med_vl.data.converse import reasons
from qilin_med_vl.data.converse.figures import read_figures
from qilin_med_vl.data.converse.memory import ConversationMemory
from qilin_med_vl.data.converse.prompt import PROMPT_VERSION, memory_prompt_version
from qilin_med_vl.data.stats import compute_stats
from qilin_med_vl.llava_format import built_files
from tests.published_sources import write_published_sources

from .fake_converse_server import INVENTED_ROUND, FakeConverseServer

KEY_ENV = "QILIN_TEST_CONVERSE_KEY"
SOURCES = ["pmc_case_report", "pmc_oa"]


@pytest.fixture
def build(tmp_path, monkeypatch) -> Path:
    """A build (no translation) of 12 articles, 30% held out: 8 captions and 8 case reports to talk about."""
    config = write_published_sources(tmp_path / "sources")
    assert main(["data", "build", "--config", str(config), "--no-progress"]) == 0
    monkeypatch.setenv(KEY_ENV, "k")
    return tmp_path / "sources/built"


def converse_args(build: Path, server: FakeConverseServer, *options: str) -> list[str]:
    args = ["data", "converse", str(build), "--base-url", server.base_url, "--model", "fake-gpt"]
    args += ["--api-key-env", KEY_ENV, "--no-progress", "--option", "retry_backoff_s=0.001"]
    for option in options:
        args += ["--option", option]
    return args


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_invented_numbers_and_wrong_sides_are_dropped_with_their_reason(build):
    figures = read_figures(build, SOURCES)
    case_reports = [figure for figure in figures if figure.source == "pmc_case_report"]
    captions = [figure for figure in figures if figure.source == "pmc_oa"]
    assert (len(case_reports), len(captions)) == (8, 8)
    script = {
        case_reports[0].source_text(): ["invented_number"],
        case_reports[1].source_text(): ["wrong_side"],
        case_reports[2].source_text(): ["all_invented"],
        captions[0].source_text(): ["unparseable"],
        captions[1].source_text(): ["500", "invented_number"],  # retried, then answered
    }
    with FakeConverseServer(script) as server:
        assert main(converse_args(build, server)) == 0
        answered = [request for request in server.requests if request.answered]

    manifest = json.loads((build / "manifest.json").read_text())
    summary = manifest["conversation"]
    assert summary["figures"] == 16 and summary["kept"] == 14
    assert summary["dropped"] == {reasons.TOO_FEW_ROUNDS: 1, reasons.UNPARSEABLE: 1}
    # invented_number twice + both rounds of all_invented; one wrong side
    assert summary["rounds_dropped"] == {reasons.NUMBER_NOT_IN_SOURCE: 4, reasons.SIDE_NOT_IN_SOURCE: 1}
    # case reports have 4 source fields (4 rounds), captions 1 (2 rounds)
    assert summary["rounds"] == {"2": 7, "4": 7}

    records = {record["id"]: record for record in lines(build / "conversation-00000-of-00001.jsonl")}
    text = json.dumps(list(records.values()), ensure_ascii=False)
    assert INVENTED_ROUND[1] not in text and "左侧" not in text  # the case reports all say "right lung"
    wrong_side = records[case_reports[1].conversation_id]
    assert wrong_side["meta"]["dropped_rounds"] == [
        {
            "round": 5,
            "reason": reasons.SIDE_NOT_IN_SOURCE,
            "detail": "the answer says 左 / left; the source names 右 / right",
        }
    ]
    turns = wrong_side["conversations"]
    assert [turn["from"] for turn in turns] == ["human", "gpt"] * 4
    assert (
        turns[0]["value"].startswith("<image>\n") and sum("<image>" in turn["value"] for turn in turns) == 1
    )
    assert turns[-1]["value"] == "A mass in the right lung."

    dropped = lines(build / "conversation-dropped-00000-of-00001.jsonl")
    assert {(line["id"], line["reason"]) for line in dropped if "round" not in line} == {
        (case_reports[2].conversation_id, reasons.TOO_FEW_ROUNDS),
        (captions[0].conversation_id, reasons.UNPARSEABLE),
    }
    # tokens as the endpoint reported them, for the answers the conversations were made from
    usage = summary["usage"]
    assert usage["answers"] == len(answered) == 16
    assert usage["prompt_tokens"] == sum(request.usage["prompt_tokens"] for request in answered)
    assert usage["completion_tokens"] == sum(request.usage["completion_tokens"] for request in answered)


def test_conversations_join_stage_2_but_never_hold_a_test_article(build):
    with FakeConverseServer() as server:
        assert (
            main(converse_args(build, server, "input_price_per_million=2", "output_price_per_million=10"))
            == 0
        )
    instruction = built_files(build, "instruction").files
    assert [path.name for path in instruction] == [
        "instruction-00000-of-00001.jsonl",
        "conversation-00000-of-00001.jsonl",
    ]
    held_out = [record for path in built_files(build, "test").files for record in lines(path)]
    test_refs = {record["meta"]["ref"] for record in held_out if record["meta"]["source"] in SOURCES}
    conversation_refs = {record["meta"]["ref"] for record in lines(instruction[1])}
    assert len(test_refs) == 4 and len(conversation_refs) == 8 and not test_refs & conversation_refs
    usage = json.loads((build / "manifest.json").read_text())["conversation"]["usage"]
    assert usage["cost"] == pytest.approx(
        (usage["prompt_tokens"] * 2 + usage["completion_tokens"] * 10) / 1e6
    )

    stats = compute_stats(build)["tables"]["instruction"]
    assert stats["conversation"]["pairs"] == 16
    assert stats["conversation"]["answer"]["count"] == 8 * 4 + 8 * 2  # one answer per round
    assert stats["total"]["pairs"] == stats["pmc_case_report"]["pairs"] + stats["pmc_vqa"]["pairs"] + 16


def test_a_second_run_asks_nothing_and_writes_the_same_files(build):
    with FakeConverseServer() as server:
        assert main(converse_args(build, server)) == 0
        first = len(server.requests)
    written = {
        name: (build / name).read_bytes() for name in ("conversation-00000-of-00001.jsonl", "manifest.json")
    }
    with FakeConverseServer(default="500") as server:  # any request would fail the conversation
        assert main(converse_args(build, server)) == 0
        assert server.requests == []
    assert first == 16
    assert {name: (build / name).read_bytes() for name in written} == written


def _stored(memory_path: Path, texts: list[str]) -> bool:
    if not memory_path.is_file():
        return False
    version = memory_prompt_version(PROMPT_VERSION, 2, 6)
    with ConversationMemory(memory_path) as memory:
        return all(memory.answer("fake-gpt", version, text) is not None for text in texts)


def start_converse(build: Path, server: FakeConverseServer) -> subprocess.Popen:
    command = [sys.executable, "-m", "qilin_med_vl.cli", *converse_args(build, server, "concurrency=2")]
    return subprocess.Popen(command, env={**os.environ, KEY_ENV: "k"}, stdout=subprocess.DEVNULL)


def test_a_killed_run_resumes_without_repeating_a_paid_request(build):
    with FakeConverseServer(latency_s=0.005) as server:
        server.hold_after(6)
        killed = start_converse(build, server)
        try:
            deadline = time.monotonic() + 60
            while server.answered_count() < 6 or not _stored(
                build / "conversation_memory.sqlite", [r.source for r in server.requests if r.answered]
            ):
                assert killed.poll() is None, "the run ended before it was killed"
                assert time.monotonic() < deadline, "the run never reached the hold"
                time.sleep(0.02)
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=10)
        finally:
            if killed.poll() is None:
                killed.kill()
        server.release()
        assert "conversation" not in json.loads((build / "manifest.json").read_text())["files"]
        assert server.answered_count() == 6

        resumed = start_converse(build, server)
        assert resumed.wait(timeout=120) == 0
        paid = [request.source for request in server.requests if request.answered]
    assert len(paid) == len(set(paid)) == 16  # every figure paid for once, none twice
    assert json.loads((build / "manifest.json").read_text())["conversation"]["kept"] == 16


@pytest.mark.slow
def test_conversations_train_in_stage_2_as_they_are(build, tmp_path):
    with FakeConverseServer() as server:
        assert main(converse_args(build, server)) == 0
    model, out = tmp_path / "tiny", tmp_path / "instruct"
    assert main(["model", "create", "--preset", "tiny", "--out", str(model)]) == 0
    config = Path(__file__).resolve().parents[2] / "configs/train/tiny_instruct.yaml"
    overrides = [f"data={build}", f"model={model}", f"output_dir={out}", "max_steps=1", "report_to=[]"]
    overrides += ["progress_bar=false", "device=cpu", "save_steps=100", "max_length=256"]
    assert main(["train", "--config", str(config), *overrides]) == 0
    summary = json.loads((out / "data_summary.json").read_text())
    builder_records = len(lines(build / "instruction-00000-of-00001.jsonl"))
    assert summary["records"] == builder_records + 16  # every conversation read, none dropped
    assert summary["dropped_by_reason"] == {}


def test_a_service_that_keeps_failing_drops_conversations_without_remembering_them(build, capsys):
    with FakeConverseServer(default="500") as server:
        assert main(converse_args(build, server, "max_retries=1")) == 0
        assert len(server.requests) == 32  # each figure: one request and one retry
    summary = json.loads((build / "manifest.json").read_text())["conversation"]
    assert summary["kept"] == 0 and summary["dropped"] == {reasons.REQUEST_FAILED: 16}
    assert summary["usage"]["answers"] == 0
    with FakeConverseServer() as server:  # nothing was paid, so the next run asks again
        assert main(converse_args(build, server)) == 0
        assert len(server.requests) == 16
    capsys.readouterr()
    unreachable = [
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--option",
        "max_retries=0",
        "--option",
        "prompt_version=x",
    ]
    assert main([*converse_args(build, server), *unreachable]) == 1
    assert "cannot reach http://127.0.0.1:9/v1/chat/completions" in capsys.readouterr().err


def test_a_missing_key_is_named_and_leaves_no_half_written_file(build, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with FakeConverseServer() as server:
        assert main(converse_args(build, server)) == 1
        assert server.requests == []
    assert (
        f"the environment variable {KEY_ENV} holding the conversation endpoint's API key"
        in capsys.readouterr().err
    )
    assert not list(build.glob("conversation*.jsonl*"))  # the (empty) memory may stay
