"""`qilin demo --quick` through the CLI: every step writes what the next reads, the report shows eval's figures.

The quick run trains a few steps only, so it checks the plumbing, not the learning (`make demo` does that).
The report is opened in headless Chromium, as a person would look at it, and a screenshot is kept.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from qilin_med_vl.cli import main
from qilin_med_vl.llava_format import built_files

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--quick", "--out", str(out), "--seed", "1"]) == 0
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


@pytest.mark.slow
def test_each_step_wrote_what_the_next_one_reads(demo):
    assert (demo / "synth/ground_truth.jsonl").is_file()
    assert (demo / "built/translation_memory.sqlite").is_file()
    assert built_files(demo / "built", "test").files  # the held-out split
    assert json.loads((demo / "built/manifest.json").read_text())["totals"]["dropped"] == {}  # all translated
    assert (demo / "built/stats.json").is_file()
    for run in ("base", "text", "align", "instruct"):
        assert (demo / run / "model.safetensors").is_file(), run
    assert len(_lines(demo / "text/train_log.jsonl")) > 1
    seeing, blind = _lines(demo / "eval/predictions.jsonl"), _lines(demo / "eval_blind/predictions.jsonl")
    assert [p["id"] for p in seeing] == [p["id"] for p in blind] and seeing
    assert json.loads((demo / "eval_blind/run.json").read_text())["identity"]["blank_images"] is True
    summary = json.loads((demo / "demo_summary.json").read_text())
    assert [step["step"] for step in summary["steps"]][0] == "render a synthetic medical world"
    assert len(summary["steps"]) == 12
    assert (
        summary["steps"][-1]["command"].startswith("qilin chat")
        and "RG1_UNCR.dcm" in summary["chat"]["image"]
    )


@pytest.mark.slow
def test_the_report_figures_are_those_qilin_eval_wrote(demo):
    truth = {line["question_record_id"]: line["question_type"] for line in _lines(demo / "synth/ground_truth.jsonl")
             if line["question_record_id"]}  # fmt: skip
    hits = defaultdict(list)
    for prediction in _lines(demo / "eval/predictions.jsonl"):
        kind = truth.get(prediction["id"])
        if kind:
            polarity = prediction["details"].get("rule") == "polarity"
            hits[kind].append(prediction["score"] if polarity else prediction["details"]["exact"])
    summary = json.loads((demo / "demo_summary.json").read_text())
    reported = {entry["question_type"]: entry for entry in summary["question_types"]}
    assert set(reported) == set(hits)
    page = (demo / "report.html").read_text(encoding="utf-8")
    for kind, values in hits.items():
        assert reported[kind]["items"] == len(values)
        assert reported[kind]["accuracy"] == pytest.approx(sum(values) / len(values))
        assert f'<td>{kind}</td><td class="num">{len(values)}</td>' in page


@pytest.mark.slow
def test_the_report_looks_right_in_a_browser(demo, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "the report test needs Debian's chromium (`make test` installs it)"
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto((demo / "report.html").as_uri())
            for heading in ("Does it look at the picture?", "The dataset", "Training", "A real chest X-ray"):
                assert page.get_by_role("heading", name=heading).is_visible()
            pictures = page.locator("img")
            assert pictures.count() >= 15
            widths = pictures.evaluate_all("images => images.map(image => image.naturalWidth)")
            assert min(widths) > 0  # every embedded picture decodes
            screenshot = tmp_path / "qilin-demo-report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 50_000
    if os.environ.get("QILIN_SCREENSHOT_DIR"):
        shutil.copy(screenshot, os.environ["QILIN_SCREENSHOT_DIR"])
