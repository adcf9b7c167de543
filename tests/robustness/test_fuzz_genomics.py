"""Fuzzing the genotype readers (CSV, VCF, PLINK): Genotypes or ValueError/FileNotFoundError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from mutations import fuzz_settings, mutated
from rb_helpers import record
from test_genomics_files import G, bed_bytes, vcf

from cnnkit.genomics.io import Genotypes, read_genotypes, read_phenotypes

pytestmark = pytest.mark.fuzz
FAM = "".join(f"f{i} s{i} 0 0 0 -9\n" for i in range(6)).encode()
BIM = "".join(f"1\tsnp{j}\t0\t{j + 1}\tA\tG\n" for j in range(3)).encode()
SEEDS = {
    "g.csv": b"id,s1,s2,s3\na,0,1,2\nb,2,NA,0\nc,1,1,1\n",
    "g.tsv": b"s1\ts2\na\t0\t1\nb\t2\t2\n",
    "g.txt": b"0 1 2\n2 NA 0\n1 1 1\n",
    "g.vcf": vcf("0/0\t0/1\t1/1", "1|1\t0|.\t1|0", "./.\t0/0\t1/1").encode(),
    "g.bed": bed_bytes(G),
    "g.fam": FAM,
    "g.bim": BIM,
}
COUNT = {"examples": 0, "read": 0}


def _check(g: Genotypes) -> None:
    m = g.matrix
    assert m.dtype == np.float32 and m.shape == (len(g.sample_ids), len(g.snp_ids))
    values = m[~np.isnan(m)]
    assert np.isin(values, (0.0, 1.0, 2.0)).all(), "dosages outside 0/1/2"


@fuzz_settings()
@given(case=mutated(SEEDS))
def test_fuzz_genotype_readers(case):
    name, data = case
    target = name.split("/")[0]
    COUNT["examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if target in ("g.bed", "g.fam", "g.bim"):
            for f in ("g.bed", "g.fam", "g.bim"):
                (d / f).write_bytes(SEEDS[f])
            path = d / "g.bed"
        else:
            path = d / target
        (d / target).write_bytes(data)
        try:
            g = read_genotypes(path)
        except (ValueError, FileNotFoundError):
            return
        _check(g)
        COUNT["read"] += 1


PHENO_SEEDS = {
    "p.csv": b"id,y,z\na,1.5,2\nb,NA,3\nc,-9,4\n",
    "p.fam": b"f a 0 0 1 1.5\nf b 0 0 2 -9\n",
    "p.txt": b"1.5 2\n3 4\n",
}


@fuzz_settings()
@given(case=mutated(PHENO_SEEDS))
def test_fuzz_phenotype_reader(case):
    name, data = case
    COUNT["examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name.split("/")[0]
        path.write_bytes(data)
        for col in (None, "2", "y"):
            try:
                p = read_phenotypes(path, col)
            except (ValueError, FileNotFoundError):
                continue
            assert p.values.ndim == 1 and p.values.dtype == np.float64
            assert p.sample_ids is None or len(p.sample_ids) == len(p.values)


def test_fuzz_genotype_readers_counted():
    assert COUNT["examples"] > 0
    record("fuzz", genomics_examples=COUNT["examples"])
