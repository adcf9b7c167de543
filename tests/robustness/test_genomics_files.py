"""Malformed PLINK/VCF/CSV genotype sets: a documented error naming the file, or the exact matrix.

Each case writes a small file set and says what a correct reader does: refuse it with a
``ValueError``/``FileNotFoundError`` whose message names the file, or return exactly the
expected dosage matrix (``NaN`` for missing). A matrix that differs is a silently wrong result.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from rb_helpers import record

from cnnkit.genomics.io import read_genotypes

NAN = np.nan
CODES = {2: 0b00, 1: 0b10, 0: 0b11, None: 0b01}  # PLINK 2-bit codes, dosage of A1


def bed_bytes(matrix: list[list[int | None]], magic: bytes = b"\x6c\x1b\x01") -> bytes:
    """SNP-major .bed bytes for ``matrix`` (samples x SNPs), padding bits zero."""
    n = len(matrix)
    out = bytearray(magic)
    for j in range(len(matrix[0])):
        packed = bytearray((n + 3) // 4)
        for i in range(n):
            packed[i // 4] |= CODES[matrix[i][j]] << (2 * (i % 4))
        out += packed
    return bytes(out)


def write_plink(d: Path, matrix, fam_n=None, bim_n=None, bed=None, fam_text=None, bim_text=None):
    n, p = len(matrix), len(matrix[0])
    fam_n, bim_n = n if fam_n is None else fam_n, p if bim_n is None else bim_n
    (d / "g.bed").write_bytes(bed_bytes(matrix) if bed is None else bed)
    fam = fam_text or "".join(f"f{i} s{i} 0 0 0 -9\n" for i in range(fam_n))
    bim = bim_text or "".join(f"1\tsnp{j}\t0\t{j + 1}\tA\tG\n" for j in range(bim_n))
    (d / "g.fam").write_text(fam)
    (d / "g.bim").write_text(bim)
    return d / "g.bed"


G = [[0, 1, 2], [2, 2, None], [1, 0, 0], [0, 2, 1], [2, 1, 1], [1, 1, 0]]  # 6 samples x 3 SNPs
GOOD = np.array(G, dtype=float).astype(np.float32)


def _plink(**kw):
    return lambda d: write_plink(d, G, **kw)


def _text(name: str, text: str | bytes, gz: bool = False):
    def make(d: Path) -> Path:
        p = d / name
        data = text.encode() if isinstance(text, str) else text
        p.write_bytes(gzip.compress(data) if gz else data)
        return p

    return make


VCF_HEAD = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC\n"


def vcf(*rows: str) -> str:
    return VCF_HEAD + "".join(f"1\t{i + 1}\trs{i}\tA\tG\t.\tPASS\t.\tGT\t{r}\n"
                              for i, r in enumerate(rows))  # fmt: skip


ERR = "error"
CASES = {
    # PLINK
    "plink-good": (_plink(), GOOD),
    "plink-bad-magic": (_plink(bed=b"\x00\x00\x01" + bed_bytes(G)[3:]), ERR),
    "plink-mode-00": (_plink(bed=b"\x6c\x1b\x00" + bed_bytes(G)[3:]), ERR),
    "plink-mode-02": (_plink(bed=b"\x6c\x1b\x02" + bed_bytes(G)[3:]), ERR),
    "plink-empty-bed": (_plink(bed=b""), ERR),
    "plink-magic-only": (_plink(bed=b"\x6c\x1b"), ERR),
    "plink-fam-minus-1": (_plink(fam_n=5), ERR),
    "plink-fam-minus-2": (_plink(fam_n=4), ERR),
    "plink-fam-plus-3": (_plink(fam_n=9), ERR),
    "plink-bim-plus-1": (_plink(bim_n=4), ERR),
    "plink-bim-minus-1": (_plink(bim_n=2), ERR),
    "plink-trailing-byte": (_plink(bed=bed_bytes(G) + b"\x00"), ERR),
    "plink-text-bed": (_plink(bed=b"this is not a bed file at all\n"), ERR),
    "plink-dup-ids": (_plink(fam_text="".join("f s 0 0 0 -9\n" for _ in range(6))), ERR),
    "plink-fam-one-column": (_plink(fam_text="".join(f"s{i}\n" for i in range(6))), ERR),
    "plink-no-fam": (lambda d: (_plink()(d), (d / "g.fam").unlink())[0], ERR),
    # VCF
    "vcf-good": (_text("g.vcf", vcf("0/0\t0/1\t1/1", "1|1\t0|0\t1|0")), [[0, 2], [1, 0], [2, 1]]),
    "vcf-half-missing": (
        _text("g.vcf", vcf("0/.\t./1\t1/1", "./.\t0/0\t.")),
        [[NAN, NAN], [NAN, 0], [2, NAN]],
    ),  # fmt: skip
    "vcf-multiallelic": (
        _text(
            "g.vcf",
            VCF_HEAD + "1\t1\trs0\tA\tG,T\t.\t.\t.\tGT\t0/1\t1/2\t2/2\n"
            "1\t2\trs1\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\t0/0\n",
        ),
        [[1], [2], [0]],
    ),  # fmt: skip
    "vcf-allele-2-on-biallelic": (
        _text("g.vcf", vcf("0/2\t0/0\t0/0", "0/1\t0/1\t1/1")),
        [[1], [1], [2]],
    ),  # fmt: skip
    "vcf-no-header": (_text("g.vcf", "1\t1\trs0\tA\tG\t.\t.\t.\tGT\t0/1\n"), ERR),
    "vcf-empty": (_text("g.vcf", ""), ERR),
    "vcf-ragged": (_text("g.vcf", vcf("0/0\t0/1")), ERR),
    "vcf-too-many-fields": (_text("g.vcf", vcf("0/0\t0/1\t1/1\t0/0")), ERR),
    "vcf-dup-samples": (_text("g.vcf", VCF_HEAD.replace("\tC\n", "\tA\n") + ""), ERR),
    "vcf-binary": (_text("g.vcf", bytes(range(256)) * 4), ERR),
    "vcf-gz-not-gzip": (_text("g.vcf.gz", vcf("0/0\t0/1\t1/1")), ERR),
    "vcf-gz-truncated": (
        lambda d: _text("g.vcf.gz", gzip.compress(vcf("0/0\t0/1\t1/1").encode())[:30])(d),
        ERR,
    ),  # fmt: skip
    "vcf-gz-good": (_text("g.vcf.gz", vcf("0/0\t0/1\t1/1"), gz=True), [[0], [1], [2]]),
    # CSV / TSV / plain
    "csv-good": (_text("g.csv", "id,s1,s2\na,0,1\nb,2,NA\n"), [[0, 1], [2, NAN]]),
    "csv-unnamed-id": (_text("g.csv", "s1,s2\na,0,1\nb,2,2\n"), [[0, 1], [2, 2]]),
    "csv-crlf-bom": (_text("g.csv", "\ufeffid,s1\r\na,1\r\nb,0\r\n"), [[1], [0]]),
    "csv-ragged-short": (_text("g.csv", "id,s1,s2\na,0,1\nb,2\n"), ERR),
    "csv-ragged-long": (_text("g.csv", "id,s1,s2\na,0,1\nb,2,1,0\n"), ERR),
    "csv-value-3": (_text("g.csv", "id,s1,s2\na,0,3\nb,2,1\n"), ERR),
    "csv-value-minus-1": (_text("g.csv", "id,s1\na,-1\nb,2\n"), ERR),
    "csv-value-half": (_text("g.csv", "id,s1\na,0.5\nb,2\n"), ERR),
    "csv-value-letters": (_text("g.csv", "id,s1\na,AG\nb,2\n"), ERR),
    "csv-value-inf": (_text("g.csv", "id,s1\na,inf\nb,2\n"), ERR),
    "csv-header-only": (_text("g.csv", "id,s1,s2\n"), ERR),
    "csv-empty": (_text("g.csv", ""), ERR),
    "csv-blank-lines": (_text("g.csv", "\n\n  \n"), ERR),
    "csv-dup-samples": (_text("g.csv", "id,s1\na,0\na,1\n"), ERR),
    "csv-dup-snps": (_text("g.csv", "id,s1,s1\na,0,1\nb,1,1\n"), ERR),
    "csv-gz-truncated": (
        lambda d: _text("g.csv.gz", gzip.compress(b"id,s1\na,0\nb,1\n" * 50)[:40])(d),
        ERR,
    ),  # fmt: skip
    "csv-binary": (_text("g.csv", b"\xff\xfe\x00\x00" * 64), ERR),
    "plain-good": (_text("g.txt", "0 1 2\n2 NA 0\n"), [[0, 1, 2], [2, NAN, 0]]),
    "plain-ragged": (_text("g.txt", "0 1 2\n2 0\n"), ERR),
    "plain-value-9": (_text("g.txt", "0 1 9\n2 0 1\n"), ERR),
    "missing-file": (lambda d: d / "nope.csv", ERR),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_genotype_set(case, tmp_path):
    make, expected = CASES[case]
    path = make(tmp_path)
    if isinstance(expected, str):
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            read_genotypes(path)
        named = str(path.with_suffix("")) if path.suffix == ".bed" else str(path)
        assert named in str(info.value) or path.name in str(info.value), str(info.value)
        return
    got = read_genotypes(path)
    want = np.asarray(expected, dtype=np.float32)
    assert got.matrix.shape == want.shape, (case, got.matrix)
    assert np.array_equal(got.matrix, want, equal_nan=True), (case, got.matrix)


PHENO_CASES = {
    "id-column-only": b"id\na\nb\n",
    "one-token": b"id",
    "ragged": b"id,y\na,1\nb\n",
    "text-values": b"id,y\na,tall\nb,2\n",
    "fam-short": b"f a 0 0 1\n",
    "binary": b"\xff\xfe" * 50,
}


@pytest.mark.parametrize("case", sorted(PHENO_CASES))
def test_malformed_phenotypes(case, tmp_path):
    from cnnkit.genomics.io import read_phenotypes

    path = tmp_path / ("p.fam" if case.startswith("fam") else "p.csv")
    path.write_bytes(PHENO_CASES[case])
    with pytest.raises(ValueError, match="p\\.(csv|fam)"):
        read_phenotypes(path)


def test_case_count():
    bad = [c for c, (_, e) in CASES.items() if isinstance(e, str)]
    assert len(bad) >= 30
    record("genomics", malformed_sets=len(bad), wellformed_sets=len(CASES) - len(bad))


@pytest.mark.parametrize("case", sorted(c for c, (_, e) in CASES.items() if isinstance(e, str)))
def test_malformed_set_through_the_cli(case, tmp_path, capsys):
    """``cnnkit genomics cv`` on each malformed set: exit 2 and one ``error:`` line."""
    from cnnkit.cli.main import main

    path = CASES[case][0](tmp_path)
    pheno = tmp_path / "pheno.csv"
    pheno.write_text("id,y\n" + "".join(f"s{i},{i}\n" for i in range(6)))
    rc = main(["genomics", "cv", str(path), str(pheno), "--folds", "2", "--repeats", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err and err[-1].startswith("error: "), err
    assert path.name in err[-1] or path.stem in err[-1], err[-1]
    COUNTS["cli"] += 1
    record("genomics", cli_refusals=COUNTS["cli"])


COUNTS = {"cli": 0}
