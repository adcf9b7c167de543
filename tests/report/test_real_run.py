"""A report from a run folder the real trainer wrote (slow: trains a tiny convnet)."""

from __future__ import annotations

import pytest

from cnnkit.report import render_report

pytestmark = pytest.mark.slow


def test_report_of_a_trained_run(make_run, tmp_path):
    from cnnkit.train import TrainConfig, train_run

    data = make_run(n_per_class=12).parent / "data"  # the fixture's PNG class folder
    config = TrainConfig(data=str(data), model="basic_convnet", epochs=2, batch_size=8,
                         precision="fp32", augment={"rotation_range": 10.0})  # fmt: skip
    run = train_run(config, tmp_path / "run", progress=False).run_dir
    html = render_report(run).read_text(encoding="utf-8")
    for sid in ("data", "model", "curves", "confusion", "per-class", "top-losses", "timing",
                "environment", "reproduce"):  # fmt: skip
        assert f'<section class="card" id="{sid}">' in html
    for name in ("curves.png", "confusion.png", "top_losses.png"):
        assert (run / name).is_file()
    assert "could not be read" not in html  # every file the trainer wrote parsed
    assert f"cnnkit train {data}" in html
