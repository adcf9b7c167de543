"""``cnnkit weights fetch`` against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest
import torch

from cnnkit.cli.main import main
from cnnkit.models import create_model
from cnnkit.models import fetch as fetch_module
from cnnkit.models import pretrained as pt


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines on stderr
        pass


@pytest.fixture(autouse=True)
def _own_hub_cache(tmp_path, monkeypatch):
    """Each test starts with an empty torch hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture
def server(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _hub() -> Path:
    return Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"


def _leftovers() -> list[str]:
    return sorted(p.name for p in _hub().glob(".*")) if _hub().is_dir() else []


def test_fetch_checks_the_hash_keeps_the_file_and_loads_as_imagenet(server, monkeypatch, capsys):
    root, base = server
    torch.manual_seed(0)
    published = create_model("mobilenet_v2").state_dict()
    torch.save(published, root / "w.pth")
    name = f"mobilenet_v2-{hashlib.sha256((root / 'w.pth').read_bytes()).hexdigest()[:8]}.pth"
    (root / "w.pth").rename(root / name)
    url = f"{base}/{name}"  # the publisher's URL, as torchvision records it, served locally
    monkeypatch.setattr(fetch_module, "torchvision_weights_url", lambda n, w: url)
    monkeypatch.setattr(pt, "torchvision_weights_url", lambda n, w: url)

    assert main(["weights", "fetch", "mobilenet_v2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["downloaded"] is True and got["path"] == str(_hub() / name)
    assert got["checked"].startswith(f"sha256 starts with {name[13:21]}")
    assert (_hub() / name).read_bytes() == (root / name).read_bytes() and _leftovers() == []
    assert main(["weights", "fetch", "mobilenet_v2"]) == 0  # there and good: not fetched again
    assert capsys.readouterr().out.startswith("already here")
    model = create_model("mobilenet_v2", pretrained="imagenet")  # Keras' word, from the cache
    assert model.pretrained_info.spec == "imagenet" and model.pretrained_info.kind == "torchvision"
    assert all(torch.equal(v, published[k]) for k, v in model.state_dict().items())


def test_a_wrong_file_is_refused_and_nothing_is_kept(server, capsys):
    root, base = server
    (root / "resnet18-f37072fd.pth").write_bytes(b"not the published weights")
    argv = ["weights", "fetch", "resnet18", "IMAGENET1K_V1", "--mirror", base]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not start with the published f37072fd" in err and "nothing was kept" in err
    assert not (_hub() / "resnet18-f37072fd.pth").exists() and _leftovers() == []


@pytest.mark.parametrize(
    "model,file_name,problem",
    [
        ("xception", "xception_weights_tf_dim_ordering_tf_kernels.h5", "is not the published"),
        ("mobilenet", "mobilenet_1_0_224_tf.h5", "does not load as imagenet weights"),
    ],
)
def test_keras_files_are_checked_by_md5_or_else_by_loading(
    server, capsys, model, file_name, problem
):
    root, base = server
    (root / file_name).write_bytes(b"\x89HDF\r\n\x1a\n but not really")
    assert main(["weights", "fetch", model, "--mirror", base]) == 2
    assert problem in capsys.readouterr().err
    assert not (_hub() / file_name).exists() and _leftovers() == []


def test_an_unreachable_server_is_one_line_naming_the_url(server, capsys):
    _, base = server
    assert main(["weights", "fetch", "resnet18", "--mirror", base + "/missing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot download {base}/missing/resnet18-f37072fd.pth" in err[0]
    assert _leftovers() == []


def test_models_without_imagenet_weights_say_which_have_them(capsys):
    assert main(["weights", "fetch", "basic_convnet"]) == 2
    err = capsys.readouterr().err
    assert "basic_convnet has no published ImageNet weights" in err and "resnet18" in err
