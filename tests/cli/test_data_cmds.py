"""The data commands through the real entry point (and once through the installed script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from cnnkit.cli.data_cmds import augment_from_flags, augment_options
from cnnkit.cli.main import main
from cnnkit.data import Augment
from cnnkit.data.augment import parse_shift_range


def _write_tree(root: Path) -> Path:
    for cls, value in (("cats", 30), ("dogs", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), value + i, np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_datasets_list_json(capsys):
    assert main(["datasets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in rows}
    assert {"mnist", "fashion-mnist", "cifar10", "mnist-5k", "digits"} <= set(names)
    assert names["digits"]["available"] is True
    assert all("how_to_get" in r for r in rows)


def test_datasets_export_then_train_folder_layout(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["datasets", "export", "digits", str(out), "--limit", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 30 and result["split"] == "train"
    assert sorted(p.name for p in out.iterdir()) == [str(i) for i in range(10)]
    assert Image.open(next((out / "7").iterdir())).size == (8, 8)
    assert main(["datasets", "export", "digits", str(out)]) == 2  # refuses a non-empty folder
    assert "not empty" in capsys.readouterr().err


def test_unknown_dataset_is_one_line_error(capsys):
    assert main(["datasets", "export", "imagenet", "/tmp/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown dataset") and err.count("\n") == 1


def test_cache_info_and_clear(tmp_path, capsys):
    from cnnkit.data import load_folder

    load_folder(_write_tree(tmp_path / "data"), image_size=(4, 4), progress=False)
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bytes"] > 0 and any(e["files"] == 6 for e in info["entries"])
    assert main(["cache", "clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["freed_bytes"] > 0
    assert main(["cache", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == []


def test_augment_preview_folder(tmp_path, capsys):
    data = _write_tree(tmp_path / "data")
    png = tmp_path / "grid.png"
    args = ["augment-preview", str(data), "--out", str(png), "--rotation-range", "30",
            "--zoom-range", "0.2", "--horizontal-flip", "--fill-mode", "reflect",
            "--brightness-range", "0.8", "1.2", "--n", "4", "--image-size", "16", "16",
            "--json"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["augment"]["zoom_range"] == [0.8, 1.2] and result["augment"]["horizontal_flip"]
    im = Image.open(png)
    assert im.format == "PNG" and im.size[0] > 2 * 96  # 2x2 cells, enlarged


def test_augment_preview_bad_flag_value(tmp_path, capsys):
    assert main(["augment-preview", "digits", "--out", str(tmp_path / "g.png"),
                 "--fill-mode", "mirror"]) == 2  # fmt: skip
    assert "fill_mode" in capsys.readouterr().err


def test_augment_from_flags_and_decorator():
    aug = augment_from_flags(rotation_range=10.0, brightness_range=None, zoom_range=0.1)
    assert aug == Augment(rotation_range=10, zoom_range=0.1)
    with pytest.raises(ValueError, match="unknown"):
        augment_from_flags(rotate=3)

    app = typer.Typer()
    seen = {}

    @app.command()
    @augment_options
    def cmd(name: str, augment: Augment = None) -> None:
        seen["name"], seen["augment"] = name, augment

    result = CliRunner().invoke(app, ["x", "--shear-range", "5", "--vertical-flip"])
    assert result.exit_code == 0, result.output
    assert seen["augment"] == Augment(shear_range=5, vertical_flip=True) and seen["name"] == "x"


@pytest.mark.parametrize("typed,value", [("3", 3), ("+3", 3), ("3.0", 3.0), ("0.1", 0.1)])
def test_shift_range_flag_keeps_what_was_typed(typed, value):
    assert parse_shift_range(typed) == value and type(parse_shift_range(typed)) is type(value)
    with pytest.raises(ValueError, match="Received: 'three'"):
        parse_shift_range("three")


def test_int_shift_range_reaches_augment_preview_and_train(tmp_path, capsys, monkeypatch):
    data = _write_tree(tmp_path / "data")
    args = ["augment-preview", str(data), "--out", str(tmp_path / "g.png"), "--n", "2",
            "--width-shift-range", "3", "--height-shift-range", "3.0", "--json"]  # fmt: skip
    assert main(args) == 0
    aug = json.loads(capsys.readouterr().out)["augment"]
    assert type(aug["width_shift_range"]) is int and type(aug["height_shift_range"]) is float
    from cnnkit.cli import train_cmds

    seen = {}

    def capture(cfg, *rest, **kw):  # the config `train` built, without training
        seen["augment"] = cfg.augment
        raise ValueError("captured")

    monkeypatch.setattr(train_cmds, "train_run", capture)
    args = ["train", str(data), "--out", str(tmp_path / "run"), "--width-shift-range", "2"]
    assert main(args) == 2 and "captured" in capsys.readouterr().err
    assert seen["augment"].width_shift_range == 2
    assert type(seen["augment"].width_shift_range) is int


def test_installed_script_subprocess(tmp_path):
    script = Path(sys.executable).parent / "cnnkit"
    env = {**os.environ, "CNNKIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([str(script), "datasets", "--json"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert any(r["name"] == "mnist-5k" for r in json.loads(proc.stdout))
