"""Pretrained weights: hub cache names, local files, hashes, misfits, Keras conversion."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cnnkit.models import create_model
from cnnkit.models import pretrained as pt

SIZE = (3, 16, 16)


def _resnet18(num_classes: int = 10, **kw):
    torch.manual_seed(0)
    return create_model("resnet18", num_classes=num_classes, input_size=kw.pop("size", SIZE), **kw)


def _hub_dir() -> Path:
    return Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"


def _same_base(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith("fc."))


def _same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_torchvision_name_resolves_to_the_hub_cache_file():
    url = pt.torchvision_weights_url("resnet18", "IMAGENET1K_V1")
    assert url.endswith("/resnet18-f37072fd.pth")
    assert pt.hub_checkpoint_path(url) == _hub_dir() / "resnet18-f37072fd.pth"
    assert pt.torchvision_weights_url("resnet18", "DEFAULT") == url
    assert pt.torchvision_weights_url("resnet18", "ResNet18_Weights.IMAGENET1K_V1") == url


def test_missing_hub_file_names_the_file_and_the_fetch_command():
    with pytest.raises(FileNotFoundError) as e:
        _resnet18(pretrained="IMAGENET1K_V1")
    msg = str(e.value)
    assert str(_hub_dir() / "resnet18-f37072fd.pth") in msg
    assert (
        "curl -L -o" in msg and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    )


def test_hub_cache_file_with_the_right_hash_loads(monkeypatch):
    src = _resnet18(num_classes=1000)
    tmp = _hub_dir() / "tmp.pth"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save(src.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    name = f"resnet18-{digest}.pth"
    tmp.rename(_hub_dir() / name)
    monkeypatch.setattr(pt, "torchvision_weights_url", lambda n, w: f"https://example/{name}")
    model = _resnet18(num_classes=1000, pretrained="IMAGENET1K_V1")
    assert model.pretrained_info.kind == "torchvision"
    assert not model.pretrained_info.fresh_head
    cats = model.pretrained_info.categories  # ImageNet names from torchvision's metadata
    assert len(cats) == 1000 and cats[0] == "tench"
    assert model.pretrained_info.to_dict()["categories"] == 1000
    assert _same_state(src, model)


def test_wrong_hash_is_refused():
    path = _hub_dir() / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_resnet18(num_classes=1000).state_dict(), path)
    with pytest.raises(ValueError, match="sha256 .* does not match the prefix 'f37072fd'"):
        _resnet18(pretrained="IMAGENET1K_V1")


def test_unknown_weight_names_are_clear_errors():
    with pytest.raises(ValueError, match="expected one of IMAGENET1K_V1"):
        _resnet18(pretrained="IMAGENET9K")
    with pytest.raises(ValueError, match="xception has no torchvision weights"):
        create_model("xception", input_size=(3, 71, 71), pretrained="DEFAULT")
    with pytest.raises(TypeError, match="pretrained must be"):
        _resnet18(pretrained=3)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_file_into_fewer_classes_keeps_a_fresh_head(tmp_path, suffix):
    src = _resnet18(num_classes=1000)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(src.state_dict(), path)
    else:
        save_file(src.state_dict(), str(path))
    model = _resnet18(num_classes=5, pretrained=str(path))
    assert _same_base(src, model)
    assert model.fc.out_features == 5
    assert model.pretrained_info.fresh_head and model.pretrained_info.kind == "file"
    assert not model.fc.weight.any() and not model.fc.bias.any()  # starts at uniform output


def test_base_weights_into_a_classifier_and_classifier_weights_into_a_base(tmp_path):
    src = _resnet18(num_classes=0)
    save_file(src.state_dict(), str(tmp_path / "base.safetensors"))
    model = _resnet18(num_classes=3, pretrained=str(tmp_path / "base.safetensors"))
    assert _same_base(src, model) and model.pretrained_info.fresh_head
    full = _resnet18(num_classes=1000)
    torch.save(full.state_dict(), tmp_path / "full.pth")
    base = _resnet18(num_classes=0, pretrained=str(tmp_path / "full.pth"))
    assert _same_base(full, base)


def test_checkpoint_dicts_and_module_prefix_are_unwrapped(tmp_path):
    src = _resnet18()
    wrapped = {"model": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "ckpt.pt")
    model = _resnet18(pretrained=tmp_path / "ckpt.pt")
    assert _same_state(src, model)


def test_rgb_weights_into_a_grayscale_model_sum_the_first_conv(tmp_path):
    src = _resnet18()
    torch.save(src.state_dict(), tmp_path / "rgb.pth")
    gray = _resnet18(size=(1, 16, 16), pretrained=str(tmp_path / "rgb.pth"))
    assert torch.allclose(gray.conv1.weight, src.conv1.weight.sum(1, keepdim=True))
    assert "adapted from 3 to 1 channels" in gray.pretrained_info.notes[0]


def test_auxiliary_classifiers_in_the_file_are_ignored_when_the_model_has_none(tmp_path):
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    torch.save(tv.state_dict(), tmp_path / "googlenet.pth")
    model = create_model("googlenet", num_classes=4, input_size=(3, 32, 32),
                         pretrained=tmp_path / "googlenet.pth")  # fmt: skip
    assert torch.equal(model.inception5b.branch1.conv.weight, tv.inception5b.branch1.conv.weight)
    assert model.pretrained_info.fresh_head and model.fc.out_features == 4


def test_wrong_architecture_lists_the_keys(tmp_path):
    torch.save(create_model("lenet5").state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(ValueError) as e:
        _resnet18(pretrained=str(tmp_path / "lenet.pth"))
    msg = str(e.value)
    assert "lenet.pth: weights do not fit resnet18" in msg
    assert "missing" in msg and "conv1.weight" in msg and "unexpected" in msg


def test_mis_shaped_base_tensor_is_an_error(tmp_path):
    sd = _resnet18().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"layer1.0.conv1.weight file \(64, 64, 1, 1\) vs model"):
        _resnet18(pretrained=str(tmp_path / "bad.pth"))


def test_missing_or_unreadable_local_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        _resnet18(pretrained=str(tmp_path / "nothere.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot read weights"):
        _resnet18(pretrained=str(tmp_path / "junk.pth"))


def test_timm_names_without_timm_are_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ValueError, match=r"optional timm package"):
        _resnet18(pretrained="timm:resnet18.a1_in1k")


def test_timm_weights_load_offline_through_timm(monkeypatch):
    import types

    src = _resnet18(num_classes=1000)
    seen = {}

    def create(name, pretrained):
        seen.update(name=name, offline=os.environ.get("HF_HUB_OFFLINE"))
        if name == "missing":
            raise RuntimeError("not in the cache")
        return src  # timm's resnet18 has torchvision's key names

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model = _resnet18(num_classes=3, pretrained="timm:resnet18.a1_in1k")
    assert seen == {"name": "resnet18.a1_in1k", "offline": "1"}  # never the network
    assert "HF_HUB_OFFLINE" not in os.environ
    assert _same_base(src, model) and model.pretrained_info.kind == "timm"
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        _resnet18(pretrained="timm:missing")


# --- Keras ---------------------------------------------------------------------------------


def test_dense_after_flatten_is_permuted_from_hwc_to_chw():
    from cnnkit.models.keras_convert import _from_hwc

    rng = np.random.default_rng(0)
    fmap = rng.standard_normal((4, 2, 2))  # (C, H, W)
    kernel = rng.standard_normal((2 * 2 * 4, 3))  # Keras Dense kernel (H*W*C, out)
    keras_out = fmap.transpose(1, 2, 0).reshape(-1) @ kernel  # Keras flattens (H, W, C)
    w = _from_hwc(torch.tensor(kernel.T), channels=4)
    torch_out = w @ torch.tensor(fmap).reshape(-1)  # torch.flatten: (C, H, W)
    assert np.allclose(torch_out.numpy(), keras_out)


def _h5py(require):
    try:
        import h5py
    except ImportError:
        h5py = None
    require(h5py is not None, "h5py (pip install h5py) to write Keras weight files")
    return h5py


def test_keras_file_for_an_unsupported_model_or_a_non_keras_file(tmp_path, require):
    h5py = _h5py(require)

    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
        f.create_group("block1_conv1").attrs["weight_names"] = [b"block1_conv1/kernel:0"]
        f["block1_conv1"].create_dataset("block1_conv1/kernel:0", data=np.zeros((3, 3, 3, 64)))
    with pytest.raises(ValueError, match="no Keras weight converter for resnet18"):
        _resnet18(pretrained=str(tmp_path / "x.h5"))
    with pytest.raises(ValueError, match=r"no counterpart in mobilenet.*block1_conv1"):
        create_model("mobilenet", input_size=(3, 32, 32), pretrained=tmp_path / "x.h5")
    (tmp_path / "y.h5").write_bytes(b"plain text")
    with pytest.raises(ValueError, match="y.h5: not an HDF5 file"):
        create_model("mobilenet", input_size=(3, 32, 32), pretrained=tmp_path / "y.h5")


def test_keras_layer_without_counterpart_is_named(tmp_path, require):
    h5py = _h5py(require)

    with h5py.File(tmp_path / "m.weights.h5", "w") as f:
        v = f.create_group("layers/dense/vars")
        v.attrs["name"] = "mystery_dense"
        v.create_dataset("0", data=np.zeros((4, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"no counterpart in mobilenet.*mystery_dense"):
        create_model("mobilenet", input_size=(3, 32, 32), pretrained=tmp_path / "m.weights.h5")


KERAS_SCRIPT = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
import numpy as np
import keras

arch, top, size, out = sys.argv[1], sys.argv[2] == "top", int(sys.argv[3]), sys.argv[4]
builders = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19,
            "xception": keras.applications.Xception, "mobilenet": keras.applications.MobileNet}
kw = dict(weights=None, include_top=top, input_shape=(size, size, 3))
if top:
    kw.update(classes=7, classifier_activation=None)
model = builders[arch](**kw)
rng = np.random.default_rng(0)
for layer in model.layers:  # random weights everywhere, BN statistics included
    ws = layer.get_weights()
    if ws and type(layer).__name__ == "BatchNormalization":
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in ws])
    elif ws:
        layer.set_weights([(rng.standard_normal(w.shape) / np.sqrt(max(np.prod(w.shape[:-1]), 1)))
                           .astype("float32") for w in ws])
x = rng.uniform(-1, 1, (2, size, size, 3)).astype("float32")
np.save(os.path.join(out, "x.npy"), x)
np.save(os.path.join(out, "y.npy"), model.predict(x, verbose=0))
model.save_weights(os.path.join(out, "model.weights.h5"))
model.save(os.path.join(out, "model.h5"))
"""


def _tf_python() -> Path:
    env = os.environ.get("CNNKIT_TF_PYTHON")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".peers-venv/bin/python"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "top", "size"),
    [("vgg16", False, 32), ("xception", True, 71), ("mobilenet", True, 32)],
)
def test_keras_weights_convert_and_match_keras_outputs(tmp_path, require, arch, top, size):
    py = _tf_python()
    require(py.exists(), f"TensorFlow/Keras python at {py} (set CNNKIT_TF_PYTHON)")
    script = tmp_path / "make.py"
    script.write_text(KERAS_SCRIPT)
    done = subprocess.run(
        [str(py), str(script), arch, "top" if top else "notop", str(size), str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    for name in ("model.weights.h5", "model.h5"):  # Keras 3 and legacy layouts
        model = create_model(
            arch, num_classes=7 if top else 0, input_size=(3, size, size), pooling=None,
            pretrained=tmp_path / name,
        ).eval()  # fmt: skip
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        if model.pretrained_info.preprocessing == "caffe":
            xt = xt.flip(1)  # Keras got BGR; the converted model takes RGB
        with torch.no_grad():
            out = model(xt).numpy()
        if out.ndim == 4:
            out = out.transpose(0, 2, 3, 1)
        assert out.shape == y.shape
        assert np.abs(out - y).max() <= 1e-4 * max(1.0, float(np.abs(y).max()))
        assert not model.pretrained_info.fresh_head


@pytest.mark.slow  # VGG16 builds its 120M-parameter head even for a base
def test_caffe_weights_set_caffe_preprocessing_on_the_card(tmp_path, require):
    h5py = _h5py(require)

    src = create_model("vgg16", num_classes=0, input_size=(3, 32, 32))
    convs = [m for m in src.features if isinstance(m, torch.nn.Conv2d)]
    names = [f"block{b}_conv{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in names]
        for n, conv in zip(names, convs, strict=True):
            g = f.create_group(n)
            g.attrs["weight_names"] = [f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()]
            g.create_dataset(f"{n}/kernel:0", data=conv.weight.detach().permute(2, 3, 1, 0).numpy())
            g.create_dataset(f"{n}/bias:0", data=conv.bias.detach().numpy())
    model = create_model(
        "vgg16", num_classes=4, input_size=(3, 32, 32), pretrained=tmp_path / "v.h5"
    )
    assert model.pretrained_info.preprocessing == "caffe" and model.pretrained_info.fresh_head
    assert model.classifier[6].out_features == 4
    assert torch.equal(model.features[0].weight, src.features[0].weight.flip(1))  # BGR -> RGB
    assert torch.equal(model.features[28].weight, src.features[28].weight)
    assert model.card.std == pytest.approx((1 / 255,) * 3)
    assert model.card.mean == pytest.approx((123.68 / 255, 116.779 / 255, 103.939 / 255))


def test_imagenet_is_the_cards_default_weights_from_local_caches_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache of its own
    with pytest.raises(FileNotFoundError) as e:  # torchvision's DEFAULT, in the hub cache
        _resnet18(pretrained="imagenet")
    msg = str(e.value)
    assert "'imagenet' for resnet18" in msg and str(_hub_dir() / "resnet18-f37072fd.pth") in msg
    assert "cnnkit weights fetch resnet18 imagenet" in msg
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(FileNotFoundError) as e:  # a Keras application: Keras' file and URL
        create_model("xception", input_size=(3, 71, 71), pretrained="ImageNet")
    msg = str(e.value)
    assert (
        str(tmp_path / "keras" / "models" / "xception_weights_tf_dim_ordering_tf_kernels.h5") in msg
    )
    assert (
        "https://storage.googleapis.com/tensorflow/keras-applications/xception/"
        "xception_weights_tf_dim_ordering_tf_kernels.h5" in msg
    )
    with pytest.raises(ValueError, match="lenet5 has no published ImageNet weights.*resnet18"):
        create_model("lenet5", pretrained="imagenet")


def test_a_missing_keras_file_names_its_download_url(tmp_path):
    missing = tmp_path / "mobilenet_1_0_224_tf.h5"
    with pytest.raises(FileNotFoundError) as e:
        create_model("mobilenet", input_size=(3, 32, 32), pretrained=str(missing))
    msg = str(e.value)
    assert str(missing) in msg
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/" in msg
    assert f"curl -L -o {missing}" in msg


def test_a_keras_file_that_is_not_the_published_one_is_refused(tmp_path, monkeypatch, require):
    h5py = _h5py(require)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    with h5py.File(
        tmp_path / "models" / "xception_weights_tf_dim_ordering_tf_kernels.h5", "w"
    ) as f:
        f.attrs["layer_names"] = []
    with pytest.raises(ValueError, match="md5 .* is not the 0a58e3b7378bc2990ea3b43d5981f1f6"):
        create_model("xception", input_size=(3, 71, 71), pretrained="imagenet")


def test_check_pretrained_finds_files_without_reading_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert pt.check_pretrained("resnet18", "timm:resnet18") is None
    (tmp_path / "w.pth").write_bytes(b"not read by the check")
    assert pt.check_pretrained("resnet18", str(tmp_path / "w.pth")) == str(tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        pt.check_pretrained("resnet18", "imagenet")
