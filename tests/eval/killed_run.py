"""Run `qilin eval` in a subprocess and SIGKILL it once its predictions file shows enough progress."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .conftest import REPO, subprocess_env


def kill_eval_when(
    args: list[str], predictions: Path, ready: Callable[[str], bool], timeout_s: float = 60.0
) -> None:
    """Start `qilin ARGS`; once `ready(text of predictions)` holds, kill it with SIGKILL (no cleanup runs)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qilin_med_vl.cli", *args],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not (predictions.exists() and ready(predictions.read_text(encoding="utf-8"))):
            if process.poll() is not None:
                raise AssertionError(f"the evaluation ended early: {process.communicate()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{predictions} did not get far enough in {timeout_s} s")
            time.sleep(0.05)
    finally:
        process.kill()
        process.communicate()
