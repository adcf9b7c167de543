"""The readers on the real example data: cropgbm maize (PLINK + CSV) and the guide's wheat."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnkit.genomics.io import align, read_genotypes, read_phenotypes

REPO = Path(__file__).resolve().parents[2]
MAIZE = Path(
    os.environ.get("CNNKIT_CROPGBM_TESTDATA", "/tmp/cropgbm/cropgbm-1.1.7/cropgbm/testdata")
)
WHEAT = Path(os.environ.get("CNNKIT_WHEAT_DIR", REPO.parent / "shared" / "data" / "wheat"))
MAIZE_HOW = (
    "cropgbm maize testdata (pip download --no-deps --no-binary :all: cropgbm -d /tmp/cropgbm, "
    "untar, or set CNNKIT_CROPGBM_TESTDATA to its cropgbm/testdata folder)"
)


def test_maize_plink_and_csv_agree(require):
    require((MAIZE / "genofile.bed").exists(), MAIZE_HOW)
    bed = read_genotypes(MAIZE / "genofile.bed")
    assert (bed.n, bed.p) == (300, 472)
    csv = read_genotypes(MAIZE / "train.geno")  # R-style header, 180 of the 300 lines
    assert (csv.n, csv.p) == (180, 472) and csv.snp_ids == bed.snp_ids
    rows = [bed.sample_ids.index(s) for s in csv.sample_ids]
    # Same genotypes; the allele counted may differ per SNP (bed-reader counts A1, the
    # CSV mostly the other allele: 2 of 472 SNPs are counted the same way).
    flipped = np.all(bed.matrix[rows] == 2 - csv.matrix, axis=0)
    same = np.all(bed.matrix[rows] == csv.matrix, axis=0)
    assert np.all(flipped | same) and flipped.sum() == 470
    g, y, info = align(bed, read_phenotypes(MAIZE / "phefile.txt", "DTT"))
    assert g.n == 286 and info["phenotype_missing_dropped"] == 14 and np.isfinite(y).all()


def test_wheat_plain_matrices_by_order(require):
    require((WHEAT / "wheat.X").exists(), f"wheat data in {WHEAT} (or set CNNKIT_WHEAT_DIR)")
    g = read_genotypes(WHEAT / "wheat.X")
    assert (g.n, g.p) == (599, 1279) and not g.has_ids
    assert set(np.unique(g.matrix)) <= {0.0, 1.0}
    for k in range(1, 5):
        _, y, _ = align(g, read_phenotypes(WHEAT / "wheat.Y", k))
        assert y.shape == (599,) and abs(y.mean()) < 0.1  # standardised yields
