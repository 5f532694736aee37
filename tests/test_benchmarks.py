"""Every benchmark script runs from the repository at its smallest size and ends with its ratio line.

The scripts call the project's public functions the way a user's code would, so an API change that
breaks one fails here instead of on the next person who measures. The figures themselves are not
checked: at these sizes they mean nothing (the benchmarks' own docstrings give the real commands).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# script -> (smallest arguments, what its last figure line starts with)
SMALLEST = {
    "training_kept_logits.py": (["--rounds", "1", "--batch-size", "4"], "speed-up (step time):"),
    "training_packing.py": (["--samples", "8", "--held-out", "2", "--repeats", "1"], "speed-up"),
    # 40 cases: enough image tasks in one batch for the builder to send them to its workers in chunks
    "data_workers.py": (["--cases", "40", "--size", "64", "--rounds", "1"], "speed-up (records/s):"),
    "data_memory.py": (["--sizes", "40", "80"], "peak RSS ratio"),
    "engine_batching.py": (["--new-tokens", "2", "--repeats", "1"], "speed-up:"),
    "eval_batching.py": (["--items", "4", "--rounds", "1", "--max-new-tokens", "2"], "speed-up (items/s):"),
    "serving_concurrency.py": (["--clients", "2", "--rounds", "1", "--new-tokens", "2"], "speed-up"),
    "translation_concurrency.py": (
        ["--captions", "12", "--concurrency", "4", "--latency", "0.01"],
        "fraction of ideal:",
    ),
    "tokenize_cache.py": (["--sizes", "20", "40", "--workers", "1", "--speed-records", "20"], "ratio:"),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_benchmark_runs_at_its_smallest_size(script, tmp_path):
    arguments, last_figure = SMALLEST[script]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    finished = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = [line for line in finished.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing"
    assert any(line.startswith(last_figure) for line in lines[-3:]), lines[-3:]
    if script == "data_workers.py":  # chunked work for 2 workers still writes the 1-worker bytes
        assert "same record files: True" in lines


def test_every_benchmark_script_is_exercised():
    scripts = {path.name for path in (ROOT / "benchmarks").glob("*.py")} - {"chart.py"}
    assert scripts == set(SMALLEST)
