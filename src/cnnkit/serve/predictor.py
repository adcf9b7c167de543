"""One prediction path for the CLI, Python and the HTTP server.

``Predictor`` decodes each input with the data layer's :func:`cnnkit.data.load_image`
(the same resize and colour handling as training, read from the run's config), runs the
model, and returns top-k labels. A file that cannot be decoded yields an error entry,
never an exception that ends a batch.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data.decode import load_image
from cnnkit.data.scan import iter_image_files
from cnnkit.errors import CnnkitError, ImageDecodeError, ModelOutputError
from cnnkit.runs import LoadedRun, load_run
from cnnkit.serve.batching import Coalescer
from cnnkit.serve.onnx_backend import OnnxSession, file_sha256

DECODE_SLOTS = 4
"""Most images decoded at the same time in one process (bounds peak memory)."""
_DECODE_SLOTS = threading.BoundedSemaphore(DECODE_SLOTS)


class Predictor:
    """Predict classes for images with a trained run.

    Args:
        run: a run folder path (or a :class:`cnnkit.runs.LoadedRun`).
        backend: ``torch`` (default) or ``onnx`` (needs ``RUN/model.onnx`` and onnxruntime).
        threads: onnxruntime intra-op threads (None = its default); PyTorch's are
            process-wide (``torch.set_num_threads``).

    Example:
        >>> p = Predictor("runs/digits")                       # doctest: +SKIP
        >>> p.predict_files(["seven.png"], top_k=3)[0]["label"]  # doctest: +SKIP
        '7'
    """

    def __init__(self, run: Any, backend: str = "torch", *, threads: int | None = None) -> None:
        self.run = run if isinstance(run, LoadedRun) else load_run(run)
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be torch or onnx. Received: backend={backend!r}")
        self.backend = backend
        # One forward pass at a time (threads would oversubscribe), concurrent calls batched.
        self._coalescer = Coalescer(self._forward, max_batch=64)
        self._onnx = None
        if backend == "onnx":
            self._onnx = OnnxSession(self.run.path / "model.onnx", threads=threads)
            _check_onnx_matches(self._onnx, self.run)

    @property
    def class_names(self) -> list[str]:
        return self.run.class_names

    def load(self, source: str | Path | Any, *, max_pixels: int | None = None) -> np.ndarray:
        """Decode one file (path, bytes or binary file object) to uint8 ``(C, H, W)``.

        At most :data:`DECODE_SLOTS` decodes run at once (a full-size image can take
        hundreds of MB while it is decoded; many server threads must not do it together).

        Args:
            source: what to decode.
            max_pixels: refuse larger images (decompression bombs); None = the data
                layer's default.
        """
        cfg = self.run.config
        with _DECODE_SLOTS:
            return load_image(
                source,
                image_size=self.run.image_size,
                color_mode=self.run.color_mode,
                interpolation=cfg.get("interpolation", "bilinear"),
                crop_to_aspect_ratio=bool(cfg.get("crop_to_aspect_ratio", False)),
                max_pixels=max_pixels,
            )

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, K)`` for uint8 images ``(N, C, H, W)``.

        Thread-safe: calls from concurrent threads (the server's) run one at a time, and
        those that arrive while another runs are batched together (see
        :class:`cnnkit.serve.batching.Coalescer`).
        """
        return self._coalescer(np.asarray(images))

    def _forward(self, images: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            x = self.run.preprocess(images).numpy()
            logits = self._onnx(x)
            return torch.softmax(torch.from_numpy(logits).float(), 1).numpy()
        return self.run.predict_proba(images).numpy()

    def top_k(self, probs: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """The ``k`` most probable labels of each row of ``probs``."""
        k = max(1, min(int(k), probs.shape[1]))
        order = np.argsort(-probs, axis=1)[:, :k]
        return [
            [{"label": self.class_names[j], "probability": float(p[j])} for j in row]
            for p, row in zip(probs, order, strict=True)
        ]

    def predict_arrays(
        self, images: np.ndarray, names: Sequence[str], top_k: int = 3
    ) -> list[dict]:
        """Entries ``{file, label, probability, top_k}`` for decoded images."""
        if len(images) == 0:
            return []
        probs = self.predict_proba(np.asarray(images))  # (N, C, H, W), also from a list
        finite = np.isfinite(probs).all(axis=1)  # NaN weights give NaN, never JSON's NaN
        return [
            {"file": str(n), "label": t[0]["label"], "probability": t[0]["probability"], "top_k": t}
            if ok
            else {"file": str(n), "error": str(not_finite(str(n), self.run.path))}
            for n, t, ok in zip(names, self.top_k(np.nan_to_num(probs), top_k), finite, strict=True)
        ]

    def predict_files(
        self, files: Iterable[str | Path], top_k: int = 3, batch_size: int = 64
    ) -> list[dict[str, Any]]:
        """Predict each file, and each image in each folder (recursively, as
        :func:`expand_inputs`); a file that fails becomes a ``{"file", "error"}`` entry, in
        order. Images are decoded ``batch_size`` at a time, so a large folder needs little
        memory."""
        results: list[dict[str, Any]] = []
        for chunk in _chunks(expand_inputs(files), batch_size):
            good: list[tuple[int, np.ndarray]] = []
            out: list[dict[str, Any] | None] = [None] * len(chunk)
            for i, (f, problem) in enumerate(chunk):
                try:
                    if problem:
                        raise ValueError(problem)
                    good.append((i, self.load(f)))
                except (CnnkitError, OSError, ValueError) as e:
                    out[i] = {"file": f, "error": _one_line(e, f)}
            if good:
                names = [chunk[i][0] for i, _ in good]
                preds = self.predict_arrays(np.stack([a for _, a in good]), names, top_k)
                for (i, _), p in zip(good, preds, strict=True):
                    out[i] = p
            results.extend(r for r in out if r is not None)
        return results

    def predict_bytes(
        self, uploads: Sequence[tuple[str, bytes]], top_k: int = 3, max_pixels: int | None = None
    ) -> list[dict[str, Any]]:
        """Like :meth:`predict_files` for in-memory files ``(name, data)``; nothing touches disk.

        Returns:
            One entry per upload, in order: ``{file, label, probability, top_k}`` or
            ``{file, error}`` (``error`` names the file and the problem).
        """
        results: list[dict[str, Any] | None] = [None] * len(uploads)
        good: list[tuple[int, np.ndarray]] = []
        for i, (name, data) in enumerate(uploads):
            buf = io.BytesIO(data)
            buf.name = name  # decode errors name the upload
            try:
                if not data:
                    raise ImageDecodeError(name, "empty", "0 bytes")
                good.append((i, self.load(buf, max_pixels=max_pixels)))
            except (CnnkitError, OSError, ValueError) as e:
                results[i] = {"file": name, "error": _one_line(e, name)}
        if good:
            preds = self.predict_arrays(
                np.stack([a for _, a in good]), [uploads[i][0] for i, _ in good], top_k
            )
            for (i, _), p in zip(good, preds, strict=True):
                results[i] = p
        return [r for r in results if r is not None]


def expand_inputs(inputs: Iterable[str | Path]) -> list[tuple[str, str]]:
    """The files to predict for ``inputs``: a file as given, a folder as the image files in
    it and its sub-folders (the extensions and order training uses; hidden files skipped).

    Returns:
        ``(path, problem)`` pairs; ``problem`` is empty, or says why a folder gave no file.
    """
    found: list[tuple[str, str]] = []
    for item in inputs:
        path = str(item)
        if not os.path.isdir(path):
            found.append((path, ""))
            continue
        images = iter_image_files(path)
        found.extend((f, "") for f in images)
        if not images:
            found.append((path, "no image files in this folder or its sub-folders"))
    return found


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for s in range(0, len(items), max(1, size)):
        yield items[s : s + size]


def predictions_csv(results: Sequence[dict[str, Any]], top_k: int = 3) -> str:
    """``predict``'s results as CSV text, one row per file, for R's ``read.csv`` or pandas.

    Columns: ``file, label, probability`` (the most probable class), ``label_2,
    probability_2`` ... up to ``top_k``, and ``error`` (empty unless the file failed; its
    other columns are then empty, which R reads as ``NA``).
    """
    k = max(1, int(top_k))
    header = ["file", "label", "probability"]
    for j in range(2, k + 1):
        header += [f"label_{j}", f"probability_{j}"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*header, "error"])
    for r in results:
        if "error" in r:
            writer.writerow([r["file"], *[""] * (len(header) - 1), r["error"]])
            continue
        ranked = list(r["top_k"])[:k]
        cells = [r["file"], r["label"], f"{r['probability']:.6g}"]
        for t in ranked[1:]:
            cells += [t["label"], f"{t['probability']:.6g}"]
        cells += [""] * (len(header) - len(cells))  # fewer classes than top_k
        writer.writerow([*cells, ""])
    return buf.getvalue()


def _check_onnx_matches(session: Any, run: Any) -> None:
    """Refuse an ONNX file exported from other weights or with other classes than ``run``."""
    meta = session.metadata
    if "class_names" in meta and list(meta["class_names"]) != run.class_names:
        raise CnnkitError(
            f"{session.path} has classes {meta['class_names']}, the run has "
            f"{run.class_names}; run `cnnkit export {run.path}` again"
        )
    digest = meta.get("weights_sha256")
    if digest and digest != file_sha256(run.path / "model.safetensors"):
        raise CnnkitError(
            f"{session.path} was exported from other weights than "
            f"{run.path / 'model.safetensors'}; run `cnnkit export {run.path}` again"
        )


def not_finite(name: str, run: Path | str) -> ModelOutputError:
    """The error for an image whose predicted probabilities are NaN or infinite."""
    weights = Path(run) / "model.safetensors"
    return ModelOutputError(
        f"{name}: the model's output is not a number (NaN or infinity); "
        f"the weights in {weights} may hold NaN or infinity"
    )


def _one_line(e: BaseException, path: str) -> str:
    msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
    if isinstance(e, FileNotFoundError):
        return f"file not found: {path}"
    return msg if path in msg else f"{path}: {msg}"


def predict(
    run: str | Path, files: Iterable[str | Path], top_k: int = 3, backend: str = "torch"
) -> list[dict[str, Any]]:
    """Top-k labels for each file (folders: each image in them, recursively) with the run in
    ``run`` (``cnnkit.predict``); :func:`predictions_csv` turns the result into a CSV."""
    return Predictor(run, backend=backend).predict_files(files, top_k=top_k)
