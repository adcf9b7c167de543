"""Genomic run folders and inputs under abuse: every tampered run folder is one clear error
(never a traceback, never a run that does not end), non-finite phenotypes name their file,
cv.json is always valid JSON, and the simulator names its own options."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from cnnkit.cli.main import main


def _data(d: Path, n=40, p=20):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(n, p))
    y = x[:, :3].sum(1) + rng.normal(size=n)
    head = "id," + ",".join(f"rs{j}" for j in range(p))
    rows = [f"s{i}," + ",".join(map(str, r)) for i, r in enumerate(x)]
    (d / "g.csv").write_text(head + "\n" + "\n".join(rows) + "\n")
    (d / "p.csv").write_text("id,y\n" + "".join(f"s{i},{v:.5f}\n" for i, v in enumerate(y)))
    return d / "g.csv", d / "p.csv"


@pytest.fixture(scope="module")
def net_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("genomics-net")
    geno, pheno = _data(d)
    fast = ["--epochs", "2", "--patience", "1", "--ensemble", "2"]
    assert main(["genomics", "train", str(geno), str(pheno), "--out", str(d / "run"), *fast]) == 0
    return d / "run", geno


@pytest.fixture(scope="module")
def gblup_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("genomics-gblup")
    geno, pheno = _data(d)
    args = ["genomics", "train", str(geno), str(pheno), "--out", str(d / "run"), "--model", "gblup"]
    assert main(args) == 0
    return d / "run", geno


def _edit_config(key_path: str, value):
    def edit(run: Path) -> None:
        cfg = json.loads((run / "config.json").read_text())
        node = cfg
        keys = key_path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        (run / "config.json").write_text(json.dumps(cfg))

    return edit


def _write(name: str, data: bytes):
    return lambda run: (run / name).write_bytes(data)


def _arrays(name: str, **arrays):
    return lambda run: save_file(arrays, str(run / name))


def _deep(run: Path) -> None:
    (run / "config.json").write_text("[" * 200_000 + "]" * 200_000)


def _swap_weights(run: Path) -> None:
    """A kernel model's arrays where the network's weights belong."""
    save_file({"z": np.zeros((4, 20), np.float32)}, str(run / "model.safetensors"))


NET_TAMPERS = {
    "config not JSON": _write("config.json", b"{nope"),
    "config nested 200,000 deep": _deep,
    "config a list": _write("config.json", b"[1, 2]"),
    "config not UTF-8": _write("config.json", b'{"kind": "\xff"}'),
    "kind image": _edit_config("kind", "image"),
    "model unknown": _edit_config("model", "resnet18"),
    "train.ensemble 1000000": _edit_config("train.ensemble", 1_000_000),
    "train.ensemble 3 for 2 networks": _edit_config("train.ensemble", 3),
    "train.epochs text": _edit_config("train.epochs", "many"),
    "train.task unknown": _edit_config("train.task", "poisson"),
    "model_kwargs.filters negative": _edit_config("model_kwargs.filters", [-4]),
    "model_kwargs.kernel_size huge": _edit_config("model_kwargs.kernel_size", 10**9),
    "model_kwargs unknown key": _edit_config("model_kwargs.depth", 3),
    "y_std zero": _edit_config("y_std", 0),
    "y_mean text": _edit_config("y_mean", "x"),
    "snp_ids missing": _edit_config("snp_ids", None),
    "snp_ids shorter": _edit_config("snp_ids", ["rs0", "rs1"]),
    "weights garbage": _write("model.safetensors", b"\x00" * 64),
    "weights of another model": _swap_weights,
    "weights missing": lambda run: (run / "model.safetensors").unlink(),
    "preprocessor garbage": _write("preprocessor.safetensors", b"not a tensor file"),
    "preprocessor keep out of range": _arrays(
        "preprocessor.safetensors",
        keep=np.array([0, 99], dtype=np.int64),
        means=np.ones(2, np.float32),
        n_input=np.array([20], dtype=np.int64),
    ),  # fmt: skip
    "preprocessor means shorter": _arrays(
        "preprocessor.safetensors",
        keep=np.arange(20, dtype=np.int64),
        means=np.ones(3, np.float32),
        n_input=np.array([20], dtype=np.int64),
    ),  # fmt: skip
}
KERNEL_TAMPERS = {
    "delta negative": _edit_config("delta", -1.0),
    "fixed_effects empty": _edit_config("fixed_effects", []),
    "mean_fixed NaN text": _write("config.json", b'{"kind": "genomics", "model": "gblup"}'),
    "training genotypes mis-shaped": _arrays(
        "model.safetensors", z=np.zeros((5, 3), np.float32), y=np.zeros(5), design=np.ones((5, 1))
    ),
    "training phenotypes NaN": _arrays(
        "model.safetensors",
        z=np.zeros((40, 20), np.float32),
        y=np.full(40, np.nan),
        design=np.ones((40, 1)),
    ),  # fmt: skip
}


def _refused(capsys, args: list[str]) -> str:
    t0 = time.perf_counter()
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert time.perf_counter() - t0 < 60, f"{args} ran {time.perf_counter() - t0:.0f} s"
    assert rc == 2, (args, rc, err)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _check_tamper(source: Path, geno: Path, tamper, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(source, run)
    tamper(run)
    err = _refused(capsys, ["genomics", "predict", str(run), str(geno)])
    assert str(run) in err, err
    _refused(capsys, ["genomics", "explain", str(run), "--out", str(tmp_path / "s.png")])


@pytest.mark.parametrize("name", list(NET_TAMPERS))
def test_a_tampered_network_run_is_one_clear_error(net_run, tmp_path, capsys, name):
    _check_tamper(*net_run, NET_TAMPERS[name], tmp_path, capsys)


@pytest.mark.parametrize("name", list(KERNEL_TAMPERS))
def test_a_tampered_gblup_run_is_one_clear_error(gblup_run, tmp_path, capsys, name):
    _check_tamper(*gblup_run, KERNEL_TAMPERS[name], tmp_path, capsys)


def test_untampered_runs_still_load(net_run, gblup_run, capsys):
    for run, geno in (net_run, gblup_run):
        assert main(["genomics", "predict", str(run), str(geno), "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 40


@pytest.mark.parametrize("value", ["inf", "-inf", "1e308", "Infinity"])
def test_a_non_finite_phenotype_names_the_file(tmp_path, capsys, value):
    geno, pheno = _data(tmp_path)
    lines = pheno.read_text().splitlines()
    lines[5] = f"s4,{value}"
    pheno.write_text("\n".join(lines) + "\n")
    args = ["genomics", "cv", str(geno), str(pheno), "--methods", "gblup", "--folds", "2",
            "--repeats", "1", "--out", str(tmp_path / "cv")]  # fmt: skip
    err = _refused(capsys, args)
    assert str(pheno) in err and "line 6" in err and "finite" in err


def test_cv_json_is_valid_json_for_a_huge_trait(tmp_path, capsys):
    geno, pheno = _data(tmp_path)
    lines = pheno.read_text().splitlines()
    scaled = [lines[0]] + [f"{ln.split(',')[0]},{float(ln.split(',')[1]) * 1e149:.6g}"
                           for ln in lines[1:]]  # fmt: skip
    pheno.write_text("\n".join(scaled) + "\n")
    out = tmp_path / "cv"
    args = ["genomics", "cv", str(geno), str(pheno), "--methods", "gblup,ridge", "--folds", "2",
            "--repeats", "1", "--out", str(out), "--json"]  # fmt: skip
    assert main(args) == 0
    text = (out / "cv.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))


def test_simulate_names_its_own_options(tmp_path, capsys):
    err = _refused(capsys, ["genomics", "simulate", "--n", "50", "--snps", "40", "--out",
                            str(tmp_path / "sim")])  # fmt: skip
    assert "--n-qtl" in err and "--snps" in err and "num_causal" not in err
