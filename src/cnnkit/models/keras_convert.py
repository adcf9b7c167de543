"""Keras application weight files (``.h5``, ``.weights.h5``) converted into cnnkit models.

Supported: ``vgg16``, ``vgg19`` (torchvision layout; Keras' ``caffe`` preprocessing),
``xception`` and ``mobilenet`` (Keras layer names; ``tf`` preprocessing). Both file
layouts are read with h5py: Keras 2 / legacy ``model.save("x.h5")`` files (``layer_names``
and ``weight_names`` attributes, as the files Keras applications download) and Keras 3
``model.save_weights("x.weights.h5")`` files (``layers/<key>/vars/<i>``, the layer name
in the ``vars`` group's ``name`` attribute).

Kernels are transposed from Keras' ``(kh, kw, in, out)`` to PyTorch's ``(out, in, kh, kw)``;
the first Dense after ``Flatten`` is permuted from Keras' ``(H, W, C)`` flatten order to
PyTorch's ``(C, H, W)``. Keras ResNet50 is ResNet v1 (stride in the first 1x1 conv) while
cnnkit's resnet50 is torchvision's v1.5 (stride in the 3x3 conv), so it cannot be
converted exactly and is refused.

``caffe`` weights take BGR input with the ImageNet mean subtracted (0..255, no scaling);
the converter reverses the first conv's input channels so the model takes RGB, and sets
the card's mean/std to ``mean/255`` and ``1/255`` so cnnkit's normaliser reproduces it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit.models.layers import SeparableConv2d
from cnnkit.optional import needs

CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
KERAS_MODES = {"vgg16": "caffe", "vgg19": "caffe", "xception": "tf", "mobilenet": "tf"}
_UNNAMED = re.compile(r"^(conv2d|batch_normalization)(?:_(\d+))?$")

KerasLayers = list[tuple[str, list[np.ndarray]]]


def read_keras_h5(path: str | Path) -> KerasLayers:
    """``(layer name, [weight arrays in Keras order])`` for each layer with weights.

    Raises:
        ValueError: the file is not a Keras weight file (names the file).
    """
    with needs(f"reading the Keras weight file {path}"):
        import h5py
    try:
        with h5py.File(path, "r") as f:
            if "layers" in f and "layer_names" not in f.attrs:
                return _read_keras3(f["layers"])
            g = f.get("model_weights", f)
            if "layer_names" not in g.attrs:
                raise ValueError("no 'layer_names' attribute and no 'layers' group")
            return _read_legacy(g)
    except OSError as e:
        raise ValueError(f"{path}: not an HDF5 file ({e})") from e
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a Keras weight file ({e})") from e


def _text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _read_legacy(g: Any) -> KerasLayers:
    out = []
    for name in map(_text, g.attrs["layer_names"]):
        names = [_text(w) for w in g[name].attrs.get("weight_names", [])]
        if names:
            out.append((name, [np.asarray(g[name][w]) for w in names]))
    return out


def _read_keras3(layers: Any) -> KerasLayers:
    out = []
    for key in layers:
        vars_ = layers[key].get("vars")
        if vars_ is None or not len(vars_):
            continue
        name = _text(vars_.attrs.get("name", key))
        out.append((name, [np.asarray(vars_[i]) for i in sorted(vars_, key=int)]))
    return out


def keras_state(
    model: Any, name: str, path: Path, spec: str
) -> tuple[dict[str, torch.Tensor], str]:
    """The Keras weight file ``path`` converted to ``model``'s tensor names (a cnnkit ``name``
    model), and the Keras preprocessing mode the weights expect (``caffe``/``tf``); caffe
    weights' first convolution is turned from BGR to RGB. Loading it is
    :func:`cnnkit.models.pretrained.load_state_into`'s, then :func:`keras_card`'s.

    Raises:
        ValueError: the model has no Keras converter, or the file does not fit it.
    """
    if name not in KERAS_MODES:
        raise ValueError(
            f"no Keras weight converter for {name}: supported are {', '.join(KERAS_MODES)} "
            f"(Keras ResNet50 is v1, cnnkit's resnet50 is torchvision's v1.5). "
            f"Received: pretrained={spec!r}"
        )
    layers = read_keras_h5(path)
    targets = _targets(model, name)
    state = _convert(layers, targets, model, str(path))
    mode = KERAS_MODES[name]
    if mode == "caffe":
        _to_rgb(state, model)
    return state, mode


def keras_card(model: Any, mode: str) -> None:
    """Give a model loaded with Keras weights of preprocessing ``mode`` the matching card
    normalisation (caffe: ImageNet means in 0..255 order, no scaling)."""
    if mode == "caffe":
        _set_caffe_card(model)


def _targets(model: Any, name: str) -> dict[str, nn.Module]:
    """Keras layer name -> torch module; unnamed Keras layers under ``#conv2d/#bn`` lists."""
    if name.startswith("vgg"):
        return _vgg_targets(model)
    named: dict[str, Any] = {"#conv2d": [], "#batch_normalization": []}
    seps: list[str] = []
    for path, m in model.named_modules():
        if any(path.startswith(s + ".") for s in seps) or not isinstance(
            m, SeparableConv2d | nn.Conv2d | nn.BatchNorm2d | nn.Linear
        ):
            continue
        if isinstance(m, SeparableConv2d):
            seps.append(path)
        parent, _, leaf = path.rpartition(".")
        if leaf.isdigit():  # Keras leaves these unnamed (Xception's shortcut conv + BN)
            named["#conv2d" if isinstance(m, nn.Conv2d) else "#batch_normalization"].append(m)
            continue
        named[leaf] = m
        block = parent.rpartition(".")[2]
        if block.startswith("block") and not leaf.startswith("block"):
            named[f"{block}_{leaf}"] = m  # Xception: features.block5.sepconv1 = block5_sepconv1
    return named


def _vgg_targets(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    block, i = 1, 0
    for n, path in enumerate(model.card.block_groups):  # features.<i> of every conv, in order
        if n and _pool_between(model, path):
            block, i = block + 1, 0
        i += 1
        out[f"block{block}_conv{i}"] = model.get_submodule(path)
    if model.num_classes:
        for keras, idx in (("fc1", 0), ("fc2", 3), ("predictions", 6)):
            out[keras] = model.classifier[idx]
        out["fc1"] = (out["fc1"], "flatten")
    return out


def _pool_between(model: Any, path: str) -> bool:
    idx = int(path.rpartition(".")[2])
    return isinstance(model.features[idx - 1], nn.MaxPool2d)


def _convert(layers: KerasLayers, targets: dict[str, Any], model: Any, source: str) -> dict:
    paths = {id(m): p for p, m in model.named_modules()}
    unnamed: dict[str, list] = {"conv2d": [], "batch_normalization": []}
    state: dict[str, torch.Tensor] = {}
    unused = []
    for lname, arrays in layers:
        m = _UNNAMED.match(lname)
        if lname not in targets and m:
            unnamed[m.group(1)].append((int(m.group(2) or 0), arrays))
            continue
        if lname not in targets:
            unused.append(lname)
            continue
        _put(state, targets[lname], arrays, paths, model)
    for kind, items in unnamed.items():
        mods = targets.get(f"#{kind}", [])
        if len(items) != len(mods):
            unused += [f"{kind}_{n}" for n, _ in items]
            continue
        for (_, arrays), mod in zip(sorted(items, key=lambda t: t[0]), mods, strict=True):
            _put(state, mod, arrays, paths, model)
    if unused:
        raise ValueError(
            f"{source}: Keras layers with no counterpart in {model.card.name} (wrong "
            f"architecture?): {unused[:8]}{' ...' if len(unused) > 8 else ''}"
        )
    return state


def _put(state: dict, target: Any, arrays: list[np.ndarray], paths: dict, model: Any) -> None:
    flatten = isinstance(target, tuple)
    mod = target[0] if flatten else target
    p = paths[id(mod)]
    t = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]
    if isinstance(mod, SeparableConv2d):
        state[f"{p}.depthwise.weight"] = _depthwise(t[0])
        state[f"{p}.pointwise.weight"] = t[1].permute(3, 2, 0, 1)
        if len(t) > 2:
            state[f"{p}.pointwise.bias"] = t[2]
    elif isinstance(mod, nn.Conv2d):
        depthwise = mod.groups > 1 and t[0].shape[-1] * mod.groups == mod.out_channels
        state[f"{p}.weight"] = _depthwise(t[0]) if depthwise else t[0].permute(3, 2, 0, 1)
        if len(t) > 1:
            state[f"{p}.bias"] = t[1]
    elif isinstance(mod, nn.BatchNorm2d):
        for key, a in zip(("weight", "bias", "running_mean", "running_var"), t, strict=False):
            state[f"{p}.{key}"] = a
        state[f"{p}.num_batches_tracked"] = torch.tensor(0)
    else:  # Dense: (in, out) -> (out, in)
        w = t[0].t()
        state[f"{p}.weight"] = _from_hwc(w, model.num_features) if flatten else w
        state[f"{p}.bias"] = t[1]
    for k in list(state):
        state[k] = state[k].contiguous()


def _depthwise(k: torch.Tensor) -> torch.Tensor:
    """Keras depthwise kernel ``(kh, kw, C, M)`` -> PyTorch ``(C*M, 1, kh, kw)``."""
    kh, kw, c, mult = k.shape
    return k.permute(2, 3, 0, 1).reshape(c * mult, 1, kh, kw)


def _from_hwc(w: torch.Tensor, channels: int) -> torch.Tensor:
    """Dense weight ``(out, H*W*C)`` in Keras flatten order -> ``(out, C*H*W)``.

    Shape:
        ``(O, H*W*C) -> (O, C*H*W)``.
    """
    out, n = w.shape
    hw = n // channels
    side = int(round(hw**0.5))
    if side * side * channels != n:
        return w  # not a square map: load_state_into reports the shape mismatch
    return w.reshape(out, side, side, channels).permute(0, 3, 1, 2).reshape(out, n)


def _to_rgb(state: dict, model: Any) -> None:
    """Reverse the first conv's input channels: caffe weights expect BGR."""
    key = f"{model.card.first_conv}.weight"
    if key in state and state[key].shape[1] == 3:
        state[key] = state[key].flip(1).contiguous()


def _set_caffe_card(model: Any) -> None:
    """caffe preprocessing (``x - mean`` on 0..255) as cnnkit mean/std for 0..1 inputs."""
    c = model.in_chans
    mean = tuple(m / 255.0 for m in CAFFE_MEAN_RGB)
    if c != 3:
        mean = (sum(mean) / 3,) * c
    model.card = replace(model.card, mean=mean, std=(1.0 / 255.0,) * c)
