"""`qilin data build` through a flaky OpenAI-compatible service, killed mid-way and resumed.

The fake service answers 429s and 500s, English instead of Chinese, and translations that lose their
numbers. The killed build is resumed by running the same command: no paid request is repeated, and the
output equals an uninterrupted build's, byte for byte, with every dropped record's reason in the manifest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .fake_openai_server import FakeChatServer
from .test_translation_openai import _memory_has_recorded

KEY_ENV = "QILIN_TEST_TRANSLATION_KEY"
ERROR_STATUSES = ("429", "500")  # answers that are not paid translations


def flaky_script(sent: list[str]) -> dict[str, list[str]]:
    """Per source text, the service's misbehaviour, chosen among the texts a build really sends."""
    with_numbers = [text for text in sent if any(char.isdigit() for char in text)]
    others = [text for text in sent if text not in with_numbers[:1]]
    return {
        with_numbers[0]: ["drop_numbers", "drop_numbers"],  # dropped: translation_number_missing
        others[0]: ["english", "english"],  # dropped: translation_not_chinese
        others[1]: ["429", "500"],  # retried with backoff, then translated
        others[2]: ["english"],  # fixed by the one retry with the reason
    }


def settled(server: FakeChatServer, served: int) -> bool:
    """The first `served` requests have all had their answer (or their error status) written back."""
    first = server.requests[:served]
    return len(first) == served and all(r.answered or r.behaviour in ERROR_STATUSES for r in first)


def start_build(server: FakeChatServer, out: Path, cache: Path) -> subprocess.Popen:
    options = [f"cache_path={cache}", "concurrency=2", "retry_backoff_s=0.001", "retry_backoff_max_s=0.01"]
    command = [sys.executable, "-m", "qilin_med_vl.cli", "data", "build", "--config", "build.yaml"]
    command += ["--out", str(out), "--no-progress", "--translator", "openai", "--base-url", server.base_url]
    command += ["--model", "fake-gpt", "--api-key-env", KEY_ENV]
    for option in options:
        command += ["--translator-option", option]
    return subprocess.Popen(command, env={**os.environ, KEY_ENV: "k"}, stdout=subprocess.DEVNULL)


def outputs(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("*.jsonl"))}


@pytest.mark.slow
def test_killed_build_resumes_without_repeating_a_request(fixture_workspace, tmp_path):
    with FakeChatServer() as server:
        assert start_build(server, tmp_path / "probe", tmp_path / "probe.sqlite").wait(timeout=120) == 0
        script = flaky_script(sorted({request.source for request in server.requests}))
    with FakeChatServer(script) as server:
        reference = start_build(server, tmp_path / "reference", tmp_path / "reference.sqlite")
        assert reference.wait(timeout=120) == 0
        total_answers = server.answered_count()
    manifest = json.loads((tmp_path / "reference" / "manifest.json").read_text())
    dropped = manifest["totals"]["dropped"]
    assert dropped["translation_number_missing"] == dropped["translation_not_chinese"] == 1

    cache = tmp_path / "tm.sqlite"
    with FakeChatServer(script, latency_s=0.005) as server:
        served_before_hold = len(script) + total_answers // 2
        server.hold_after(served_before_hold)
        killed = start_build(server, tmp_path / "out", cache)
        try:
            deadline = time.monotonic() + 60
            while not settled(server, served_before_hold) or not _memory_has_recorded(
                cache, {(r.source, r.is_retry): 1 for r in server.requests if r.answered}
            ):
                assert killed.poll() is None, "the build ended before it was killed"
                assert time.monotonic() < deadline, "the build never reached the hold"
                time.sleep(0.02)
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=10)
        finally:
            if killed.poll() is None:
                killed.kill()
        server.release()
        assert not (tmp_path / "out" / "manifest.json").exists()  # the killed build left no finished output

        resumed = start_build(server, tmp_path / "out", cache)
        assert resumed.wait(timeout=120) == 0
        paid = [(request.source, request.is_retry) for request in server.requests if request.answered]

    assert len(paid) == len(set(paid)) == total_answers  # nothing paid twice, nothing missing
    assert outputs(tmp_path / "out") == outputs(tmp_path / "reference")
    resumed_manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert resumed_manifest["totals"] == manifest["totals"]
    assert resumed_manifest["totals"]["read"] == resumed_manifest["totals"]["kept"] + sum(dropped.values())
