"""Robustness figures: run the robustness suite (slow tests and fuzzing included) and write
``docs/robustness.md`` and ``bench/results/robustness.json``.

    .venv/bin/python bench/robustness.py [--fuzz-examples 2000]

The tests record what they tried through ``$CNNKIT_ROBUSTNESS_FIGURES`` (see
``tests/robustness/conftest.py``); a figure is only written when every test passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, machine, machine_line  # noqa: E402

ROWS = [
    ("Tricky image files tried (audit, loaders, predict)", "corpus", "files"),
    ("... refused with a cnnkit error naming the file", "corpus", "refused"),
    ("... good files equal to a numpy reference", "corpus", "reference_checked"),
    ("Uncaught exceptions / tracebacks / signals", "corpus", "loader_crashes"),
    ("Fuzz examples: image decoding", "fuzz", "image_decode_examples"),
    ("Fuzz examples: run folder (config.json, safetensors)", "fuzz", "run_folder_examples"),
    ("Fuzz examples: genotype (CSV/VCF/PLINK) + phenotype readers", "fuzz", "genomics_examples"),
    (
        "Fuzz examples: folders to overwrite (foreign config.json, links)",
        "fuzz",
        "overwrite_examples",
    ),
    (
        "Fuzz examples: config/metrics JSON nested up to 200,000 deep",
        "fuzz",
        "nested_json_examples",
    ),
    ("Fuzz examples: shared cache layouts (modes, owners, links)", "fuzz", "shared_cache_examples"),
    ("Malformed genotype sets (all refused)", "genomics", "malformed_sets"),
    ("Training SIGKILL points, resumed bit-identical", "crash", "training_kill_points"),
    ("SIGKILLs during checkpoint writes", "crash", "checkpoint_write_kills"),
    ("... of which inside a write (temp file present)", "crash", "kills_inside_a_write"),
    ("Partial final checkpoint files", "crash", "partial_final_files"),
    ("Bad uploads and malformed requests to the server", "server", "bad_uploads"),
    ("Server responses with 5xx", "server", "responses_5xx"),
    ("Chunked upload 16x over the 1 MiB limit: bytes read", "server", "oversize_bytes_read"),
    ("... peak Python memory while refusing it (bytes)", "server", "oversize_peak_bytes"),
    ("Malformed genotype sets through the CLI: exit 2, one line", "genomics", "cli_refusals"),
    ("Pickled command in a checkpoint: times it ran", "runfolder", "pickled_command_runs"),
    ("Unsafe unpickling calls in src/ (AST scan)", "hygiene", "unsafe_loads"),
]


NOTES = [
    "",
    "How each figure is made:",
    "",
    "- **Image corpus** (`tests/robustness/corpus.py`): every Pillow mode a format can hold, "
    "16-bit PNG/TIFF, 32-bit and float TIFF, CMYK, palettes with transparency, animated "
    "GIF/PNG/WEBP and multi-page TIFF, EXIF orientations 1-8 (JPEG, PNG, TIFF), truncations "
    "at ten points of six formats, empty files, text/HTML/PDF/SVG/ZIP/ELF named `.jpg`, "
    "PPM/ICO/PCX/TGA/EPS/SGI/DDS/JPEG 2000/QOI/AVIF... renamed `.png`, decompression bombs "
    "(huge declared sizes in tiny files, zTXt/iCCP bombs), non-ASCII, non-UTF-8, "
    "shell-looking and "
    "240-character names, symlinks, hidden files and folders. One subprocess per tool: "
    "`cnnkit audit`, `load_folder` + `image_dataset_from_directory` (+ `load_image` in three "
    "colour modes), `cnnkit predict`.",
    "- **Fuzzing** (`test_fuzz_*.py`, hypothesis): byte flips (biased to headers), "
    "truncation, insertion and splicing of seed files; NaN and infinity written into run "
    "weights; cache folders of random modes, owners and symbolic links; folders to "
    "overwrite holding a drawn mix of cnnkit's and a user's names, links out of the folder, "
    "with or without the run marker and with cnnkit's, a web project's or no `config.json`; "
    "`config.json`/`metrics.json` nested up to 200,000 levels (image and genomics runs, "
    "report); sockets sending "
    "nothing, cut, garbled or whole requests. `make fuzz` runs 2,000 examples per harness "
    "(300 for the weights and 200 for the sockets, which take seconds each); the default "
    "suite 30 (10 for the sockets).",
    "- **Crash safety** (`test_crash_safety.py`): one run killed at 5 points after its "
    "first checkpoint and resumed each time, compared with an uninterrupted fp32 run "
    "(weights, optimiser and scheduler state, history without timing columns); a writer "
    "looping over `save_checkpoint` killed at random moments.",
    "- **Server** (`test_server.py`): every broken corpus file uploaded to `/predict` "
    "(a quarter also to `/explain`) plus malformed multipart bodies, wrong content types, "
    "too many files/parts, oversize bodies, bad query values, lying Content-Length.",
    "",
    "What is promised, and the tests that hold cnnkit to it:",
    "",
    "- **Shared caches** (`test_shared_cache.py`, `test_fuzz_shared_cache.py`): cnnkit loads "
    "its compiled warp only from a file that nobody but the user or root can have written: "
    "the file and every folder above it belong to the user or root and are not writable by "
    "group or others (a sticky folder, as a mode 1777 shared cache, may be). A library "
    "planted by another user, or in a folder anyone can write, never runs (a real library "
    "whose constructor writes a marker file; fuzzed over modes, owners and symbolic links): "
    "cnnkit builds its own in `native-<uid>/` (mode 0700) or, where the cache folder itself "
    "is open to others, warps with `grid_sample` and records why. A cached library that "
    "does not load or lacks the kernel's symbols is rebuilt, or the reason is recorded. "
    "`cnnkit cache clear` deletes only the folders cnnkit made (tagged when made) that "
    "belong to the user: `CNNKIT_CACHE_DIR=~/.cache` keeps `pip/` and `torch/`. Decoded "
    "pixels and cached features are read back as training data, so a `decode/` or "
    "`features/` folder another user made is neither read nor written: cnnkit uses "
    "`decode-<uid>/` (tested with planted pixels in another user's `decode/`). Not "
    "promised: in a cache folder anyone may write and rename in (mode 0777 without the "
    "sticky bit) the data caches are still used; keep such a folder out of "
    "`CNNKIT_CACHE_DIR`.",
    "- **The server under floods** (`test_server_flood.py`, `test_fuzz_http.py`): against a "
    "real `cnnkit serve` process on 127.0.0.1, 260 sockets that send half a request header "
    "or nothing and wait keep nobody out: `/health` answers within a second and `/predict` "
    "works while they wait; each gets a 408 at the 10 s header deadline. The concurrency "
    "limit (256) counts requests being handled, not connections. Every answer, the "
    'protocol\'s own 400/408 and the 500 for a bug included, is `{"error": ...}` with '
    "the security headers. Fuzzed: up to 40 sockets per example sending nothing, cut, "
    "garbled or whole requests; every answer has the headers and every socket is closed "
    "by the deadlines. Not promised: a limit of connections per client (a reverse proxy's "
    "job for a server others can reach).",
    "- **Overwrite and interrupted runs** (`tests/runs/test_run_layout.py`, "
    "`test_fuzz_overwrite.py`, `tests/train/test_run_folder.py`, "
    "`tests/genomics/test_run.py`): `--overwrite` (and `overwrite=True`) replaces only a run "
    "folder, one holding cnnkit's `.cnnkit-run` marker (or a `config.json` cnnkit wrote "
    "before markers: one naming `cnnkit_version` and a `model`); any other non-empty folder, "
    "a web project's `config.json` and all, is refused with nothing changed. In a run folder "
    "only the names cnnkit writes go (and its `fold-N/` and hidden `.tmp` files); anything "
    "else stays and is named, and a symbolic link is removed, never followed. The same holds "
    "for `genomics train`. A run killed before its `config.json` (only the marker and "
    "`split.csv`) is started again by a rerun without `--overwrite`; `--resume` of it says "
    "there is no config to resume; a run killed after its config resumes; the temporary "
    "file of a write a kill interrupted is removed by the next run or resume. A run folder's "
    "`config.json` is checked once before use (colour mode against channels, sizes up to "
    "4096, nesting up to 64 levels, every key present), for image and genomics runs alike. "
    "Not promised: a file a user named like one of cnnkit's (`summary.txt`, `report.html`) "
    "inside a run folder survives `--overwrite`.",
    "- **No downloads** (`test_hygiene.py`, `tests/test_no_internet.py`): cnnkit reads "
    "pretrained weights and datasets from local files and caches only; `cnnkit weights "
    "fetch` (`cnnkit/models/fetch.py`, hash-checked) is the one module that imports or calls "
    "a downloading API (an AST scan of `src/`), and the test suite fails any connection "
    "beyond 127.0.0.1.",
    "- **Damaged weights** (`test_nan_weights.py`, `test_fuzz_runfolder.py`): weights that "
    "give NaN or infinity never put `NaN` in JSON: `predict` reports each file as an error "
    "naming it (exit 1), `explain` and `evaluate` fail in one line naming the image or the "
    'weights, the server answers `{"error": ...}` with its headers.',
    "- **Errors** (`test_cli_errors.py`, `test_audit_findings.py`): a pickled `--pretrained` "
    "file or checkpoint, YAML tags, malicious CIFAR-10 pickles (code, `bytearray(10**13)`, "
    "huge arrays, 5000-digit integers) are one line naming the file, never torch's advice "
    "to load with `weights_only=False`; an unreadable file is `unreadable` in `audit` (never "
    "hashed) and a per-file error in `predict` (exit 1, the others predicted); file names "
    "that are not UTF-8 come out of `audit` and `predict` as valid UTF-8 (`\\udcXX` in "
    "JSON). Errors name their file or option: NaN weights in `evaluate` (never scikit-learn's "
    "`Input contains NaN.`), a 5000-digit integer in a CIFAR-10 pickle (never Python's "
    "`Exceeds the limit (4300 digits)`), a `split.csv` that is not UTF-8 in `export`, "
    "`genomics simulate`'s `--n-qtl` (never its parameter name `num_causal`).",
    "",
    "Known limits: a `.fam` listing one to three people too many is refused when they read "
    "from the zero padding as homozygous A1 at every SNP and a genuine person would look "
    "like that with a chance below 1e-6; with fewer informative SNPs only the phenotype "
    "join catches it; `pip-audit` runs in `make lint` only where the "
    "advisory service is reachable.",
    "",
    "Bugs the suite found and that are fixed: `audit` exited 2 on a dangling symlink; "
    "LAB/HSV images raised Pillow's ValueError in grayscale; `load_run` built every tensor "
    "before checking names and shapes, loaded integer weights into float parameters, and "
    "took a `config.json` that is not an object, has `std` 0 or non-list class names; "
    "damaged `.vcf.gz`/`.csv.gz` files gave gzip tracebacks; bed_reader parse errors and a "
    "phenotype file without a trait column did not name the file; `train --resume` of a run "
    "whose `config.json` is a JSON list ended in a traceback. Found by an adversarial pass "
    "and fixed since: a library planted in a shared cache ran as the trainer; "
    "`cache clear` deleted every sub-folder of `CNNKIT_CACHE_DIR`; 260 idle sockets made the "
    "server answer 503 for over 70 s; an unreadable file of the same size as another made "
    "`audit` exit 2 (alone it was called truncated); motion photos were called truncated, "
    "empty class folders were missing from `audit`'s classes and `sizes.max` mixed two "
    "images; NaN weights printed `NaN` in JSON and `0 (nan%)`; a cached library without "
    "the kernel's symbols ended `train` in a traceback; `--overwrite` deleted any folder "
    "holding a `config.json`; a run killed before its config could not be rerun or "
    "resumed; tampered run configs (colour mode against channels, 65536-pixel sizes, "
    "nesting 200,000 deep) and genomics run folders ended in tracebacks; one image per class "
    "trained and then exited 2; an unreadable file to `predict` was a usage error (exit 2); "
    "the protocol's own 400s had no security headers.",
    "",
    "`python bench/robustness.py --render-only` rewrites this page from "
    "`bench/results/robustness.json`.",
    "",
]


def run_suite(fuzz_examples: int, figures: Path) -> tuple[int, float, str]:
    env = dict(os.environ, CNNKIT_ROBUSTNESS_FIGURES=str(figures),
               CNNKIT_FUZZ_EXAMPLES=str(fuzz_examples))  # fmt: skip
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider",
           "tests/robustness"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
    return proc.returncode, time.perf_counter() - t0, tail[0] if tail else ""


def render(figures: dict, m: dict, seconds: float, summary: str, command: str) -> str:
    lines = [
        "# Robustness",
        "",
        "What the robustness suite (`tests/robustness/`, issue 11) feeds cnnkit and what came "
        "out. Nothing a user feeds cnnkit may crash it, corrupt a result or run code.",
        "",
        f"Produced by `{command}` on {machine_line(m)}, {m['date']}; "
        f"the suite ({summary}) took {seconds:.0f} s.",
        "",
        "| what | count |",
        "|---|---:|",
    ]
    for label, group, key in ROWS:
        value = figures.get(group, {}).get(key, "not run")
        lines.append(f"| {label} | {value} |")
    lines += NOTES
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz-examples", type=int, default=2000)
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite docs/robustness.md from bench/results/robustness.json",
    )
    args = ap.parse_args()
    if args.render_only:
        saved = json.loads((RESULTS / "robustness.json").read_text())
        doc = render(saved["figures"], saved["machine"], saved["seconds"], saved["summary"],
                     saved["command"])  # fmt: skip
        (ROOT / "docs" / "robustness.md").write_text(doc)
        return
    command = "python bench/robustness.py" + (
        f" --fuzz-examples {args.fuzz_examples}" if args.fuzz_examples != 2000 else ""
    )
    with tempfile.TemporaryDirectory() as tmp:
        figures_path = Path(tmp) / "figures.json"
        rc, seconds, summary = run_suite(args.fuzz_examples, figures_path)
        figures = json.loads(figures_path.read_text()) if figures_path.is_file() else {}
    print(summary)
    if rc != 0:
        sys.exit(f"the robustness suite failed ({summary}); no figures written")
    m = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": m, "seconds": seconds, "summary": summary,
               "figures": figures}  # fmt: skip
    (RESULTS / "robustness.json").write_text(json.dumps(payload, indent=2) + "\n")
    doc = render(figures, m, seconds, summary, command)
    (ROOT / "docs" / "robustness.md").write_text(doc)
    print(doc)


if __name__ == "__main__":
    main()
