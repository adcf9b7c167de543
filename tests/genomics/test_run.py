"""Genomic run folders: safetensors + JSON only, reload, SNP matching by id."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.errors import RunFolderError
from cnnkit.genomics.run import load_run, predict_run, train_run
from cnnkit.genomics.trainer import SnpTrainConfig


def _csv(path, x, snp_ids, ids):
    rows = [f"{i}," + ",".join(map(str, r)) for i, r in zip(ids, x.astype(int), strict=True)]
    path.write_text("id," + ",".join(snp_ids) + "\n" + "\n".join(rows) + "\n")


@pytest.fixture
def run_dir(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(60, 30))
    x[:, 7] = 1  # monomorphic: dropped, but still expected in the input
    y = x[:, :3].sum(1) + rng.normal(size=60)
    snps = [f"rs{j}" for j in range(30)]
    ids = [f"s{i}" for i in range(60)]
    _csv(tmp_path / "g.csv", x, snps, ids)
    lines = "".join(f"{i},{v}\n" for i, v in zip(ids, y, strict=True))
    (tmp_path / "p.csv").write_text("id,y\n" + lines)
    cfg = SnpTrainConfig(epochs=2, patience=1)
    train_run(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "run", train=cfg, seed=1)
    return tmp_path, x, snps, ids


def test_reload_and_predict_match_by_snp_id(run_dir):
    tmp_path, x, snps, ids = run_dir
    run = load_run(tmp_path / "run")
    assert run.config["snps_dropped"] == 1 and run.pre.keep.size == 29
    base = [r["prediction"] for r in predict_run(run, tmp_path / "g.csv")]
    order = np.random.default_rng(1).permutation(30)
    _csv(tmp_path / "shuffled.csv", x[:, order], [snps[j] for j in order], ids)
    shuffled = [r["prediction"] for r in predict_run(run, tmp_path / "shuffled.csv")]
    np.testing.assert_allclose(shuffled, base, rtol=1e-6)
    _csv(tmp_path / "short.csv", x[:, 1:], snps[1:], ids)
    with pytest.raises(ValueError, match="1 of the run's 30 SNPs are missing.*'rs0'"):
        predict_run(run, tmp_path / "short.csv")


def test_not_a_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match="config.json is missing"):
        load_run(tmp_path)


def test_refuses_to_overwrite(run_dir):
    tmp_path = run_dir[0]
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        train_run(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "run")


def _kernel_data(tmp_path, n=70, p=40, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, p))
    y = x[:, :4].sum(1) + rng.normal(size=n)
    snps, ids = [f"rs{j}" for j in range(p)], [f"s{i}" for i in range(n)]
    _csv(tmp_path / "g.csv", x, snps, ids)
    # the last 10 lines are genotyped only: 5 without a row, 5 with NA
    lines = "".join(f"{i},{'NA' if k >= 60 else f'{v:.6f}'},T{k % 2}\n"
                    for k, (i, v) in enumerate(zip(ids[:65], y[:65], strict=True)))  # fmt: skip
    (tmp_path / "p.csv").write_text("id,y,tester\n" + lines)
    return x, y, ids


def test_gblup_run_predicts_genotyped_only_lines_with_reliabilities(tmp_path):
    from cnnkit.genomics.baselines import GBLUP
    from cnnkit.genomics.preprocess import SnpPreprocessor

    x, y, ids = _kernel_data(tmp_path)
    cfg = train_run(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "run", model="gblup")
    assert cfg["n_train"] == 60 and cfg["n_predicted"] == 10 and 0 < cfg["h2"] < 1
    rows = (tmp_path / "run" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "id,phenotyped,observed,gebv,reliability,prediction" and len(rows) == 71
    table = [r.split(",") for r in rows[1:]]
    # the same model fitted directly on the phenotyped lines
    pre = SnpPreprocessor().fit(x[:60].astype(np.float32))
    gb = GBLUP(means=pre.means).fit(pre.transform(x[:60].astype(np.float32)), y[:60].round(6))
    z = pre.transform(x.astype(np.float32))
    np.testing.assert_allclose([float(t[3]) for t in table], gb.breeding_values(z), rtol=1e-5)
    rel = np.array([float(t[4]) for t in table])
    np.testing.assert_allclose(rel, gb.reliability(z), atol=1e-6)
    assert rel[:60].mean() > rel[60:].mean() > 0  # phenotyped lines are known better
    assert [t[1] for t in table] == ["1"] * 60 + ["0"] * 10 and table[65][2] == ""
    # predict reproduces the file; marker effects reproduce the GEBVs
    pred = predict_run(tmp_path / "run", tmp_path / "g.csv")
    np.testing.assert_allclose([p["gebv"] for p in pred], gb.breeding_values(z), rtol=1e-5)
    np.testing.assert_allclose([p["reliability"] for p in pred], rel, atol=1e-6)
    eff = (tmp_path / "run" / "marker_effects.csv").read_text().splitlines()
    beta = np.array([float(r.split(",")[1]) for r in eff[1:]])
    means = np.array([float(r.split(",")[2]) for r in eff[1:]])
    np.testing.assert_allclose((x - means) @ beta, gb.breeding_values(z), rtol=1e-4, atol=1e-5)


def test_kernel_runs_with_a_fixed_effect_and_a_user_k(tmp_path):
    x, y, ids = _kernel_data(tmp_path)
    cfg = train_run(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "rk", model="rkhs",
                    fixed="tester", overwrite=True)  # fmt: skip
    assert cfg["fixed"] == {"factors": ["tester"], "covariates": []}
    assert len(cfg["fixed_effects"]) == 2 and cfg["bandwidth"] > 0
    assert len(load_run(tmp_path / "rk").predict_matrix(x[:3].astype(np.float32))) == 3
    a = np.random.default_rng(0).normal(size=(70, 70))
    k = a @ a.T / 70 + np.eye(70)
    head = "," + ",".join(ids)
    body = "\n".join(
        f"{i}," + ",".join(f"{v:.12g}" for v in r) for i, r in zip(ids, k, strict=True)
    )
    (tmp_path / "k.csv").write_text(head + "\n" + body + "\n")
    with pytest.raises(ValueError, match="kblup needs a relationship matrix"):
        train_run(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "kb", model="kblup")
    cfg = train_run(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "kb", model="kblup",
                    kinship=tmp_path / "k.csv")  # fmt: skip
    assert cfg["n_predicted"] == 10
    with pytest.raises(ValueError, match="predicts only the lines of its relationship matrix"):
        predict_run(tmp_path / "kb", tmp_path / "g.csv")
    with pytest.raises(ValueError, match="fixed effects and covariates in genomics train"):
        train_run(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "n", fixed="tester")
