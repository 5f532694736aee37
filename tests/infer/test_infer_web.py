"""The web page end to end in headless Chromium (Debian's /usr/bin/chromium driven by playwright):
the notice is visible, an uploaded picture shows, a question in Chinese gets an answer, a second
turn follows, the picture is encoded once; then a DICOM study with the lung window starts a new chat
and nothing identifying shows on the page. A screenshot is saved (also to $QILIN_SCREENSHOT_DIR)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from qilin_med_vl.infer.engine import Engine, SamplingSettings

from .infer_helpers import VisionCalls, free_port, leaked, named_study

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def page_url(tiny_checkpoint):
    from qilin_med_vl.infer.web import build_page

    engine = Engine.from_pretrained(tiny_checkpoint)  # its own, so vision calls can be counted
    counter = VisionCalls(engine.model)
    page = build_page(engine, SamplingSettings(max_new_tokens=12), max_pixels=10_000_000)
    port = free_port()
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", counter
    finally:
        page.close()
        counter.close()


@pytest.mark.slow
def test_upload_ask_and_follow_up_in_headless_chromium(page_url, png_path, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.exists(), (
        "the web test needs Debian's chromium at /usr/bin/chromium (`make test` installs it)"
    )
    url, counter = page_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            disclaimer = page.locator("#disclaimer")
            expect(disclaimer).to_contain_text("仅供科研使用")
            expect(disclaimer).to_contain_text("Research use only")

            page.locator("#upload input[type=file]").set_input_files(str(png_path))
            expect(page.locator("#preview img")).to_be_visible()
            expect(page.locator("#facts")).to_contain_text("Loaded")

            answers = page.locator("#chat .message-row.bot-row")
            for turn, question in enumerate(["这张图像显示了什么？", "病灶在哪一侧？"], start=1):
                page.locator("#question textarea").fill(question)
                page.locator("#send").click()
                expect(page.locator("#chat .message-row.user-row").nth(turn - 1)).to_contain_text(question)
                expect(answers).to_have_count(turn)
                expect(answers.nth(turn - 1)).not_to_have_text("")
            assert counter.calls == 1  # two turns, one encoding of the picture
            screenshot = tmp_path / "qilin-web.png"
            page.screenshot(path=str(screenshot), full_page=True)

            # a DICOM study with the lung window: a new picture starts a new conversation
            study = tmp_path / "named_ct.dcm"
            study.write_bytes(named_study())
            page.locator("#window input").click()
            page.get_by_role("option", name="lung").click()
            page.locator("#upload .icon-button-wrapper button").click()  # the upload's clear button
            page.locator("#upload input[type=file]").set_input_files(str(study))
            expect(page.locator("#facts")).to_contain_text("DICOM")
            expect(page.locator("#facts")).to_contain_text("lung")
            expect(answers).to_have_count(0)
            page.locator("#question textarea").fill("肺部有异常吗？")
            page.locator("#send").click()
            expect(answers).to_have_count(1)
            expect(answers.nth(0)).not_to_have_text("")
            assert counter.calls == 2
            assert leaked(page.locator("body").inner_text()) == []
            dicom_screenshot = tmp_path / "qilin-web-dicom.png"
            page.screenshot(path=str(dicom_screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("QILIN_SCREENSHOT_DIR"):
        target = Path(os.environ["QILIN_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        for path in (screenshot, dicom_screenshot):
            shutil.copy(path, target / path.name)
