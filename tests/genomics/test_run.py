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
