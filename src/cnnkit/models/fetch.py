"""``cnnkit weights fetch``: download published weights into the torch hub cache, on request.

cnnkit never downloads by itself (:mod:`cnnkit.models.pretrained` reads local files only).
This module is the one place that does, when a person asks on a machine with internet; the
file can then be copied to machines without. What it fetches is checked before it is kept:

- torchvision files against the sha256 prefix in their name (torch.hub's check);
- Keras application files against the md5 ``keras.applications`` records; a file Keras
  publishes no hash for (MobileNet v1) is kept only if cnnkit can load it into the model.

The download goes to a temporary file next to the target and is moved into place only once
it passed: an interrupted or wrong download never leaves a file that looks fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from cnnkit.models import create_model
from cnnkit.models.pretrained import (
    HASH_REGEX,
    KERAS_WEIGHT_FILES,
    file_digest,
    hub_checkpoint_path,
    resolve_imagenet,
    torchvision_weights_url,
)
from cnnkit.progress import Progress

_CHUNK = 1 << 20  # 1 MiB


@dataclass(frozen=True)
class WeightFile:
    """A published weight file: where it comes from, where cnnkit keeps it, its check.

    Attributes:
        url: the publisher's download URL.
        path: the file in the torch hub cache (``$TORCH_HOME/hub/checkpoints``).
        algorithm: ``sha256`` (a prefix, torchvision) or ``md5`` (Keras); None: no hash.
        digest: the expected hex digest (a prefix for sha256).
    """

    url: str
    path: Path
    algorithm: str | None
    digest: str | None


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_weights` did: the file, where from, and how it was checked."""

    path: Path
    url: str
    checked: str
    downloaded: bool


def weight_file(name: str, weights: str = "imagenet") -> WeightFile:
    """The published file behind ``weights`` of model ``name``.

    Args:
        name: a cnnkit model name.
        weights: ``imagenet``, a torchvision weight name or a Keras application file name.

    Raises:
        ValueError: no such published weights for this model.
    """
    spec = resolve_imagenet(name, weights)
    if spec in KERAS_WEIGHT_FILES:
        url, md5 = KERAS_WEIGHT_FILES[spec]
        path = Path(torch.hub.get_dir()) / "checkpoints" / spec
        return WeightFile(url, path, "md5" if md5 else None, md5)
    url = torchvision_weights_url(name, spec)
    path = hub_checkpoint_path(url)
    m = HASH_REGEX.search(path.name)
    prefix = m.group(1) if m and m.group(1) else None
    return WeightFile(url, path, "sha256" if prefix else None, prefix)


def fetch_weights(
    name: str, weights: str = "imagenet", *, mirror: str | None = None, progress: bool = True
) -> FetchResult:
    """Download ``weights`` of model ``name`` into the torch hub cache and check them.

    Args:
        name: a cnnkit model name.
        weights: ``imagenet`` (the card's), a torchvision weight name or a Keras file name.
        mirror: a base URL to fetch the same file name from instead of the publisher
            (a lab's copy).
        progress: report the download on stderr (:class:`cnnkit.progress.Progress`).

    Returns:
        A :class:`FetchResult`; ``downloaded`` is False when a good copy was already there.

    Raises:
        ValueError: the download does not pass its check (nothing is kept).
        OSError: the download failed (the URL and the reason are named).
    """
    wf = weight_file(name, weights)
    url = f"{mirror.rstrip('/')}/{wf.path.name}" if mirror else wf.url
    if wf.path.is_file() and _passes(wf, wf.path, name, weights):
        return FetchResult(wf.path, url, _checked(wf), downloaded=False)
    wf.path.parent.mkdir(parents=True, exist_ok=True)
    # (hidden, and ending in the real name, so a Keras file can be test-loaded as one)
    fd, tmp_name = tempfile.mkstemp(prefix=".fetch-", suffix=f"-{wf.path.name}", dir=wf.path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(url, out, wf.algorithm, progress)
        problem = _verify(wf, digest, tmp, name, weights)
        if problem:
            raise ValueError(f"{url}: {problem}; nothing was kept in {wf.path.parent}")
        os.replace(tmp, wf.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return FetchResult(wf.path, url, _checked(wf), downloaded=True)


def _checked(wf: WeightFile) -> str:
    if wf.algorithm == "sha256":
        return f"sha256 starts with {wf.digest} (torchvision)"
    if wf.algorithm == "md5":
        return f"md5 {wf.digest} (Keras)"
    return "no published hash: loaded into the model instead"


def _download(url: str, out: BinaryIO, algorithm: str | None, progress: bool) -> str | None:
    """Copy ``url`` to ``out``; the hex digest of what was written (None: no algorithm)."""
    digest = hashlib.new(algorithm) if algorithm else None
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (http/https only)
            size = int(answer.headers.get("Content-Length") or 0)
            with Progress(
                math.ceil(size / _CHUNK), f"fetching {url}", "MiB", enabled=progress
            ) as bar:
                for chunk in iter(lambda: answer.read(_CHUNK), b""):
                    out.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    bar.update()
    except (urllib.error.URLError, TimeoutError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise OSError(f"cannot download {url}: {reason}") from None
    return digest.hexdigest() if digest is not None else None


def _verify(wf: WeightFile, digest: str | None, path: Path, name: str, weights: str) -> str:
    """Why the downloaded file at ``path`` is not the published one ("" when it is)."""
    if wf.algorithm == "sha256" and not (digest or "").startswith(wf.digest or ""):
        return f"sha256 {(digest or '')[:12]}... does not start with the published {wf.digest}"
    if wf.algorithm == "md5" and digest != wf.digest:
        return f"md5 {digest} is not the published {wf.digest}"
    if wf.algorithm is None:
        return _loads(path, name, weights) or ""
    return ""


def _passes(wf: WeightFile, path: Path, name: str, weights: str) -> bool:
    """Whether the file already at ``path`` passes the check (then it is not fetched again)."""
    digest = file_digest(path, wf.algorithm) if wf.algorithm else None
    return _verify(wf, digest, path, name, weights) == ""


def _loads(path: Path, name: str, weights: str) -> str | None:
    """None when the file at ``path`` loads into model ``name``, else why not."""
    try:
        with torch.device("cpu"):
            create_model(name, pretrained=str(path))
    except (ValueError, OSError, KeyError) as e:
        return f"does not load as {weights} weights of {name} ({e})"
    return None
