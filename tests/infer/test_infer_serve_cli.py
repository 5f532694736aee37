"""`qilin serve` as users start it: a subprocess on a loopback port, answering the openai client."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import openai
import pytest

from qilin_med_vl.cli import main

from .infer_helpers import free_port

START_TIMEOUT_S = 90


def test_unset_api_key_variable_is_a_clear_error(tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.delenv("QILIN_TEST_UNSET_KEY", raising=False)
    assert main(["serve", "--model", str(tiny_checkpoint), "--api-key-env", "QILIN_TEST_UNSET_KEY"]) == 1
    assert "QILIN_TEST_UNSET_KEY" in capsys.readouterr().err


@pytest.mark.slow
def test_qilin_serve_answers_the_openai_client(tiny_checkpoint, tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = {**os.environ, "QILIN_TEST_KEY": "s3cret"}
    command = [sys.executable, "-m", "qilin_med_vl.cli", "serve", "--model", str(tiny_checkpoint)]
    command += ["--port", str(port), "--api-key-env", "QILIN_TEST_KEY", "--served-model-name", "tiny"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "qilin serve did not start:\n" + log_path.read_text()
            time.sleep(0.25)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="s3cret", max_retries=0)
        answers = [
            client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "你好"}], max_tokens=5, temperature=0
            )
            for _ in range(2)
        ]
        assert answers[0].choices[0].message.content == answers[1].choices[0].message.content  # greedy
        assert 1 <= answers[0].usage.completion_tokens <= 5
        assert answers[0].model == "tiny"
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "POST /v1/chat/completions" in log_path.read_text()
