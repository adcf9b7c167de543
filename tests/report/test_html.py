"""The reusable HTML helpers: data URIs, filters, the Jinja2 environment, atomic writes."""

from __future__ import annotations

import base64

import jinja2
import pytest

from cnnkit.report.html import (
    BASE_CSS,
    PNG_SIGNATURE,
    duration,
    fixed,
    make_env,
    num,
    pct,
    png_data_uri,
)


def test_png_data_uri_round_trips():
    png = PNG_SIGNATURE + b"rest-of-file"
    uri = png_data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png


def test_png_data_uri_rejects_other_bytes():
    with pytest.raises(ValueError, match="PNG bytes"):
        png_data_uri(b"\xff\xd8\xff\xe0 a jpeg")


@pytest.mark.parametrize(
    ("func", "value", "expected"),
    [
        (pct, 0.97834, "97.8%"),
        (pct, None, "–"),
        (pct, float("nan"), "–"),
        (fixed, 0.5, "0.500"),
        (fixed, "x", "–"),
        (num, 12345.4, "12,345"),
        (num, True, "–"),
        (duration, 3.25, "3.2 s"),
        (duration, 61.2, "1 min 1 s"),
        (duration, 7300, "2 h 1 min"),
    ],
)
def test_filters(func, value, expected):
    assert func(value) == expected


def test_make_env_lets_other_reports_extend_the_base_layout():
    loader = jinja2.DictLoader(
        {
            "cv.html.j2": '{% extends "base.html.j2" %}{% block content %}<h1>{{ t }}</h1>'
            '<img src="{{ png | png_uri }}">{% endblock %}'
        }
    )
    html = make_env(loader).get_template("cv.html.j2").render(t="<b>r</b>", png=PNG_SIGNATURE)
    assert "<h1>&lt;b&gt;r&lt;/b&gt;</h1>" in html  # autoescape on
    assert 'src="data:image/png;base64,' in html
    assert BASE_CSS.strip()[:40] in html and "default-src 'none'" in html
    with pytest.raises(jinja2.UndefinedError):  # strict: a typo is an error, not blank
        make_env(loader).get_template("cv.html.j2").render(png=PNG_SIGNATURE)
