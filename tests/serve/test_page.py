"""The web page in headless Chromium: choose an image, see the predicted label and heatmap."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _chromium(require) -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path is not None, "Chromium (apt-get install chromium)")
    require(importlib.util.find_spec("playwright") is not None, "playwright (the dev extra)")
    return path


def test_upload_on_the_page_shows_label_bars_and_heatmap(live_url, serve_data, require, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium(require)
    image = serve_data / "bottom" / "03.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            hosts = set()
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # (Chromium also logs each 4xx answer to the console; those are expected here.)
            page.on(
                "console",
                lambda m: (
                    m.type == "error"
                    and "Failed to load resource" not in m.text
                    and errors.append(m.text)
                ),
            )
            page.goto(live_url + "/")
            expect(page.locator("#model-info")).to_contain_text("backend torch")
            page.set_input_files("#file-input", str(image))
            expect(page.locator("#label")).to_have_text("bottom", timeout=30_000)
            expect(page.locator("#bars li")).to_have_count(3)
            expect(page.locator("#bars li").first).to_contain_text("bottom")
            expect(page.locator("#heatmap")).to_have_js_property(
                "naturalWidth", 320, timeout=30_000
            )
            expect(page.locator("#result .legend")).to_be_visible()
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            if os.environ.get("CNNKIT_SCREENSHOT"):
                shutil.copy(tmp_path / "page.png", os.environ["CNNKIT_SCREENSHOT"])
            page.set_input_files(
                "#file-input", {"name": "x.png", "mimeType": "image/png", "buffer": b"not an image"}
            )
            expect(page.locator("#status")).to_contain_text("not-an-image", timeout=30_000)
        finally:
            browser.close()
    assert errors == []
    assert hosts == {live_url.split("/")[2]}  # the page talks to its own server only


def test_the_page_says_no_positive_evidence_instead_of_a_uniform_heatmap(
    silent_live_url, serve_data, require
):
    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium(require)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(silent_live_url + "/")
            page.set_input_files("#file-input", str(serve_data / "middle" / "02.png"))
            expect(page.locator("#heatmap-caption")).to_have_text(
                "Grad-CAM: no positive evidence for bottom", timeout=30_000
            )
            expect(page.locator("#result .legend")).to_be_hidden()  # no colours to explain
        finally:
            browser.close()
