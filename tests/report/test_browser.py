"""The report as a user sees it: headless Chromium loads it offline, nothing overflows."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

pytestmark = pytest.mark.browser

_LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const scrollers = '.table-wrap, pre';  // these scroll on their own, by design
  return {
    scrollWidth: document.documentElement.scrollWidth,
    width: width,
    images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0,
                                            shown: i.getBoundingClientRect().width})),
    overflowing: [...document.querySelectorAll('body *')]
      .filter(e => e.getBoundingClientRect().right > width + 1 && !e.closest(scrollers))
      .map(e => e.tagName + '.' + e.className),
    sections: [...document.querySelectorAll('section')].map(s => s.id),
  };
}"""


def test_report_renders_offline_without_overflow(full_report, require):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(chromium is not None, "Chromium (apt-get install chromium)")
    require(importlib.util.find_spec("playwright") is not None, "playwright (the dev extra)")
    from playwright.sync_api import sync_playwright

    run, _ = full_report
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto((run / "report.html").as_uri())
            for width in (1280, 390):  # desktop and phone
                page.set_viewport_size({"width": width, "height": 900})
                layout = page.evaluate(_LAYOUT)
                assert layout["scrollWidth"] <= layout["width"], layout["overflowing"]
                assert layout["overflowing"] == []
                assert len(layout["images"]) == 5
                assert all(i["ok"] and 0 < i["shown"] <= width for i in layout["images"])
            assert len(layout["sections"]) == 12
        finally:
            browser.close()
    assert requests == [(run / "report.html").as_uri()]  # the page fetched nothing else
