"""Readers on small files written here: round trips and the faults they must catch."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from bed_reader import to_bed

from cnnkit.genomics.io import align, read_genotypes, read_phenotypes


@pytest.fixture
def dosages():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(7, 9)).astype(np.float32)
    x[1, 2] = np.nan
    x[5, 0] = np.nan
    return x


def _ids(n, prefix="s"):
    return [f"{prefix}{i}" for i in range(n)]


def _write_bed(path, x):
    n, p = x.shape
    to_bed(path, x, properties={"iid": _ids(n), "fid": _ids(n), "sid": _ids(p, "rs")})


def test_plink_round_trip(tmp_path, dosages):
    _write_bed(tmp_path / "g.bed", dosages)
    for arg in (tmp_path / "g.bed", tmp_path / "g"):
        g = read_genotypes(arg)
        np.testing.assert_array_equal(g.matrix, dosages)
        assert g.sample_ids == _ids(7) and g.snp_ids == _ids(9, "rs")


def test_fam_short_by_one_is_caught_by_the_padding_bits(tmp_path, dosages):
    _write_bed(tmp_path / "g.bed", dosages)  # 7 samples: 2 bytes per SNP, 1 padding slot
    fam = (tmp_path / "g.fam").read_text().splitlines()
    (tmp_path / "g.fam").write_text("\n".join(fam[:-1]) + "\n")  # 6 people: same size
    with pytest.raises(ValueError, match="padding bits.*1 or more people too few"):
        read_genotypes(tmp_path / "g.bed")


def test_fam_long_by_one_is_caught_by_the_phenotype_ids(tmp_path, dosages):
    _write_bed(tmp_path / "g.bed", dosages)
    with open(tmp_path / "g.fam", "a") as fh:
        fh.write("ghost ghost 0 0 0 -9\n")  # 8 people: still 2 bytes per SNP
    (tmp_path / "p.csv").write_text("id,y\n" + "".join(f"s{i},{i}\n" for i in range(7)))
    g = read_genotypes(tmp_path / "g.bed")
    with pytest.raises(ValueError, match="ghost"):
        align(g, read_phenotypes(tmp_path / "p.csv"))


def test_bed_size_and_magic_are_checked(tmp_path, dosages):
    _write_bed(tmp_path / "g.bed", dosages)
    fam = (tmp_path / "g.fam").read_text().splitlines()
    (tmp_path / "g.fam").write_text("\n".join(fam[:3]) + "\n")
    with pytest.raises(ValueError, match="does not match"):
        read_genotypes(tmp_path / "g.bed")
    (tmp_path / "g.fam").write_text("\n".join(fam) + "\n")
    data = bytearray((tmp_path / "g.bed").read_bytes())
    data[0] = 0
    (tmp_path / "g.bed").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="magic"):
        read_genotypes(tmp_path / "g.bed")


def _random_bed(path, n, p=40, seed=1):
    x = np.random.default_rng(seed).integers(0, 3, size=(n, p)).astype(np.float32)
    _write_bed(path, x)
    return x


@pytest.mark.parametrize("real,extra", [(9, 1), (9, 3), (6, 1), (6, 2), (2, 1), (7, 1)])
def test_fam_long_by_one_to_three_is_read_from_the_padding_and_refused(tmp_path, real, extra):
    _random_bed(tmp_path / "g.bed", real)
    with open(tmp_path / "g.fam", "a") as fh:  # same .bed size: the extras sit in the padding
        fh.writelines(f"ghost{i} ghost{i} 0 0 0 -9\n" for i in range(extra))
    with pytest.raises(ValueError, match=rf"g\.fam.*probably lists {extra} more people"):
        read_genotypes(tmp_path / "g.bed")


def test_a_genuine_last_person_homozygous_a1_everywhere_is_not_refused(tmp_path):
    x = np.full((6, 40), 2.0, dtype=np.float32)  # 2 = homozygous A1, bits 00 like padding
    x[:5, :2] = 1.0  # only 2 SNPs vary: being hom A1 at all of them is no sign of padding
    _write_bed(tmp_path / "g.bed", x)
    np.testing.assert_array_equal(read_genotypes(tmp_path / "g.bed").matrix, x)


@pytest.mark.parametrize("real,listed", [(8, 7), (8, 6), (8, 5), (11, 9)])
def test_fam_short_by_one_to_three_names_the_fam_and_the_count(tmp_path, real, listed):
    _random_bed(tmp_path / "g.bed", real)
    fam = (tmp_path / "g.fam").read_text().splitlines()
    (tmp_path / "g.fam").write_text("\n".join(fam[:listed]) + "\n")
    with pytest.raises(
        ValueError,
        match=rf"g\.fam: lists {listed} people.*at least {real}.*"
        rf"{real - listed} or more people too few",
    ):
        read_genotypes(tmp_path / "g.bed")


def test_fam_short_by_four_or_more_says_how_many_the_bed_holds(tmp_path):
    _random_bed(tmp_path / "g.bed", 10)  # 3 bytes per SNP: 9 to 12 people
    fam = (tmp_path / "g.fam").read_text().splitlines()
    (tmp_path / "g.fam").write_text("\n".join(fam[:4]) + "\n")
    with pytest.raises(ValueError, match=r"g\.fam \(4 people\).*holds 9 to 12 people"):
        read_genotypes(tmp_path / "g.bed")


@pytest.mark.parametrize("sep", [" ", "  ", "\t", " \t"])
def test_plink_with_any_whitespace_in_fam_and_bim(tmp_path, dosages, sep):
    _write_bed(tmp_path / "g.bed", dosages)
    for ext in ("fam", "bim"):
        f = tmp_path / f"g.{ext}"
        f.write_text("".join(sep.join(ln.split()) + "\n" for ln in f.read_text().splitlines()))
    g = read_genotypes(tmp_path / "g.bed")
    np.testing.assert_array_equal(g.matrix, dosages)
    assert g.sample_ids == _ids(7) and g.snp_ids == _ids(9, "rs")


def test_bim_with_missing_fields_names_the_file_and_line(tmp_path, dosages):
    _write_bed(tmp_path / "g.bed", dosages)
    bim = (tmp_path / "g.bim").read_text().splitlines()
    bim[3] = " ".join(bim[3].split()[:4])
    (tmp_path / "g.bim").write_text("\n".join(bim) + "\n")
    with pytest.raises(ValueError, match=r"g\.bim: a \.bim needs 6 .*'line 4 has 4'"):
        read_genotypes(tmp_path / "g.bed")


def _csv_text(x, sep=",", r_style=True):
    head = sep.join(_ids(x.shape[1], "rs"))
    head = head if r_style else "id" + sep + head
    rows = [
        sep.join([f"s{i}"] + ["NA" if np.isnan(v) else str(int(v)) for v in row])
        for i, row in enumerate(x)
    ]
    return head + "\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("name,sep,r_style", [("g.csv", ",", True), ("g.tsv", "\t", False)])
def test_csv_round_trip(tmp_path, dosages, name, sep, r_style):
    (tmp_path / name).write_text(_csv_text(dosages, sep, r_style))
    g = read_genotypes(tmp_path / name)
    np.testing.assert_array_equal(g.matrix, dosages)
    assert g.sample_ids == _ids(7) and g.snp_ids == _ids(9, "rs") and g.has_ids


def test_csv_errors_list_offenders(tmp_path, dosages):
    text = _csv_text(dosages).replace("\ns3,", "\ns3,3,", 1)  # ragged row
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(ValueError, match="ragged rows.*line 5"):
        read_genotypes(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("a,b\ns1,0,5\ns2,x,1\n")
    with pytest.raises(ValueError, match=r"0, 1, 2 or NA.*'5'.*'x'"):
        read_genotypes(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("a,b\ns1,0,1\ns1,1,1\n")
    with pytest.raises(ValueError, match="duplicated sample id.*'s1'"):
        read_genotypes(tmp_path / "c.csv")


def test_plain_whitespace_matrix(tmp_path):
    x = np.array([[0, 1, 1], [1, 0, 1]], dtype=np.float32)
    (tmp_path / "wheat.X").write_text("0 1 1\n1 0 1\n")
    g = read_genotypes(tmp_path / "wheat.X")
    np.testing.assert_array_equal(g.matrix, x)
    assert not g.has_ids and g.sample_ids == ["line001", "line002"]


VCF = """##fileformat=VCFv4.2
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\tc
1\t10\trs1\tA\tG\t.\tPASS\t.\tGT:DP\t0/0:3\t0|1:4\t1/1:5
1\t20\trs2\tC\tT,G\t.\tPASS\t.\tGT\t0/1\t1/2\t0/0
1\t30\trs3\tA\tT\t.\tPASS\t.\tGT\t0/.\t./.\t1/0
1\t40\trs4\tA\tT\t.\tPASS\t.\tGT\t2/2\t0/0\t0/1
1\t50\t.\tA\tC\t.\tPASS\t.\tGT\t1|1\t0/1\t0/0
"""


@pytest.mark.parametrize("gz", [False, True])
def test_vcf_dosages_missing_and_skipped_sites(tmp_path, gz):
    path = tmp_path / ("g.vcf.gz" if gz else "g.vcf")
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(VCF)
    else:
        path.write_text(VCF)
    g = read_genotypes(path)
    expected = np.array([[0, np.nan, 2], [1, np.nan, 1], [2, 1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(g.matrix, expected)
    assert g.snp_ids == ["rs1", "rs3", "1:50:A:C"] and g.sample_ids == ["a", "b", "c"]
    assert g.notes["multiallelic_skipped"] == 1 and g.notes["invalid_call_skipped"] == 1


def test_phenotype_columns_by_name_and_index(tmp_path):
    (tmp_path / "p.csv").write_text(",h,w\ns0,1.5,NA\ns1,2.5,3\n")  # R style: unnamed ids
    assert read_phenotypes(tmp_path / "p.csv").name == "h"
    p = read_phenotypes(tmp_path / "p.csv", "w")
    assert p.sample_ids == ["s0", "s1"] and np.isnan(p.values[0]) and p.values[1] == 3
    assert read_phenotypes(tmp_path / "p.csv", "2").name == "w"
    with pytest.raises(ValueError, match="pheno_col"):
        read_phenotypes(tmp_path / "p.csv", "height")
    with pytest.raises(ValueError, match="1..2"):
        read_phenotypes(tmp_path / "p.csv", 3)


def test_join_by_id_reorders_and_drops_missing_phenotypes(tmp_path, dosages):
    (tmp_path / "g.csv").write_text(_csv_text(dosages))
    lines = [f"s{i},{'NA' if i == 4 else i * 10}" for i in reversed(range(7))]
    (tmp_path / "p.csv").write_text("id,y\n" + "\n".join(lines) + "\nextra,1\n")
    g, y, info = align(read_genotypes(tmp_path / "g.csv"), read_phenotypes(tmp_path / "p.csv"))
    assert g.sample_ids == ["s0", "s1", "s2", "s3", "s5", "s6"]
    np.testing.assert_array_equal(y, [0, 10, 20, 30, 50, 60])
    assert info["phenotype_missing_dropped"] == 1 and info["phenotype_rows_ignored"] == 1


def test_join_errors_name_the_ids(tmp_path, dosages):
    (tmp_path / "g.csv").write_text(_csv_text(dosages))
    (tmp_path / "p.csv").write_text("id,y\ns0,1\nzz,2\n")
    with pytest.raises(ValueError, match=r"6 of 7 genotyped samples.*'s1'.*'zz'"):
        align(read_genotypes(tmp_path / "g.csv"), read_phenotypes(tmp_path / "p.csv"))
    (tmp_path / "d.csv").write_text("id,y\ns0,1\ns0,2\n")
    with pytest.raises(ValueError, match="duplicated sample id.*'s0'"):
        read_phenotypes(tmp_path / "d.csv")
    (tmp_path / "plain.txt").write_text("1\n2\n")
    with pytest.raises(ValueError, match="matched by order.*7 samples.*2 phenotypes"):
        align(read_genotypes(tmp_path / "g.csv"), read_phenotypes(tmp_path / "plain.txt"))


def test_phenotypes_from_a_fam(tmp_path, dosages):
    _write_bed(tmp_path / "g.bed", dosages)
    fam = tmp_path / "g.fam"
    lines = fam.read_text().splitlines()
    lines = [" ".join(ln.split()[:5] + [str(i if i != 2 else -9)]) for i, ln in enumerate(lines)]
    fam.write_text("\n".join(lines) + "\n")
    p = read_phenotypes(fam)
    assert p.sample_ids == _ids(7) and np.isnan(p.values[2]) and p.values[3] == 3
    g, y, info = align(read_genotypes(tmp_path / "g.bed"), p)
    assert g.n == 6 and info["phenotype_missing_dropped"] == 1
