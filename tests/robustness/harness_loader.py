"""Run the data loaders over a corpus in one process: ``python harness_loader.py ROOT FILES OUT``.

``FILES`` is a JSON list of the corpus files (hidden ones included, to check they are never
picked up). Writes ``OUT.json`` (per file: ``ok`` / ``fail`` with the error, or ``crash``
with the exception type for anything that is not a documented error) and ``OUT.npz`` (the
pixels ``load_folder`` and ``load_image`` gave, ``(H, W, C)``).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def _decode(path: str, color_mode: str) -> tuple[dict, np.ndarray | None]:
    from cnnkit.data import load_image
    from cnnkit.errors import ImageDecodeError

    try:
        arr = load_image(path, (16, 16), color_mode)
    except ImageDecodeError as e:
        return {"status": "fail", "problem": e.problem, "error": str(e), "path": e.path}, None
    except FileNotFoundError as e:
        return {"status": "fail", "problem": "missing", "error": str(e), "path": e.filename}, None
    except Exception as e:  # noqa: BLE001 - the finding this harness exists to report
        return {"status": "crash", "error": f"{color_mode}: {type(e).__name__}: {e}"}, None
    return {"status": "ok", "shape": list(arr.shape)}, arr.transpose(1, 2, 0)


def _one(path: str) -> tuple[dict, np.ndarray | None]:
    """Decode in all three colour modes; they must agree (the RGB pixels are returned)."""
    rgb, arr = _decode(path, "rgb")
    for mode in ("grayscale", "rgba"):
        other, _ = _decode(path, mode)
        if other["status"] == "crash":
            return other, None
        if other["status"] != rgb["status"]:
            return {"status": "crash", "error": f"{mode} gives {other}, rgb gives {rgb}"}, None
    return rgb, arr


def main(root: str, files_json: str, out: str) -> None:
    from cnnkit.data import image_dataset_from_directory, load_folder

    with open(files_json, encoding="utf-8") as f:
        files = json.load(f)
    data = load_folder(root, image_size=(16, 16), color_mode="rgb", progress=True, workers=2)
    ds = image_dataset_from_directory(root, image_size=(16, 16), batch_size=32, shuffle=False)
    batches = [(tuple(x.shape), tuple(y.shape)) for x, y in ds]
    singles = {}
    pixels = {}
    for i, f in enumerate(files):
        singles[f], arr = _one(f)
        if arr is not None:
            pixels[f"single{i}"] = arr
    for i, img in enumerate(data.images):
        pixels[f"folder{i}"] = np.asarray(img).transpose(1, 2, 0)
    result = {
        "folder_files": list(data.file_paths),
        "folder_skipped": [list(s) for s in data.skipped],
        "class_names": list(data.class_names),
        "dataset_files": list(ds.file_paths),
        "dataset_images": int(sum(b[0][0] for b in batches)),
        "dataset_batch_shapes": sorted({b[0][1:] for b in batches}),
        "single": singles,
        "files": files,
    }
    np.savez(out + ".npz", **pixels)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f)  # ASCII escapes: non-UTF-8 file names survive


if __name__ == "__main__":
    main(*sys.argv[1:4])
