"""render_report: one self-contained, escaped report.html with every section the run has."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import pytest
from PIL import Image

from cnnkit.errors import RunFolderError
from cnnkit.report import render_report

SECTION_IDS = (
    "data",
    "model",
    "augmentation",
    "curves",
    "confusion",
    "per-class",
    "top-losses",
    "gradcam",
    "kfold",
    "timing",
    "environment",
    "reproduce",
)
OPTIONAL_IDS = tuple(s for s in SECTION_IDS if s not in ("confusion", "per-class"))
URL_ATTRS = {
    "src",
    "href",
    "srcset",
    "action",
    "formaction",
    "poster",
    "data",
    "background",
    "xlink:href",
    "manifest",
    "ping",
    "cite",
}


class _Resources(HTMLParser):
    """Collects every URL-bearing attribute, the tags used and the section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self.sections: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in URL_ATTRS:
                self.urls.append((tag, name, value or ""))
        if tag == "section":
            self.sections.append(dict(attrs).get("id", ""))


def _parse(html: str) -> _Resources:
    parser = _Resources()
    parser.feed(html)
    parser.close()
    return parser


def test_report_has_every_section_in_order(full_report):
    run, html = full_report
    assert (run / "report.html").is_file()
    assert _parse(html).sections == list(SECTION_IDS)
    for heading in (
        "Data",
        "Model",
        "Augmentation",
        "Training curves",
        "Confusion matrix",
        "Per-class metrics",
        "Top losses",
        "Grad-CAM gallery",
        "k-fold cross-validation",
        "Timing and throughput",
        "Environment",
        "How to reproduce",
    ):
        assert f"<h2>{heading}</h2>" in html


def test_report_headline_shows_accuracy_with_ci(full_report):
    run, html = full_report
    m = json.loads((run / "metrics.json").read_text())
    lo, hi = m["accuracy_ci"]
    assert f'<div class="big">{100 * m["accuracy"]:.1f}%</div>' in html
    assert f"95% CI {100 * lo:.1f}% – {100 * hi:.1f}%" in html
    assert "out-of-fold accuracy, 3 folds" in html  # a k-fold run says what its number is


def test_single_split_headline(make_run):
    html = render_report(make_run(optional=False)).read_text(encoding="utf-8")
    assert '<div class="eyebrow">validation accuracy</div>' in html
    assert "out-of-fold" not in html


def test_report_is_self_contained(full_report):
    _, html = full_report
    parsed = _parse(html)
    external = [
        u
        for u in parsed.urls
        if not (u[2].startswith("data:") or (u[2].startswith("#") and u[1] == "href"))
    ]
    assert external == []
    assert not parsed.tags & {"script", "link", "iframe", "object", "embed", "base"}
    assert not re.search(r"url\((?!\s*['\"]?data:)", html)  # no CSS fetches either
    assert "@import" not in html
    assert "default-src 'none'" in html  # the browser enforces it too


def test_report_images_are_inlined_pngs(full_report):
    run, html = full_report
    uris = [v for tag, name, v in _parse(html).urls if tag == "img" and name == "src"]
    assert len(uris) == 5  # augmentation, curves, confusion, top losses, Grad-CAM
    for uri in uris:
        assert uri.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).verify()
    for name in ("curves.png", "confusion.png", "top_losses.png"):
        data = (run / name).read_bytes()
        assert f"data:image/png;base64,{base64.b64encode(data).decode()}" in html


def test_report_shows_run_details(full_report):
    run, html = full_report
    assert "truncated" in html and "broken.png" in html  # skipped files
    assert "conv2 (Conv2d)" in html  # the model summary
    assert "AVX-512 bf16" in html and "AMD EPYC" in html  # precision reason, environment
    assert "cnnkit train" in html and "--rotation-range 10" in html and "--folds 3" in html
    assert "91.0%" in html  # k-fold mean
    assert "1,525" in html  # median training throughput
    assert "Validation loss was lowest at epoch 4" in html
    assert "<h3>Most confused</h3>" in html and "taken for" in html


def test_rendering_is_deterministic(full_report):
    run, html = full_report
    assert render_report(run).read_text(encoding="utf-8") == html


def test_class_names_and_paths_are_escaped(make_run):
    evil = "<script>alert(1)</script>"
    run = make_run(class_names=(evil, "b&c", '"q"'), n_per_class=2)
    html = render_report(run).read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "b&amp;c" in html
    assert "script" not in _parse(html).tags


def test_missing_optional_files_leave_their_sections_out(make_run):
    run = make_run(optional=False)  # metrics.json only
    html = render_report(run).read_text(encoding="utf-8")
    assert _parse(html).sections == ["confusion", "per-class"]
    for sid in OPTIONAL_IDS:
        assert f'href="#{sid}"' not in html
    assert (run / "confusion.png").is_file()
    assert not (run / "curves.png").exists() and not (run / "top_losses.png").exists()


def test_without_cv_augment_and_gallery_and_an_overfit_history(make_run):
    run = make_run()
    for name in ("augment.png", "gallery.png"):
        (run / name).unlink()
    (run / "history.csv").write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy\n"
        "1,0.9,0.6,0.8,0.62\n2,0.5,0.8,0.5,0.78\n3,0.3,0.9,0.7,0.74\n"
    )
    html = render_report(run).read_text(encoding="utf-8")
    sections = _parse(html).sections
    assert "kfold" not in sections and "augmentation" not in sections
    assert "gradcam" not in sections and "curves" in sections
    assert "It rose after epoch 2: the model began to overfit." in html


def test_named_dataset_paths_get_placeholder_tiles(make_run):
    run = make_run(pseudo_paths=True)
    html = render_report(run).read_text(encoding="utf-8")
    assert "toy-shapes:train/" in html and 'id="top-losses"' in html
    assert "cnnkit train toy-shapes --model basic_convnet" in html


def test_unreadable_optional_files_are_noted_not_fatal(make_run):
    run = make_run()
    (run / "gallery.png").write_bytes(b"GIF89a not a png")
    (run / "cv.json").write_text("{ broken")
    html = render_report(run).read_text(encoding="utf-8")
    assert "gallery.png could not be read" in html and "cv.json could not be read" in html
    assert 'id="gradcam"' not in html and 'id="kfold"' not in html


def test_missing_metrics_is_a_clear_error(make_run):
    run = make_run()
    (run / "metrics.json").unlink()
    with pytest.raises(RunFolderError, match=r"metrics\.json is missing"):
        render_report(run)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{ not json", r"metrics\.json is not valid JSON \(line 1"),
        ("[1, 2]", r"metrics\.json must hold a JSON object"),
        ('{"accuracy": 0.9}', r"metrics\.json lacks class_names, confusion_matrix"),
        (
            '{"accuracy": 0.9, "class_names": ["a", "b"], "confusion_matrix": [[1]]}',
            r"confusion_matrix must be a 2x2",
        ),
        (
            '{"accuracy": 0.9, "class_names": ["a", "b"], "confusion_matrix": [[1, -2], [0, 1]]}',
            r"metrics\.json: cm must hold non-negative finite counts",
        ),
    ],
)
def test_corrupt_metrics_is_a_clear_error(make_run, text, match):
    run = make_run(optional=False)
    (run / "metrics.json").write_text(text)
    with pytest.raises(RunFolderError, match=match):
        render_report(run)
    assert not (run / "report.html").exists()


def test_not_a_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match="run_dir must be a run folder"):
        render_report(tmp_path / "nope")


def test_n_top_losses_must_be_positive(make_run):
    with pytest.raises(ValueError, match="n_top_losses must be a positive int"):
        render_report(make_run(optional=False), n_top_losses=0)


def test_the_re_render_line_names_the_run_folder(make_run):
    """It once named the data folder; the command must work from anywhere."""
    import shlex

    run = make_run()
    html = render_report(run).read_text(encoding="utf-8")
    assert f"cnnkit report {shlex.quote(str(run.resolve()))}</code>" in html
