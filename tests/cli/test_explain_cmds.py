"""``cnnkit activations``, ``filters`` and ``explain`` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from cnnkit.cli import explain_cmds
from cnnkit.cli.main import main
from cnnkit.models import create_model
from cnnkit.runs import source
from cnnkit.runs.source import Source

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture
def image(tmp_path):
    """A 40x60 RGB picture with a bright square in the top-right area."""
    arr = np.full((40, 60, 3), 20, np.uint8)
    arr[5:15, 40:50] = 255
    path = tmp_path / "pic.png"
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as ``train`` writes it (config.json + model.safetensors), by hand."""
    torch.manual_seed(0)
    model = create_model("basic_convnet", num_classes=3, input_size=(1, 28, 28))
    run = tmp_path / "run"
    run.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, run / "model.safetensors")
    config = {
        "model": "basic_convnet",
        "class_names": CLASSES,
        "image_size": [28, 28],
        "in_chans": 1,
        "color_mode": "grayscale",
        "mean": [0.0],
        "std": [1.0],
    }
    (run / "config.json").write_text(json.dumps(config))
    return run


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_explain_run_folder_json(run_dir, image, tmp_path, capsys):
    out = tmp_path / "sub" / "overlay.png"
    argv = ["explain", str(run_dir), str(image), "--out", str(out), "--class", "square"]
    assert main([*argv, "--method", "gradcam++", "--json"]) == 0
    r = _json(capsys)
    assert r["label"] in CLASSES and 0 < r["probability"] <= 1
    assert r["target_class"] == "square" and r["method"] == "gradcam++"
    assert r["target_layer"] == "features.relu3"  # the card's
    assert 0 <= r["peak"]["x"] < 60 and 0 <= r["peak"]["y"] < 40
    assert all(isinstance(v, int) for v in r["peak"].values())
    assert r["note"] is None  # the map locates something
    drawn = Image.open(out)  # a 60x40 picture enlarged 7x (>= 256 px), a title, a colour bar
    assert drawn.width > 7 * 60 and 7 * 40 < drawn.height < 7 * 40 + 120


def _silent_run(run_dir):
    """``run_dir`` with a head that ignores the features: class 0 by its bias alone, so its
    Grad-CAM is zero everywhere (no part of the image raised its score)."""
    from safetensors.torch import load_file

    state = load_file(run_dir / "model.safetensors")
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.tensor([5.0, 0.0, 0.0])
    save_file(state, run_dir / "model.safetensors")
    return run_dir


def test_explain_says_no_positive_evidence_instead_of_a_uniform_heatmap(run_dir, image, tmp_path):
    run = _silent_run(run_dir)
    out = tmp_path / "cam.png"
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "explain", str(run), str(image), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "no positive evidence for circle" in done.stdout
    drawn = np.asarray(Image.open(out).convert("RGB")).astype(int)
    # the picture itself is shown (its bright square, grey elsewhere), not a colour wash:
    # no pixel is the saturated blue of a zero heatmap
    assert not ((drawn[..., 2] > 100) & (drawn[..., 0] < 60) & (drawn[..., 1] < 60)).any()
    assert main(["explain", str(run), str(image), "--out", str(out), "--json"]) == 0


def test_small_images_are_drawn_legibly_with_title_and_colour_bar(run_dir, tmp_path):
    digit = tmp_path / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(digit)
    for cmd in (["explain", str(run_dir), str(digit)], ["activations", str(run_dir), str(digit)]):
        out = tmp_path / f"{cmd[0]}.png"
        assert main([*cmd, "--out", str(out)]) == 0
        assert min(Image.open(out).size) >= 256, cmd[0]
    pats = tmp_path / "filters.png"
    argv = ["--layer", "features.relu1", "--filters", "1", "--steps", "1", "--out", str(pats)]
    assert main(["filters", str(run_dir), *argv]) == 0
    assert min(Image.open(pats).size) >= 256


class Brightness(nn.Module):
    """Grad-CAM of class 0 at ``act`` is the image brightness: the peak is the brightest pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.Identity()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        a = self.act(x.mean(dim=1, keepdim=True))  # (B, 1, H, W)
        return self.fc(a.mean(dim=(2, 3)))


def test_explain_peak_is_in_the_input_images_own_pixels(image, tmp_path, capsys, monkeypatch):
    def fake_source(source, pretrained):
        return Source(
            model=Brightness(),
            preprocess=lambda a: torch.as_tensor(np.array(a, dtype=np.float32))[None] / 255,
            image_size=(40, 20),  # (H, W): rows map 1:1, model column x -> 3x + 1
            color_mode="rgb",
            class_names=["bright", "dark"],
            mean=(0.0,),
            std=(1.0,),
            interpolation="nearest",
        )

    monkeypatch.setattr("cnnkit.cli.explain_cmds.resolve_source", fake_source)
    out = tmp_path / "o.png"
    argv = ["explain", "x", str(image), "--out", str(out), "--class", "bright", "--layer", "act"]
    assert main([*argv, "--json"]) == 0
    r = _json(capsys)
    # The square covers x 40..49, y 5..14 of the 60x40 original.
    assert 40 <= r["peak"]["x"] <= 49 and 5 <= r["peak"]["y"] <= 14, r["peak"]
    assert r["target_layer"] == "act"


def test_map_point_centres_and_crop_box():
    assert explain_cmds.map_point(0, 0, (28, 28), (0, 0, 56, 56)) == (0, 0)
    assert explain_cmds.map_point(27, 27, (28, 28), (0, 0, 56, 56)) == (54, 54)
    assert explain_cmds.map_point(14, 0, (28, 28), (10, 0, 66, 56)) == (38, 0)


def test_activations_model_name_with_layers(image, tmp_path, capsys):
    out = tmp_path / "acts.png"
    argv = ["activations", "basic-convnet", str(image), "--out", str(out)]
    assert main([*argv, "--layers", "features.relu1,features.pool2", "--json"]) == 0
    r = _json(capsys)
    assert [x["name"] for x in r["layers"]] == ["features.relu1", "features.pool2"]
    assert r["layers"][0]["shape"] == [32, 26, 26]
    assert Image.open(out).format == "PNG"


def test_filters_raw_and_ascent(run_dir, tmp_path, capsys):
    raw = tmp_path / "raw.png"
    assert main(["filters", str(run_dir), "--raw", "--out", str(raw), "--json"]) == 0
    assert _json(capsys)["filters"] == 32
    pats = tmp_path / "pats.png"
    argv = ["filters", str(run_dir), "--layer", "features.relu1", "--out", str(pats)]
    assert main([*argv, "--filters", "0,3", "--steps", "2", "--json"]) == 0
    r = _json(capsys)
    assert r["filters"] == [0, 3] and r["size"] == 28
    assert Image.open(pats).format == "PNG"


def test_filters_progress_is_plain_lines_in_a_log(run_dir, tmp_path):
    """stderr to a file (nohup, knitr, CI): no bar's carriage returns, lines with the count."""
    pats = tmp_path / "pats.png"
    argv = ["filters", str(run_dir), "--layer", "features.relu1", "--out", str(pats)]
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", *argv, "--filters", "4", "--steps", "3"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert "filters of features.relu1: 0/3 steps (0%)" in lines
    assert any(line.startswith("filters of features.relu1: 3/3 steps (100%), ") for line in lines)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "no_such_model", "{img}", "--out", "{out}"], "not a run folder or a known"),
        (["explain", "{run}", "{img}", "--out", "{out}", "--class", "cat"], "--class must be"),
        (["explain", "{run}", "{img}", "--out", "{out}", "--pretrained", "w"], "--pretrained"),
        (["explain", "{run}", "{tmp}/missing.png", "--out", "{out}"], "missing.png"),
        (["explain", "{run}", "{img}", "--out", "{out}", "--layer", "zz"], "layer='zz'"),
        (["filters", "{run}", "--out", "{out}"], "--layer NAME is required"),
        (["filters", "{run}", "--out", "{out}", "--layer", "features", "--filters", "x"], "count"),
    ],
)
def test_user_errors_are_one_line(argv, message, run_dir, image, tmp_path, capsys):
    subs = {"img": image, "out": tmp_path / "o.png", "run": run_dir, "tmp": tmp_path}
    assert main([a.format(**subs) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


@pytest.mark.slow
def test_console_entry_point(run_dir, image, tmp_path):
    out = tmp_path / "o.png"
    cmd = [sys.executable, "-m", "cnnkit", "explain", str(run_dir), str(image), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "peak x=" in proc.stdout and out.is_file()


def test_imagenet_names_for_torchvision_weights(tmp_path, monkeypatch):
    """A model NAME with ImageNet weights (named ``imagenet`` or by torchvision's name)
    explains with ImageNet's class names; a new head has none."""
    import hashlib

    from cnnkit.models import pretrained as pt

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(create_model("resnet18").state_dict(), hub / "w.pth")
    name = f"resnet18-{hashlib.sha256((hub / 'w.pth').read_bytes()).hexdigest()[:8]}.pth"
    (hub / "w.pth").rename(hub / name)
    monkeypatch.setattr(pt, "torchvision_weights_url", lambda n, w: f"https://example/{name}")
    for weights in ("imagenet", "IMAGENET1K_V1"):
        names = source.resolve_source("resnet18", weights).class_names
        assert names[0] == "tench" and len(names) == 1000
    model = create_model("resnet18", num_classes=5, pretrained="imagenet")
    assert source._weight_categories(model, "resnet18", "imagenet") is None  # a new head
