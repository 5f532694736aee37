"""Every code block in the docs runs as written, or says why it cannot run here.

Python and bash blocks of README.md and docs/*.md run in order, one fresh folder per document (with the
repository's configs/ beside them, as in a clone), offline. A block that needs what this machine lacks
(a GPU, the 13B weights, a public dataset, a paid endpoint) is preceded by a comment line
`<!-- not run: REASON -->`, which this test requires to give a reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
RUNNABLE = ("python", "bash")
BLOCK_TIMEOUT_S = 600


def code_blocks(document: Path) -> list[tuple[str, str, str | None, int]]:
    """(language, code, reason it is not run or None, line) of each python/bash block."""
    text = document.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        language = match.group(1)
        if language not in RUNNABLE:
            continue
        before = text[: match.start()].rstrip("\n").splitlines()
        marked = NOT_RUN.search(before[-1]) if before else None
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((language, match.group(2), marked.group(1) if marked else None, line))
    return blocks


def test_every_skipped_block_says_why():
    for document in DOCUMENTS:
        for _, _, reason, line in code_blocks(document):
            assert reason is None or len(reason.split()) >= 2, f"{document.name}:{line}: give a reason"


def run_block(language: str, code: str, folder: Path, env: dict, log: Path) -> tuple[int, int]:
    """(exit code, process group) of one block; servers it starts in the background keep running."""
    command = (
        [sys.executable, "-c", code] if language == "python" else ["bash", "-euo", "pipefail", "-c", code]
    )
    with log.open("w", encoding="utf-8") as output:  # a file, not a pipe: background servers keep it open
        process = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        return process.wait(timeout=BLOCK_TIMEOUT_S), process.pid


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS, ids=[document.name for document in DOCUMENTS])
def test_the_blocks_of_a_document_run_as_written(document, tmp_path):
    runnable = [block for block in code_blocks(document) if block[2] is None]
    if not runnable:
        pytest.skip(f"{document.name} has no block that runs offline")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for shared in ("configs", "tests"):  # what a clone has beside the docs
        (workspace / shared).symlink_to(REPO / shared)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
    groups = []
    try:
        for number, (language, code, _, line) in enumerate(runnable):
            log = tmp_path / f"block-{number}.log"
            code_, group = run_block(language, code, workspace, env, log)
            groups.append(group)
            output = log.read_text(encoding="utf-8", errors="replace")
            assert code_ == 0, (
                f"{document.name}:{line} failed (exit {code_}):\n{code}\n--- output ---\n{output[-4000:]}"
            )
    finally:
        for group in groups:  # stop the servers the blocks left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
