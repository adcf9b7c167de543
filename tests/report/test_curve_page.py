"""The learning-curve page (cnnkit.report.curve_page) and its plot, from learning_curve.json."""

import json

import numpy as np
import pytest

from cnnkit.errors import RunFolderError
from cnnkit.report import learning_curve_png, render_learning_curve
from cnnkit.train.learning_curves import summarise
from cnnkit.train.powerlaw import PowerLaw

STATE = {
    "kind": "learning-curve",
    "status": "running",
    "data": "photos",
    "model": "basic_convnet",
    "settings": {"data": "photos", "model": "basic_convnet", "epochs": 5, "seed": 0},
    "fractions": [0.1, 0.2, 0.4, 0.7, 1.0],
    "repeats": 3,
    "class_names": ["a", "b"],
    "n_images": 1000,
    "n_train": 800,
    "n_validation": 200,
}


def _summary():
    """A finished curve from a known power law: records and per-image hits."""
    rng = np.random.default_rng(0)
    law = PowerLaw(3.0, 0.6, 0.05)
    records, hits = [], []
    for i, f in enumerate(STATE["fractions"]):
        for r in (1, 2, 3):
            n = round(800 * f)
            right = rng.random(200) < law.accuracy(n)
            hits.append(right)
            records.append({"fraction": f, "n_train": n, "repeat": r, "seed": 3 * i + r,
                            "val_accuracy": float(right.mean()), "val_loss": 0.5,
                            "seconds": 2.0, "run": f"points/f{f:g}-r{r}"})  # fmt: skip
    return summarise(STATE, records, np.stack(hits))


def test_the_page_shows_the_answer_the_curve_and_every_point(tmp_path):
    summary = _summary()
    (tmp_path / "learning_curve.json").write_text(json.dumps(summary))
    path = render_learning_curve(tmp_path)
    html = path.read_text()
    assert summary["answer"] in html
    assert html.count("points/f") == 15  # the table of every point
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert (tmp_path / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "cnnkit learning-curve photos --out " in html and "--epochs 5" in html
    two = summary["predictions"][1]
    assert two["multiple"] == 2 and two["ci"][0] < two["accuracy"] < two["ci"][1]


def test_an_unfinished_curve_says_how_to_continue(tmp_path):
    summary = _summary()
    partial = {**STATE, "points": summary["points"][:4]}
    (tmp_path / "learning_curve.json").write_text(json.dumps(partial))
    html = render_learning_curve(tmp_path).read_text()
    assert "not finished" in html and "cnnkit learning-curve --resume" in html
    assert "expected accuracy" not in html


def test_a_folder_without_a_curve_is_refused(tmp_path):
    with pytest.raises(RunFolderError, match="not a learning curve"):
        render_learning_curve(tmp_path)
    (tmp_path / "learning_curve.json").write_text(json.dumps(STATE))
    with pytest.raises(RunFolderError, match="cannot be plotted"):
        render_learning_curve(tmp_path)  # no points yet


def test_the_plot_draws_points_without_a_fit():
    png = learning_curve_png({"points": [{"n_train": 10, "val_accuracy": 0.5}]})
    assert png[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="at least one point"):
        learning_curve_png({})
