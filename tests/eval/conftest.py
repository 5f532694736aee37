"""Fixtures for the evaluation tests: a toy benchmark folder, a fake endpoint, the tiny checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .fake_vqa_server import FakeVQAServer
from .toy_task import write_toy_benchmark

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy_data(tmp_path) -> Path:
    return write_toy_benchmark(tmp_path / "bench")


@pytest.fixture
def fake_server():
    """A fake endpoint answering "no" to everything; tests set `answers`/`failures` before running."""
    with FakeVQAServer() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny checkpoint, made the way a user makes it: `qilin model create --preset tiny`."""
    out = tmp_path_factory.mktemp("model") / "qilin-tiny"
    subprocess.run(
        [sys.executable, "-m", "qilin_med_vl.cli", "model", "create", "--preset", "tiny", "--out", str(out)],
        check=True,
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
    )
    return out


def subprocess_env() -> dict:
    """The environment for `python -m qilin_med_vl.cli` children: this checkout's package first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    return env
