"""Pretrained weights from local files only: never a hidden download.

``create_model(name, pretrained=W)`` calls :func:`load_pretrained`. ``W`` may be:

- ``"imagenet"`` (Keras' word): the model card's ImageNet weights (``card.imagenet_weights``:
  torchvision's ``DEFAULT`` for torchvision models, the Keras application file for Keras ones);
- a torchvision weight name (``"IMAGENET1K_V1"``, ``"DEFAULT"``,
  ``"ResNet18_Weights.IMAGENET1K_V1"``), read from the torch hub cache
  ``$TORCH_HOME/hub/checkpoints/<torchvision's file name>`` with torchvision's hash check
  (the sha256 prefix in the file name);
- a local ``.pth``/``.pt``/``.bin`` file (``torch.load(weights_only=True)``) or ``.safetensors``;
- a Keras application weight file (``.h5`` / ``.weights.h5``), converted by
  :mod:`cnnkit.models.keras_convert`; Keras' own file names
  (``xception_weights_tf_dim_ordering_tf_kernels.h5``) are looked up in the torch hub cache
  and in ``$KERAS_HOME/models`` (``~/.keras/models``, where Keras keeps them), with Keras'
  md5 check;
- ``"timm:NAME"`` when the optional ``timm`` extra is installed (offline: the Hugging Face
  cache only).

A missing file is one error naming where it was looked for, its download URL and the
command that fetches it on a machine with internet (``cnnkit weights fetch``, the only part of
cnnkit that downloads, and only when asked: :mod:`cnnkit.models.fetch`).

A classifier of another size (1,000-class weights into a 5-class model) keeps a fresh head
whose last layer starts at zero;
weights for 3 channels loaded into a 1-channel model have their first conv summed over
channels (as timm does). Anything else that does not fit is an error listing the keys.

>>> model = create_model("resnet18", num_classes=5, pretrained="backbone.safetensors")
>>> model.pretrained_info.fresh_head
True
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision.models as tvm
from safetensors.torch import load_file as load_safetensors
from torch import nn

from cnnkit.models.keras_convert import keras_card, keras_state
from cnnkit.models.registry import get_card, list_models

HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")  # torchvision/torch.hub: name-<sha256 prefix>.pth
IMAGENET = "imagenet"
"""Keras' word for a model's published ImageNet weights (``card.imagenet_weights``)."""

_KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_WEIGHT_FILES: dict[str, tuple[str, str | None]] = {
    # file name: (download URL, the md5 Keras checks it against; None: Keras publishes none)
    "xception_weights_tf_dim_ordering_tf_kernels.h5": (
        _KERAS_URL + "xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
        "0a58e3b7378bc2990ea3b43d5981f1f6",
    ),
    "xception_weights_tf_dim_ordering_tf_kernels_notop.h5": (
        _KERAS_URL + "xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "b0042744bf5b25fce3cb969f33bebb97",
    ),
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5": (
        _KERAS_URL + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        "64373286793e3c8b2b4e3219cbf3544b",
    ),
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5": (
        _KERAS_URL + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "6d6bbae143d832006294945121d1f1fc",
    ),
    "vgg19_weights_tf_dim_ordering_tf_kernels.h5": (
        _KERAS_URL + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        "cbe5617147190e668d6c5d5026f83318",
    ),
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5": (
        _KERAS_URL + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "253f8cb515780f3b799900260a226db6",
    ),
    "mobilenet_1_0_224_tf.h5": (_KERAS_URL + "mobilenet/mobilenet_1_0_224_tf.h5", None),
    "mobilenet_1_0_224_tf_no_top.h5": (
        _KERAS_URL + "mobilenet/mobilenet_1_0_224_tf_no_top.h5",
        None,
    ),
}
"""Keras application weight files cnnkit converts, as ``keras.applications`` fetches them."""
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
_MAX_LISTED = 8


@dataclass
class PretrainedInfo:
    """What :func:`load_pretrained` loaded, kept on the model as ``model.pretrained_info``.

    Attributes:
        spec: the ``pretrained`` argument as given.
        kind: ``torchvision``, ``file``, ``keras`` or ``timm``.
        path: the file read (None for timm).
        fresh_head: the classifier was not loaded (other size, or absent from the file).
        notes: what was adapted (first conv summed over channels, skipped keys...).
        preprocessing: Keras preprocessing mode of converted weights (``caffe``/``tf``).
        categories: class names of a loaded ImageNet head (torchvision's weight metadata),
            None when the head is fresh or the source has no names.
    """

    spec: str
    kind: str
    path: str | None
    fresh_head: bool = False
    notes: list[str] = field(default_factory=list)
    preprocessing: str | None = None
    categories: list[str] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for config.json and the report); categories as a count."""
        d = asdict(self)
        d["categories"] = len(self.categories) if self.categories else None
        return d


def load_pretrained(model: Any, name: str, pretrained: Any) -> PretrainedInfo:
    """Load ``pretrained`` weights into ``model`` (built by ``create_model(name, ...)``).

    Args:
        model: a cnnkit model.
        name: its registry name (``"resnet18"``).
        pretrained: weight name, file path, ``"timm:NAME"`` or ``True`` (= ``"DEFAULT"``).

    Returns:
        A :class:`PretrainedInfo`, also stored as ``model.pretrained_info``.

    Raises:
        FileNotFoundError: the weight file is missing (the message says where to put it
            and the command that fetches it).
        ValueError: unknown weight name, wrong hash, or weights that do not fit the model.
    """
    spec = "DEFAULT" if pretrained is True else pretrained
    if not isinstance(spec, str | os.PathLike):
        raise TypeError(
            "pretrained must be a weight name, a file path or 'timm:NAME'. "
            f"Received: pretrained={pretrained!r}"
        )
    given = spec = os.fspath(spec)
    spec = resolve_imagenet(name, spec)
    if spec.startswith("timm:"):
        info = _load_timm(model, spec)
    elif is_keras_file_name(spec):
        info = _load_file(model, name, str(keras_weights_path(name, spec, given)), given)
    elif _looks_like_path(spec):
        info = _load_file(model, name, spec)
    else:
        path = torchvision_weights_path(name, spec, given)
        check_hash(path)
        state = read_state_dict(path)
        info = PretrainedInfo(given, "torchvision", str(path))
        load_state_into(model, _fix_legacy_keys(name, state), str(path), info)
        if not info.fresh_head and model.num_classes:
            info.categories = torchvision_categories(name, spec)
    model.pretrained_info = info
    return info


def resolve_imagenet(name: str, spec: str) -> str:
    """``"imagenet"`` (any case) -> the card's ImageNet weights; any other ``spec`` as given.

    Raises:
        ValueError: the model has no published ImageNet weights (names those that do).
    """
    if spec.strip().lower() != IMAGENET:
        return spec
    card = get_card(name)
    if card.imagenet_weights:
        return card.imagenet_weights
    have = [n for n in list_models() if get_card(n).imagenet_weights]
    raise ValueError(
        f"{card.name} has no published ImageNet weights; pretrained='imagenet' works for "
        f"{', '.join(have)}. Received: pretrained={spec!r}"
    )


def is_keras_file_name(spec: str) -> bool:
    """A Keras application weight file named without a folder (looked up in the caches)."""
    return spec in KERAS_WEIGHT_FILES and not Path(spec).exists()


def keras_cache_dirs() -> list[Path]:
    """Where Keras application files are looked for: the torch hub cache (where ``cnnkit
    weights fetch`` puts them), then Keras' own (``$KERAS_HOME/models``, ``~/.keras/models``)."""
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return [Path(torch.hub.get_dir()) / "checkpoints", keras_home / "models"]


def keras_weights_path(name: str, file_name: str, given: str | None = None) -> Path:
    """The Keras application weight file ``file_name`` in the first cache that has it.

    Raises:
        FileNotFoundError: in no cache (with the URL and the command that fetches it).
    """
    found = [d / file_name for d in keras_cache_dirs() if (d / file_name).is_file()]
    if found:
        return found[0]
    url = KERAS_WEIGHT_FILES[file_name][0]
    where = " or ".join(str(d / file_name) for d in keras_cache_dirs())
    raise FileNotFoundError(
        f"pretrained weights {given or file_name!r} for {name} are not on this machine: expected "
        f"{where}. cnnkit never downloads by itself; on a machine with internet run "
        f"`cnnkit weights fetch {name} {given or file_name}`, or download {url} "
        f"({fetch_command(url, keras_cache_dirs()[0] / file_name)}), and copy the file there"
    )


def check_pretrained(name: str, pretrained: Any) -> str | None:
    """Find ``pretrained``'s weight file for model ``name`` without reading it, so a run can
    fail before it decodes any data. None for timm names (timm finds its own).

    Raises:
        FileNotFoundError, ValueError: as :func:`load_pretrained` would.
    """
    spec = resolve_imagenet(name, os.fspath("DEFAULT" if pretrained is True else pretrained))
    if spec.startswith("timm:"):
        return None
    if is_keras_file_name(spec):
        return str(keras_weights_path(name, spec, os.fspath(pretrained)))
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(_missing_file_message(path, spec))
        return str(path)
    return str(torchvision_weights_path(name, spec, os.fspath(pretrained)))


def _looks_like_path(spec: str) -> bool:
    suffixes = TORCH_SUFFIXES + KERAS_SUFFIXES + (".safetensors",)
    return spec.lower().endswith(suffixes) or os.sep in spec or Path(spec).exists()


def _missing_file_message(path: Path, spec: str) -> str:
    """A missing weight file; a Keras application file is named with its download URL."""
    msg = (
        f"pretrained weight file not found: {path}. Expected a .pth/.pt, .safetensors or "
        f"Keras .h5 file. Received: pretrained={spec!r}"
    )
    if path.name in KERAS_WEIGHT_FILES:
        url = KERAS_WEIGHT_FILES[path.name][0]
        msg += f". It is Keras' {path.name}, downloaded from {url} ({fetch_command(url, path)})"
    return msg


def _load_file(model: nn.Module, name: str, spec: str, given: str | None = None) -> PretrainedInfo:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(_missing_file_message(path, spec))
    if path.name.lower().endswith(KERAS_SUFFIXES):
        check_keras_hash(path)
        state, mode = keras_state(model, name, path, given or spec)
        info = PretrainedInfo(given or spec, "keras", str(path), preprocessing=mode)
        load_state_into(model, state, str(path), info)
        keras_card(model, mode)
        return info
    info = PretrainedInfo(given or spec, "file", str(path))
    load_state_into(model, read_state_dict(path), str(path), info)
    return info


def torch_load_reason(e: BaseException) -> str:
    """Why ``torch.load`` (or safetensors) could not read a file, in one line, and never with
    torch's advice to retry with ``weights_only=False`` (that would run the code it holds)."""
    text = str(e).strip()
    if "weights only load failed" in text.lower() or "weights_only" in text:
        found = re.search(r"GLOBAL (\S+)", text)
        what = f" such as {found.group(1)}" if found else ""
        return f"it holds pickled objects{what}, not only tensors; cnnkit never unpickles code"
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``torch.save`` file (``weights_only=True``).

    A checkpoint dict holding the weights under ``state_dict``/``model`` is unwrapped and
    a ``module.`` prefix (DataParallel/DDP) is dropped.

    Raises:
        ValueError: the file cannot be read as weights.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            state: Any = load_safetensors(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised naming the file
        raise ValueError(f"{path}: cannot read weights ({torch_load_reason(e)})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path}: expected a state dict of tensors. Received: {type(state).__name__}"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


# --- torchvision names and the hub cache -------------------------------------------------


def torchvision_weights_path(name: str, weight: str, given: str | None = None) -> Path:
    """Where torchvision's ``weight`` file for model ``name`` lives in the hub cache.

    Args:
        name: cnnkit model name (same as torchvision's for torchvision models).
        weight: ``"IMAGENET1K_V1"``, ``"DEFAULT"`` or ``"ResNet18_Weights.IMAGENET1K_V1"``.
        given: what the user wrote (``"imagenet"``), for the message.

    Returns:
        ``$TORCH_HOME/hub/checkpoints/<file>``, the existing file.

    Raises:
        ValueError: no torchvision weights of that name for this model.
        FileNotFoundError: the file is not in the cache (with the command that fetches it).
    """
    url = torchvision_weights_url(name, weight)
    path = hub_checkpoint_path(url)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {given or weight!r} for {name} are not on this machine: "
            f"expected {path} (torch hub cache, $TORCH_HOME/hub/checkpoints). cnnkit never "
            f"downloads by itself; on a machine with internet run `cnnkit weights fetch {name} "
            f"{given or weight}`, or download {url} ({fetch_command(url, path)}), and copy the "
            f"file to {path.parent}/"
        )
    return path


def torchvision_weights_url(name: str, weight: str) -> str:
    """The download URL torchvision records for ``weight`` of model ``name``."""
    try:
        enum = tvm.get_model_weights(name)
    except (ValueError, KeyError):
        raise ValueError(
            f"{name} has no torchvision weights; use a local .pth/.safetensors file, a Keras "
            f".h5 file or 'timm:NAME'. Received: pretrained={weight!r}"
        ) from None
    short = weight.rpartition(".")[2]
    if short not in enum.__members__:
        raise ValueError(
            f"unknown torchvision weights for {name}: expected one of "
            f"{', '.join(enum.__members__)}. Received: pretrained={weight!r}"
        )
    if "." in weight and weight.partition(".")[0] != enum.__name__:
        raise ValueError(f"{weight!r} are not weights of {name} (expected {enum.__name__}.*)")
    return enum[short].url


def torchvision_categories(name: str, weight: str) -> list[str] | None:
    """The class names torchvision's weight metadata lists (ImageNet's 1,000), if any."""
    enum = tvm.get_model_weights(name)
    return list(enum[weight.rpartition(".")[2]].meta.get("categories") or []) or None


def hub_checkpoint_path(url: str) -> Path:
    """``$TORCH_HOME/hub/checkpoints/<basename of url>`` (torch.hub's layout)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def fetch_command(url: str, path: Path) -> str:
    """The one-line shell command that downloads ``url`` to ``path``."""
    return f"mkdir -p {path.parent} && curl -L -o {path} {url}"


def check_hash(path: Path) -> None:
    """torchvision's check: the file's sha256 starts with the hex prefix in its name.

    Raises:
        ValueError: the digest does not match (a damaged or substituted file).
    """
    m = HASH_REGEX.search(path.name)
    if not m or not m.group(1):
        return
    got = file_digest(path)
    if not got.startswith(m.group(1)):
        raise ValueError(
            f"{path}: sha256 {got[: len(m.group(1))]}... does not match the prefix "
            f"{m.group(1)!r} in its name (damaged or substituted download); delete it and "
            "fetch it again"
        )


def check_keras_hash(path: Path) -> None:
    """Keras' check of its application files: the md5 ``keras.applications`` records.

    Raises:
        ValueError: the digest does not match (a damaged or substituted download).
    """
    want = KERAS_WEIGHT_FILES.get(path.name, ("", None))[1]
    if want is None:
        return
    got = file_digest(path, "md5")
    if got != want:
        raise ValueError(
            f"{path}: md5 {got} is not the {want} Keras publishes for {path.name} (damaged or "
            "substituted download); delete it and fetch it again"
        )


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fix_legacy_keys(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DenseNet checkpoints name ``norm.1`` what the modules call ``norm1`` (as torchvision)."""
    if not name.startswith("densenet"):
        return state
    pat = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    out = {}
    for k, v in state.items():
        m = pat.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


# --- fitting a state dict into the model --------------------------------------------------


def _head_prefixes(model: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(prefixes of the final classifier, prefixes of the whole head) as ``"name."``."""
    card = getattr(model, "card", None)
    clf: tuple[str, ...] = (card.classifier + ".",) if card is not None and card.classifier else ()
    clf += ("AuxLogits.fc.",)  # Inception v3's auxiliary classifier follows num_classes
    names = getattr(model, "_head_module_names", lambda: ())()
    return clf, tuple(n + "." for n in names) + AUX_HEADS


def load_state_into(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, info: PretrainedInfo
) -> None:
    """Load ``state`` into ``model``: base strictly, classifier only when it fits.

    Raises:
        ValueError: keys missing, unexpected or mis-shaped outside the classifier (listed).
    """
    own = model.state_dict()
    clf, head = _head_prefixes(model)
    state = _adapt_first_conv(model, own, dict(state), info)
    is_base = getattr(model, "num_classes", 1) == 0
    skip = clf if not is_base else head
    skipped = [
        k for k in state if k.startswith(skip) and (k not in own or own[k].shape != state[k].shape)
    ]
    state = {k: v for k, v in state.items() if k not in set(skipped)}
    state = _drop_absent_aux(own, state)
    missing = [k for k in own if k not in state and not k.startswith(head)]
    extra = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or shaped:
        raise ValueError(_misfit_message(source, model, own, state, missing, extra, shaped))
    model.load_state_dict(state, strict=False)
    if any(k not in state for k in own if k.startswith(head)) or skipped:
        info.fresh_head = not is_base
        if info.fresh_head:
            zero_classifier(model)
        if skipped:
            info.notes.append(f"skipped {len(skipped)} head tensors ({', '.join(skipped[:4])})")


def zero_classifier(model: nn.Module) -> None:
    """A fresh classifier on pretrained features starts at zero (uniform predictions).

    Pretrained features are large; a randomly initialised last layer turns them into large
    random logits (loss far above ln K) that the first hundred steps only undo.
    """
    get = getattr(model, "get_classifier", None)
    clf = get() if callable(get) else None
    if isinstance(clf, nn.Module):
        for p in clf.parameters():
            nn.init.zeros_(p)


AUX_HEADS = ("AuxLogits.", "aux1.", "aux2.")  # Inception v3 / GoogLeNet auxiliary classifiers


def _drop_absent_aux(own: dict, state: dict) -> dict:
    """Auxiliary-classifier tensors of the file are ignored when the model has none."""
    absent = tuple(p for p in AUX_HEADS if not any(k.startswith(p) for k in own))
    return {k: v for k, v in state.items() if not k.startswith(absent)} if absent else state


def _misfit_message(source, model, own, state, missing, extra, shaped) -> str:
    arch = getattr(getattr(model, "card", None), "name", type(model).__name__)
    parts = [f"{source}: weights do not fit {arch} (wrong architecture?)"]
    if missing:
        parts.append(f"missing {len(missing)} keys: {missing[:_MAX_LISTED]}")
    if extra:
        parts.append(f"unexpected {len(extra)} keys: {extra[:_MAX_LISTED]}")
    if shaped:
        listed = [
            f"{k} file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in shaped[:_MAX_LISTED]
        ]
        parts.append(f"{len(shaped)} shape mismatches: {listed}")
    return "; ".join(parts)


def _adapt_first_conv(model: nn.Module, own: dict, state: dict, info: PretrainedInfo) -> dict:
    """Weights for 3 input channels into a 1-channel model: sum the first conv's kernels."""
    card = getattr(model, "card", None)
    key = f"{card.first_conv}.weight" if card is not None and card.first_conv else None
    if key is None or key not in state or key not in own:
        return state
    w, want = state[key], own[key]
    if w.ndim < 3 or w.shape[1] == want.shape[1] or w.shape[0] != want.shape[0]:
        return state
    if want.shape[1] == 1:
        state[key] = w.sum(dim=1, keepdim=True)
    else:  # repeat the channels and rescale so activations keep their size
        reps = -(-want.shape[1] // w.shape[1])
        state[key] = w.repeat(1, reps, *([1] * (w.ndim - 2)))[:, : want.shape[1]]
        state[key] = state[key] * (w.shape[1] / want.shape[1])
    info.notes.append(f"first conv {key} adapted from {w.shape[1]} to {want.shape[1]} channels")
    return state


# --- timm (optional) ----------------------------------------------------------------------


def _load_timm(model: nn.Module, spec: str) -> PretrainedInfo:
    try:
        import timm
    except ImportError:
        raise ValueError(
            f"timm weights need the optional timm package (pip install 'cnnkit[timm]'). "
            f"Received: pretrained={spec!r}"
        ) from None
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # the Hugging Face cache only, never the network
    try:
        src = timm.create_model(spec.removeprefix("timm:"), pretrained=True)
    except Exception as e:  # noqa: BLE001 - timm raises many kinds for a missing file
        raise FileNotFoundError(
            f"timm weights {spec!r} are not in the local Hugging Face cache ({e}). On a machine "
            f"with internet run: python -c \"import timm; timm.create_model('"
            f"{spec.removeprefix('timm:')}', pretrained=True)\" and copy ~/.cache/huggingface"
        ) from None
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old
    info = PretrainedInfo(spec, "timm", None)
    load_state_into(model, src.state_dict(), spec, info)
    return info
