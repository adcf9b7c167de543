"""Read genotype matrices (PLINK .bed, CSV/TSV, plain whitespace, VCF) and phenotypes.

Every reader returns dosages (copies of the ALT / counted allele) as ``float32`` with
``NaN`` for a missing call; a missing call is never read as 0. Files are checked for the
faults that readers usually let through: a ``.fam`` off by a few people, CSV values
outside {0, 1, 2, NA}, ragged rows, duplicated ids, multi-allelic or invalid VCF calls.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_MISSING = {"na", "nan", "", ".", "-9"}
_BED_MAGIC = b"\x6c\x1b"


@dataclass(frozen=True)
class Genotypes:
    """A genotype matrix with its ids.

    Attributes:
        matrix: dosages 0/1/2 as float32, ``NaN`` for missing. Shape ``(N, L)``.
        sample_ids: one id per row (``line001..`` when the file had none).
        snp_ids: one id per column.
        has_ids: False for a plain matrix whose rows are matched to phenotypes by order.
        path: the file read.
        notes: what the reader skipped or fixed (e.g. multi-allelic VCF sites).
    """

    matrix: np.ndarray
    sample_ids: list[str]
    snp_ids: list[str]
    has_ids: bool = True
    path: str = ""
    notes: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def p(self) -> int:
        return int(self.matrix.shape[1])

    def take(self, rows: np.ndarray) -> Genotypes:
        """The same genotypes restricted to ``rows`` (indices or a boolean mask)."""
        idx = np.arange(self.n)[rows]
        return Genotypes(
            self.matrix[idx],
            [self.sample_ids[i] for i in idx],
            list(self.snp_ids),
            self.has_ids,
            self.path,
            dict(self.notes),
        )


@dataclass(frozen=True)
class Phenotypes:
    """One trait column with its sample ids (None for a plain matrix matched by order)."""

    values: np.ndarray
    sample_ids: list[str] | None
    name: str
    path: str = ""


def _few(items, k: int = 5) -> str:
    items = list(items)
    more = f" (and {len(items) - k} more)" if len(items) > k else ""
    return ", ".join(repr(x) for x in items[:k]) + more


def _row_ids(n: int) -> list[str]:
    width = max(3, len(str(n)))
    return [f"line{i + 1:0{width}d}" for i in range(n)]


# --------------------------------------------------------------------------- format sniffing


def _bed_prefix(path: Path) -> Path | None:
    if path.suffix == ".bed" and path.exists():
        return path.with_suffix("")
    if not path.exists() and Path(str(path) + ".bed").exists():
        return path
    return None


def read_genotypes(path: str | Path) -> Genotypes:
    """Read a genotype matrix, choosing the reader from the file.

    Args:
        path: a PLINK ``.bed`` (or its prefix), a ``.vcf``/``.vcf.gz``, a CSV/TSV with a
            header of SNP ids and sample ids in the first column, or a plain whitespace
            matrix without header or ids.

    Returns:
        The :class:`Genotypes`.

    Raises:
        FileNotFoundError: the file (or a PLINK companion file) does not exist.
        ValueError: the file is malformed; the message names the offending lines/values.
    """
    path = Path(path)
    prefix = _bed_prefix(path)
    if prefix is not None:
        return read_plink(prefix)
    if not path.exists():
        raise FileNotFoundError(
            f"genotype file not found: {path} (expected a .bed/.bim/.fam prefix, "
            ".vcf[.gz], CSV/TSV or a whitespace matrix)"
        )
    name = path.name.lower()
    if name.endswith((".vcf", ".vcf.gz")):
        return read_vcf(path)
    return read_table_genotypes(path)


# --------------------------------------------------------------------------- PLINK

# A person beyond the .bed's real samples reads from the last byte's zero padding: code
# 0b00 (homozygous A1) at every SNP. A genuine person looks like that with a chance we
# estimate from the first samples; below this chance the .fam is refused as too long.
_PADDING_LOOKALIKE_CHANCE = 1e-6
_LEADING_BYTES = 16  # up to 64 samples per SNP estimate the homozygous-A1 frequencies
_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8)


def _read_plink_text(path: Path, what: str) -> list[list[str]]:
    """Rows of a .fam/.bim split on any whitespace (PLINK allows tabs or spaces)."""
    with _readable(path), open(path, encoding="utf-8") as fh:
        rows = [(i, ln.split()) for i, ln in enumerate(fh, 1) if ln.strip()]
    if not rows:
        raise ValueError(f"{path}: the file is empty; a {what} needs one line per entry")
    bad = [f"line {i} has {len(r)}" for i, r in rows if len(r) != 6]
    if bad:
        raise ValueError(
            f"{path}: a {what} needs 6 whitespace-separated fields per line; {_few(bad)}"
        )
    return [r for _, r in rows]


def _check_bed_header(bed: Path) -> None:
    with open(bed, "rb") as fh:
        head = fh.read(3)
    if len(head) < 3 or head[:2] != _BED_MAGIC:
        raise ValueError(
            f"{bed}: not a PLINK .bed file (magic bytes 6c 1b expected, got {head[:2].hex(' ')})"
        )
    if head[2] != 1:
        raise ValueError(
            f"{bed}: only SNP-major .bed files (mode byte 01) are supported; got {head[2]:02x}"
        )


def _check_bed_size(bed: Path, fam: Path, bim: Path, n_samples: int, n_snps: int) -> None:
    size, per_snp = bed.stat().st_size, math.ceil(n_samples / 4)
    expected = 3 + n_snps * per_snp
    if size == expected:
        return
    holds = ""
    if (size - 3) % n_snps == 0 and size > 3:
        b = (size - 3) // n_snps
        holds = f"; at {n_snps} SNPs the .bed holds {4 * b - 3} to {4 * b} people"
    raise ValueError(
        f"{bed}: size {size} bytes does not match {fam.name} ({n_samples} people) and "
        f"{bim.name} ({n_snps} SNPs): expected 3 + {n_snps} * ceil({n_samples}/4) = "
        f"{expected}{holds}. Check that the .fam/.bim belong to this .bed."
    )


def _check_padding_is_empty(bed: Path, fam: Path, codes: np.ndarray, n_samples: int) -> None:
    """A .fam short by 1-3 people leaves their genotypes in the padding slots."""
    real = n_samples - 4 * (math.ceil(n_samples / 4) - 1)  # people in each last byte
    held = np.flatnonzero((codes[:, real:] != 0).any(axis=0))
    if held.size:
        k = int(held[-1]) + 1
        raise ValueError(
            f"{fam}: lists {n_samples} people but {bed.name} holds genotypes for at least "
            f"{n_samples + k} (its padding bits after person {n_samples} are not zero); the "
            f".fam probably lists {k} or more people too few"
        )


def _hom_a1_log_chance(raw: np.ndarray, last: np.ndarray) -> float:
    """log P(a genuine person is homozygous A1 at every SNP), from the leading samples.

    SNPs where every leading sample is homozygous A1 carry no evidence and are skipped.

    Shape:
        raw: ``(L, bytes_per_snp)`` bed bytes; last: ``(L, k)`` codes of genuine
        samples in the last byte.
    """
    hom, m = (last == 0).sum(axis=1).astype(np.float64), last.shape[1]
    for b in range(min(raw.shape[1] - 1, _LEADING_BYTES)):
        byte = np.asarray(raw[:, b])[:, None]  # (L, 1) -> (L, 4) codes
        hom += (((byte >> _SHIFTS) & 3) == 0).sum(axis=1)
        m += 4
    informative = hom < m  # where everyone is hom A1, padding and a person look alike
    return float(np.log((hom[informative] + 1) / (m + 2)).sum())  # add-one smoothing


def _check_no_padding_people(
    bed: Path, fam: Path, raw: np.ndarray, codes: np.ndarray, n_samples: int
) -> None:
    """A .fam long by 1-3 people reads them from the zero padding: hom A1 everywhere."""
    real = n_samples - 4 * (math.ceil(n_samples / 4) - 1)
    k = 0  # trailing people homozygous A1 at every SNP; the byte's first is always real
    while k < real - 1 and not codes[:, real - 1 - k].any():
        k += 1
    if k == 0 or _hom_a1_log_chance(raw, codes[:, : real - k]) > math.log(
        _PADDING_LOOKALIKE_CHANCE
    ):
        return
    raise ValueError(
        f"{fam}: the last {k} of its {n_samples} people read as homozygous A1 at every one "
        f"of the {codes.shape[0]} SNPs, which is what the zero padding of {bed.name} looks "
        f"like; the .fam probably lists {k} more people than the .bed holds "
        f"({n_samples - k}). Remove the extra lines from the .fam"
    )


def check_bed_file(bed: Path, fam: Path, bim: Path, n_samples: int, n_snps: int) -> None:
    """Check a SNP-major ``.bed`` against the ``.fam``/``.bim`` counts.

    Checks the magic bytes and mode and the size ``3 + n_snps * ceil(n_samples / 4)``.
    A ``.fam`` off by one to three people can give the right size, so the last byte of
    every SNP is also checked: its padding slots must be zero (else the ``.fam`` is
    short), and the trailing people must not all read as that zero padding (homozygous
    A1 at every SNP, else the ``.fam`` is long).

    Raises:
        ValueError: naming the file, what was expected and what was found.
    """
    _check_bed_header(bed)
    _check_bed_size(bed, fam, bim, n_samples, n_snps)
    per_snp = math.ceil(n_samples / 4)
    raw = np.memmap(bed, dtype=np.uint8, mode="r", offset=3, shape=(n_snps, per_snp))
    codes = (np.asarray(raw[:, -1])[:, None] >> _SHIFTS) & 3  # (L,) -> (L, 4) last-byte codes
    _check_padding_is_empty(bed, fam, codes, n_samples)
    _check_no_padding_people(bed, fam, raw, codes, n_samples)


def read_plink(prefix: str | Path) -> Genotypes:
    """Read PLINK ``PREFIX.bed/.bim/.fam`` (dosage of the A1 allele) after checking them.

    The ``.fam``/``.bim`` are split on any whitespace here (bed-reader's own parser wants
    tabs in the ``.bim``) and their ids handed to bed-reader.

    Raises:
        FileNotFoundError: one of the three files is missing.
        ValueError: the files disagree (see :func:`check_bed_file`), a ``.fam``/``.bim``
            line does not have 6 fields, or sample ids repeat.
    """
    from bed_reader import open_bed

    prefix = Path(prefix)
    bed, bim, fam = (Path(f"{prefix}.{ext}") for ext in ("bed", "bim", "fam"))
    for f in (bed, bim, fam):
        if not f.exists():
            raise FileNotFoundError(f"PLINK file not found: {f}")
    iids = [r[1] for r in _read_plink_text(fam, ".fam")]
    sids = [r[1] for r in _read_plink_text(bim, ".bim")]
    _check_unique(iids, fam, "sample id")
    check_bed_file(bed, fam, bim, len(iids), len(sids))
    props = {"iid": iids, "sid": sids}
    with open_bed(bed, properties=props, num_threads=1) as reader:
        matrix = reader.read(dtype="float32", num_threads=1)
    return Genotypes(np.ascontiguousarray(matrix), iids, sids, True, str(bed))


# --------------------------------------------------------------------------- CSV / TSV / plain


def _split(line: str, delim: str | None) -> list[str]:
    return line.rstrip("\r\n").split(delim) if delim else line.split()


def _sniff_delimiter(path: Path, first: str) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return ","
    if name.endswith(".tsv"):
        return "\t"
    if "," in first:
        return ","
    if "\t" in first:
        return "\t"
    return None


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return tok.strip().strip('"').lower() in _MISSING - {""}
    return True


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


@contextmanager
def _readable(path: Path):
    """Turn a damaged gzip stream or undecodable bytes into a ValueError naming the file."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as e:
        why = f"{type(e).__name__}: {e}"
        raise ValueError(f"{path}: cannot read the file as text ({why})") from None


def _read_rows(path: Path) -> tuple[list[list[str]], str | None]:
    with _readable(path), _open_text(path) as fh:
        lines = [ln for ln in fh if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: the file is empty")
    delim = _sniff_delimiter(path, lines[0])
    return [[t.strip().strip('"') for t in _split(ln, delim)] for ln in lines], delim


def _check_unique(ids: list[str], path, what: str) -> None:
    seen, dups = set(), []
    for x in ids:
        if x in seen and x not in dups:
            dups.append(x)
        seen.add(x)
    if dups:
        raise ValueError(f"{path}: duplicated {what}s: {_few(dups)}")


def _check_ragged(rows: list[list[str]], width: int, path: Path, first_line: int) -> None:
    bad = [(i + first_line, len(r)) for i, r in enumerate(rows) if len(r) != width]
    if bad:
        shown = ", ".join(f"line {ln} has {k}" for ln, k in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{path}: ragged rows, expected {width} fields: {shown}{more}")


def _parse_dosages(cells: list[list[str]], path: Path, first_line: int, col0: int) -> np.ndarray:
    try:  # fast path: all numeric
        fast = np.array(cells, dtype=np.float32)
    except ValueError:
        fast = None
    if fast is not None and np.isin(fast, (0.0, 1.0, 2.0)).all():
        return fast
    arr = np.array(cells, dtype=object)
    lowered = np.char.lower(arr.astype(str))
    missing = np.isin(lowered, list(_MISSING - {"-9"}))
    out = np.full(arr.shape, np.nan, dtype=np.float32)
    ok = np.isin(lowered, ["0", "1", "2", "0.0", "1.0", "2.0"])
    out[ok] = lowered[ok].astype(float)
    bad = np.argwhere(~ok & ~missing)
    if len(bad):
        shown = ", ".join(
            f"line {r + first_line} column {c + col0 + 1} = {arr[r, c]!r}" for r, c in bad[:5]
        )
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{path}: genotype values must be 0, 1, 2 or NA; found {shown}{more}")
    return out


def read_table_genotypes(path: str | Path) -> Genotypes:
    """Read a CSV/TSV with a header (first column sample ids) or a plain whitespace matrix.

    A header one field shorter than the rows means the id column is unnamed (as R's
    ``write.csv`` writes it). A first line made only of numbers means a plain matrix
    without header or ids; its rows get ids ``line001..``.
    """
    path = Path(path)
    rows, _ = _read_rows(path)
    if all(_is_number(t) for t in rows[0]):
        _check_ragged(rows, len(rows[0]), path, 1)
        matrix = _parse_dosages(rows, path, 1, 0)
        snps = [f"snp{j + 1}" for j in range(matrix.shape[1])]
        return Genotypes(matrix, _row_ids(len(rows)), snps, False, str(path))
    header, body = rows[0], rows[1:]
    if not body:
        raise ValueError(f"{path}: a header but no samples")
    width = len(body[0])
    snp_ids = header if len(header) == width - 1 else header[1:]
    _check_ragged(body, len(snp_ids) + 1, path, 2)
    ids = [r[0] for r in body]
    _check_unique(ids, path, "sample id")
    _check_unique(snp_ids, path, "SNP id")
    matrix = _parse_dosages([r[1:] for r in body], path, 2, 1)
    return Genotypes(matrix, ids, list(snp_ids), True, str(path))


# --------------------------------------------------------------------------- VCF


def _gt_dosage(call: str, gt_index: int) -> tuple[float, bool]:
    """Dosage of ALT allele 1 from one sample's field; (value, valid)."""
    parts = call.split(":")
    gt = parts[gt_index] if gt_index < len(parts) else "."
    alleles = re.split(r"[/|]", gt)
    if any(a in (".", "") for a in alleles):
        return math.nan, True
    if any(a not in ("0", "1") for a in alleles):
        return math.nan, False
    return float(sum(a == "1" for a in alleles)), True


def _vcf_record(fields: list[str], counts: dict) -> tuple[str, list[float]] | None:
    ref, alt, fmt = fields[3], fields[4], fields[8].split(":")
    if "," in alt:
        counts["multiallelic_skipped"] += 1
        return None
    if "GT" not in fmt:
        counts["no_gt_skipped"] += 1
        return None
    gi = fmt.index("GT")
    values = [_gt_dosage(c, gi) for c in fields[9:]]
    if not all(valid for _, valid in values):
        counts["invalid_call_skipped"] += 1
        return None
    snp = fields[2] if fields[2] != "." else f"{fields[0]}:{fields[1]}:{ref}:{alt}"
    return snp, [v for v, _ in values]


def read_vcf(path: str | Path) -> Genotypes:
    """Read a VCF (or ``.vcf.gz``): GT allele indices to ALT dosage.

    Multi-allelic sites are skipped and counted; a biallelic site with an allele index
    above 1 (e.g. ``2/2``) is invalid and skipped and counted; any missing allele (``./.``,
    half-missing ``0/.``) gives ``NaN``, never 0. Counts are in ``Genotypes.notes``.
    """
    path = Path(path)
    counts = {"multiallelic_skipped": 0, "invalid_call_skipped": 0, "no_gt_skipped": 0}
    samples: list[str] | None = None
    snps, cols = [], []
    with _readable(path), _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith("##") or not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if line.startswith("#CHROM"):
                samples = fields[9:]
                continue
            if samples is None:
                raise ValueError(f"{path}: line {lineno}: data before the #CHROM header line")
            if len(fields) != 9 + len(samples):
                raise ValueError(
                    f"{path}: line {lineno} has {len(fields)} fields, expected {9 + len(samples)}"
                )
            rec = _vcf_record(fields, counts)
            if rec is not None:
                snps.append(rec[0])
                cols.append(rec[1])
    if samples is None:
        raise ValueError(f"{path}: no #CHROM header line; not a VCF file")
    _check_unique(samples, path, "sample id")
    matrix = np.array(cols, dtype=np.float32).T.reshape(len(samples), len(snps))
    return Genotypes(np.ascontiguousarray(matrix), samples, snps, True, str(path), counts)


# --------------------------------------------------------------------------- phenotypes


def _resolve_column(header: list[str] | None, ntraits: int, col, path: Path) -> int:
    """Index into the trait columns (0-based) from a NAME or a 1-based INDEX."""
    if col is None:
        return 0
    text = str(col).strip()
    if header is not None and text in header:
        return header.index(text)
    if text.lstrip("-").isdigit():
        k = int(text)
        if 1 <= k <= ntraits:
            return k - 1
        raise ValueError(
            f"pheno_col index must be 1..{ntraits} (trait columns after the ids, counted "
            f"from 1). Received: pheno_col={col!r} for {path}"
        )
    names = header if header is not None else [str(i + 1) for i in range(ntraits)]
    raise ValueError(
        f"pheno_col {col!r} is not a column of {path}; its traits are {_few(names, 10)}"
    )


def _parse_trait(tokens: list[str], path: Path, first_line: int) -> np.ndarray:
    """Trait values, NaN for missing; anything else but a finite number names the lines."""
    out, bad = np.empty(len(tokens)), []
    for i, t in enumerate(tokens):
        if t.lower() in _MISSING:
            out[i] = np.nan
            continue
        try:
            out[i] = float(t)
        except ValueError:
            out[i] = np.nan
            bad.append(f"line {i + first_line} = {t!r}")
            continue
        if not math.isfinite(out[i]) or abs(out[i]) > 1e150:
            bad.append(f"line {i + first_line} = {t!r}")
    if bad:
        raise ValueError(
            f"{path}: phenotype values must be finite numbers (|x| <= 1e150) or NA; "
            f"found {_few(bad)}"
        )
    return out


def read_phenotypes(path: str | Path, col: str | int | None = None) -> Phenotypes:
    """Read one trait from a CSV/TSV (ids in the first column), a ``.fam`` or a plain matrix.

    Args:
        path: the phenotype file.
        col: the trait, by header NAME or by 1-based INDEX among the trait columns
            (the id column not counted); None = the first trait column.

    Returns:
        :class:`Phenotypes` with ``NaN`` for missing values (``NA``, ``-9``).

    Raises:
        FileNotFoundError, ValueError: missing file, unknown column, bad values, duplicated ids.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"phenotype file not found: {path}")
    rows, _ = _read_rows(path)
    if path.suffix == ".fam":
        _check_ragged(rows, 6, path, 1)
        ids = [r[1] for r in rows]
        _check_unique(ids, path, "sample id")
        return Phenotypes(
            _parse_trait([r[5] for r in rows], path, 1), ids, "fam_phenotype", str(path)
        )
    if all(_is_number(t) for t in rows[0]):
        _check_ragged(rows, len(rows[0]), path, 1)
        j = _resolve_column(None, len(rows[0]), col, path)
        return Phenotypes(
            _parse_trait([r[j] for r in rows], path, 1), None, f"trait{j + 1}", str(path)
        )
    header, body = rows[0], rows[1:]
    width = len(body[0]) if body else len(header)
    names = header if len(header) == width - 1 else header[1:]
    if not names:
        raise ValueError(f"{path}: no trait column after the sample ids (header {header!r})")
    _check_ragged(body, len(names) + 1, path, 2)
    j = _resolve_column(names, len(names), col, path)
    ids = [r[0] for r in body]
    _check_unique(ids, path, "sample id")
    return Phenotypes(_parse_trait([r[j + 1] for r in body], path, 2), ids, names[j], str(path))


# --------------------------------------------------------------------------- joining


def align(geno: Genotypes, pheno: Phenotypes) -> tuple[Genotypes, np.ndarray, dict]:
    """Match phenotypes to genotype rows; drop samples whose phenotype is missing.

    Ids are joined when both files have them; otherwise rows are matched by order and
    the counts must agree. Every genotyped sample needs a phenotype row; phenotype rows
    without genotypes are ignored and counted.

    Returns:
        ``(genotypes, y, info)`` where ``y`` has shape ``(N,)`` and ``info`` counts what
        was dropped or ignored.

    Raises:
        ValueError: counts differ (by-order matching) or ids are missing, listing a few.
    """
    if geno.has_ids and pheno.sample_ids is not None:
        index = {s: i for i, s in enumerate(pheno.sample_ids)}
        missing = [s for s in geno.sample_ids if s not in index]
        if missing:
            extra = [s for s in pheno.sample_ids if s not in set(geno.sample_ids)]
            hint = f"; phenotype ids not in the genotypes: {_few(extra)}" if extra else ""
            raise ValueError(
                f"{len(missing)} of {geno.n} genotyped samples have no row in {pheno.path}: "
                f"{_few(missing)}{hint}"
            )
        y = pheno.values[[index[s] for s in geno.sample_ids]]
        ignored = len(pheno.sample_ids) - geno.n
    else:
        if len(pheno.values) != geno.n:
            raise ValueError(
                f"rows are matched by order (one file has no ids) but {geno.path} has "
                f"{geno.n} samples and {pheno.path} has {len(pheno.values)} phenotypes"
            )
        y, ignored = pheno.values, 0
    keep = ~np.isnan(y)
    info = {"phenotype_missing_dropped": int((~keep).sum()), "phenotype_rows_ignored": ignored}
    if keep.sum() < 3:
        raise ValueError(f"{pheno.path}: fewer than 3 samples with a phenotype after joining")
    return geno.take(keep), y[keep].astype(np.float64), info
