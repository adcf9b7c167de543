"""The msprime simulator: seeded, linked SNPs, h2 and truth written next to the data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit.genomics.io import read_genotypes, read_phenotypes
from cnnkit.genomics.simulate import SimConfig, find_truth, simulate, write_simulation

# tstrait (additive, mixed) compiles with numba on first use: ~30 s, so those are slow.
TSTRAIT = pytest.mark.slow


@pytest.mark.parametrize(
    "trait",
    [
        pytest.param("additive", marks=TSTRAIT),
        "local-epistasis",
        pytest.param("mixed", marks=TSTRAIT),
        "null",
    ],
)
def test_seeded_and_truth_written(tmp_path, trait):
    cfg = SimConfig(n=60, snps=80, h2=0.6, trait=trait, seed=4, n_qtl=10)
    a, b = simulate(cfg), simulate(cfg)
    np.testing.assert_array_equal(a.genotypes, b.genotypes)
    np.testing.assert_array_equal(a.phenotype, b.phenotype)
    assert a.genotypes.shape == (60, 80) and set(np.unique(a.genotypes)) <= {0, 1, 2}
    paths = write_simulation(a, tmp_path)
    g = read_genotypes(paths["genotypes"])
    np.testing.assert_array_equal(g.matrix, a.genotypes)
    assert read_phenotypes(paths["phenotypes"]).values == pytest.approx(a.phenotype, abs=1e-5)
    truth = find_truth(paths["genotypes"])
    assert truth == json.loads((tmp_path / "truth.json").read_text())
    assert truth["h2"] == 0.6 and truth["trait"] == trait and truth["ne"] == cfg.ne
    if trait in ("additive", "mixed"):
        assert truth["qtl"] and all(0 <= q["snp_index"] < 80 for q in truth["qtl"])
    if trait == "local-epistasis":
        assert all(1 <= j - i <= 5 for i, j in (p["snp_index"] for p in truth["pairs"]))
    if trait == "null":
        assert not truth["pairs"] and not truth["qtl"]
        assert all(j - i >= 26 for i, j in (p["snp_index"] for p in truth["decoy_pairs"]))


def test_genetic_variance_share_and_linkage():
    sim = simulate(SimConfig(n=300, snps=200, h2=0.5, trait="local-epistasis", seed=2, n_qtl=20))
    assert np.std(sim.phenotype) == pytest.approx(1.0, abs=0.1)
    z = sim.genotypes - sim.genotypes.mean(0)
    r_adj = np.mean([abs(np.corrcoef(z[:, j], z[:, j + 1])[0, 1]) for j in range(150)])
    r_far = np.mean([abs(np.corrcoef(z[:, j], z[:, j + 50])[0, 1]) for j in range(150)])
    assert r_adj > 2 * r_far  # neighbouring SNPs are in LD
    assert np.all(np.diff(sim.positions) > 0)


def test_bad_settings():
    with pytest.raises(ValueError, match="trait must be one of"):
        SimConfig(trait="dominance")
    with pytest.raises(ValueError, match="h2 must be in"):
        SimConfig(h2=1.0)
