"""Phenotype tables: several environments (wide and long), fixed effects, folds, groups."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.genomics.dataset import Covariates, load_dataset, read_fold_file
from cnnkit.genomics.io import Genotypes


def _geno(n=8, p=5, seed=0) -> Genotypes:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, p)).astype(np.float32)
    return Genotypes(x, [f"L{i}" for i in range(n)], [f"s{j}" for j in range(p)])


def test_wide_environments_fixed_effects_and_unphenotyped_lines(tmp_path):
    g = _geno()
    rows = [
        f"L{i},{i}.5,{'NA' if i == 2 else -i},T{i % 3},{i * 0.1},fam{i // 4}" for i in range(7)
    ]  # fmt: skip  L7 has no row at all
    (tmp_path / "p.csv").write_text('"id","e1","e2","tester","pc1","family"\n'
                                    + "\n".join(rows) + "\n")  # fmt: skip
    d = load_dataset(g, tmp_path / "p.csv", pheno_col="e1,e2", keep_unphenotyped=True)
    assert d.multi and d.traits == ["e1", "e2"] and d.y.shape == (8, 2)
    assert np.isnan(d.y[2, 1]) and d.y[2, 0] == 2.5 and np.isnan(d.y[7]).all()
    assert d.info["unphenotyped"] == 1
    d = load_dataset(g, tmp_path / "p.csv", fixed="tester", covariates="pc1",
                     keep_unphenotyped=True)  # fmt: skip
    assert d.fixed.factors["tester"][7] is None and np.isnan(d.fixed.numeric["pc1"][7])
    with pytest.raises(
        ValueError, match="q.csv: fixed effect 'tester' is missing on 'line 3', 'line 6'"
    ):
        (tmp_path / "q.csv").write_text((tmp_path / "p.csv").read_text().replace("T1,", "NA,"))
        load_dataset(g, tmp_path / "q.csv", fixed="tester", keep_unphenotyped=True)
    d = load_dataset(g.take(np.arange(7)), tmp_path / "p.csv", pheno_col="2", fixed="tester",
                     covariates="pc1", group_col="family")  # fmt: skip
    assert d.traits == ["e2"] and d.geno.n == 6 and d.info["phenotype_missing_dropped"] == 1
    assert d.groups.tolist() == ["fam0", "fam0", "fam0", "fam1", "fam1", "fam1"]
    assert d.fixed.to_dict() == {"factors": ["tester"], "covariates": ["pc1"]}
    with pytest.raises(ValueError, match="1 of 8 genotyped samples have no row"):
        load_dataset(g, tmp_path / "p.csv")


def test_long_form_is_pivoted_and_repeats_are_refused(tmp_path):
    g = _geno(n=3)
    text = "id,env,yield\nL0,A,1\nL1,A,2\nL0,B,3\nL2,B,4\n"
    (tmp_path / "long.csv").write_text(text)
    d = load_dataset(g, tmp_path / "long.csv", env_col="env")
    assert d.traits == ["A", "B"]
    np.testing.assert_array_equal(d.y, [[1, 3], [2, np.nan], [np.nan, 4]])
    (tmp_path / "dup.csv").write_text(text + "L0,A,5\n")
    with pytest.raises(ValueError, match="line 6 repeats id 'L0' in environment 'A'"):
        load_dataset(g, tmp_path / "dup.csv", env_col="env")


def test_non_finite_phenotypes_name_the_file_and_line(tmp_path):
    g = _geno(n=4)
    for bad in ("inf", "-Infinity", "1e308"):
        (tmp_path / "p.csv").write_text(f"id,y\nL0,1\nL1,{bad}\nL2,3\nL3,4\n")
        with pytest.raises(ValueError, match=r"p.csv: column 'y' must hold finite.*line 3"):
            load_dataset(g, tmp_path / "p.csv")


def test_design_uses_training_levels_and_averages_an_unseen_one():
    cov = Covariates(
        {"t": np.array(["a", "b", "c", "a", "z"], dtype=object)},
        {"pc": np.array([1.0, 2.0, 3.0, 4.0, 10.0])},
    )
    x = cov.design(np.arange(4), np.arange(5))
    # intercept, b and c dummies (a is the reference), pc centred on the training mean 2.5
    expected = [[1, 0, 0, -1.5], [1, 1, 0, -0.5], [1, 0, 1, 0.5], [1, 0, 0, 1.5],
                [1, 1 / 3, 1 / 3, 7.5]]  # fmt: skip
    np.testing.assert_allclose(x, expected)


def test_fold_file_as_r_writes_it(tmp_path):
    ids = ["L0", "L1", "L2"]
    (tmp_path / "f.csv").write_text('"","id","fold"\n"1","L2",2\n"2","L0",1\n"3","L1",1\n')
    assert read_fold_file(tmp_path / "f.csv", ids).tolist() == ["1", "1", "2"]
    (tmp_path / "g.csv").write_text("id,fold\nL0,1\n")
    with pytest.raises(ValueError, match="g.csv: 2 samples have no fold: 'L1', 'L2'"):
        read_fold_file(tmp_path / "g.csv", ids)
