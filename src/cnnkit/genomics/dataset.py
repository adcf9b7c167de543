"""Genotypes joined to a phenotype file: one or several traits (environments), fixed effects,
covariates and groups, as the commands use them.

The phenotype file is read once as a table (ids + named columns). It holds the trait(s) in
wide form (one column per environment: ``--pheno-col env1,env2``) or long form (one row per
line and environment: ``--env-col env``, ids repeat), and may hold fixed effects (``--fixed
tester``: factors), covariates (``--covariates pc1,pc2``: numbers) and a grouping
(``--group-col family`` for leave-family-out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit.genomics.io import (
    _MISSING,
    Genotypes,
    _check_ragged,
    _check_unique,
    _few,
    _is_number,
    _read_rows,
    _resolve_column,
    read_genotypes,
)


@dataclass(frozen=True)
class PhenotypeTable:
    """A phenotype file as text columns.

    Attributes:
        ids: the first column (None for a plain matrix without ids).
        names: the other columns' names (``"1"``, ``"2"``, ... for a plain matrix).
        columns: ``{name: [cell, ...]}`` one cell per row.
        first_line: the file line of row 0 (for messages).
        path: the file.
    """

    ids: list[str] | None
    names: list[str]
    columns: dict[str, list[str]]
    first_line: int
    path: str

    def column(self, col: str | int) -> tuple[str, list[str]]:
        """``(name, cells)`` of a column given by NAME or 1-based INDEX (ids not counted)."""
        header = self.names if self.ids is not None else None
        j = _resolve_column(header, len(self.names), col, Path(self.path))
        return self.names[j], self.columns[self.names[j]]


def read_phenotype_table(path: str | Path) -> PhenotypeTable:
    """Read a CSV/TSV with ids in the first column (header may leave it unnamed), a PLINK
    ``.fam`` (column 6 is the trait ``fam_phenotype``) or a plain whitespace matrix.

    Raises:
        FileNotFoundError: no such file.
        ValueError: ragged rows, no trait column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"phenotype file not found: {path}")
    rows, _ = _read_rows(path)
    if path.suffix == ".fam":
        _check_ragged(rows, 6, path, 1)
        cols = {"fam_phenotype": [r[5] for r in rows]}
        return PhenotypeTable([r[1] for r in rows], ["fam_phenotype"], cols, 1, str(path))
    if all(_is_number(t) for t in rows[0]):
        _check_ragged(rows, len(rows[0]), path, 1)
        names = [str(j + 1) for j in range(len(rows[0]))]
        cols = {nm: [r[j] for r in rows] for j, nm in enumerate(names)}
        return PhenotypeTable(None, names, cols, 1, str(path))
    header, body = rows[0], rows[1:]
    width = len(body[0]) if body else len(header)
    names = header if len(header) == width - 1 else header[1:]
    if not names:
        raise ValueError(f"{path}: no trait column after the sample ids (header {header!r})")
    _check_ragged(body, len(names) + 1, path, 2)
    _check_unique(names, path, "column name")
    cols = {nm: [r[j + 1] for r in body] for j, nm in enumerate(names)}
    return PhenotypeTable([r[0] for r in body], list(names), cols, 2, str(path))


def parse_numbers(cells: list[str], path: str, column: str, first_line: int) -> np.ndarray:
    """Cells as float64 with NaN for ``NA``/``-9``/empty.

    Raises:
        ValueError: a cell that is not a number, or infinite / too large to square, naming the
            file, the column and the lines.
    """
    out, bad = np.empty(len(cells)), []
    for i, t in enumerate(cells):
        if t.lower() in _MISSING:
            out[i] = math.nan
            continue
        try:
            v = float(t)
        except ValueError:
            bad.append(f"line {i + first_line} = {t!r}")
            continue
        if not math.isfinite(v) or abs(v) > 1e150:
            bad.append(f"line {i + first_line} = {t!r}")
        out[i] = v
    if bad:
        raise ValueError(
            f"{path}: column {column!r} must hold finite numbers (|x| <= 1e150) or NA; "
            f"found {_few(bad)}"
        )
    return out


@dataclass(frozen=True)
class Covariates:
    """Fixed-effect columns, one value per sample: factors (text levels) and covariates.

    :meth:`design` turns them into a design matrix with levels taken from the training rows.
    """

    factors: dict[str, np.ndarray] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [*self.factors, *self.numeric]

    def take(self, rows: np.ndarray) -> Covariates:
        return Covariates(
            {k: v[rows] for k, v in self.factors.items()},
            {k: v[rows] for k, v in self.numeric.items()},
        )

    def design(self, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Design matrix of ``rows``: intercept, treatment dummies of each factor's training
        levels (the first seen is the reference), covariates centred on the training mean.

        A level not among the training rows' gets the average of the factor's level effects
        (``1/k`` in each of its ``k - 1`` dummies).

        Returns:
            Shape ``(len(rows), q)``.
        """
        parts = [np.ones((len(rows), 1))]
        for values in self.factors.values():
            levels = list(dict.fromkeys(values[train].tolist()))
            index = {lv: j for j, lv in enumerate(levels)}
            dummies = np.zeros((len(rows), max(len(levels) - 1, 0)))
            for i, v in enumerate(values[rows].tolist()):
                j = index.get(v)
                if j is None:
                    dummies[i] = 1.0 / len(levels)
                elif j > 0:
                    dummies[i, j - 1] = 1.0
            parts.append(dummies)
        for values in self.numeric.values():
            parts.append((values[rows] - values[train].mean())[:, None])
        return np.hstack(parts)

    def to_dict(self) -> dict:
        return {"factors": list(self.factors), "covariates": list(self.numeric)}


@dataclass(frozen=True)
class GenomicData:
    """Genotypes with their traits and fixed effects, rows in the same order.

    Attributes:
        geno: the genotypes (every row a sample).
        y: the trait(s), shape ``(N, E)`` (E traits or environments), NaN = no record.
        traits: the trait / environment names (``E``).
        fixed: fixed effects and covariates, or None.
        groups: a group label per sample (leave-group-out), or None.
        info: what the join dropped or ignored (counts) and the files' notes.
    """

    geno: Genotypes
    y: np.ndarray
    traits: list[str]
    fixed: Covariates | None = None
    groups: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def multi(self) -> bool:
        return len(self.traits) > 1

    def take(self, rows: np.ndarray) -> GenomicData:
        idx = np.arange(self.geno.n)[rows]
        return GenomicData(
            self.geno.take(idx),
            self.y[idx],
            list(self.traits),
            None if self.fixed is None else self.fixed.take(idx),
            None if self.groups is None else self.groups[idx],
            dict(self.info),
        )


def _split_cols(cols) -> list[str]:
    if cols is None:
        return []
    items = cols.split(",") if isinstance(cols, str) else [str(c) for c in cols]
    return [c.strip() for c in items if c.strip()]


def _wide_traits(table: PhenotypeTable, pheno_col) -> tuple[list[str], np.ndarray]:
    wanted: list[str | int] = [*_split_cols(pheno_col)] or [1]
    names, values = [], []
    for col in wanted:
        name, cells = table.column(col)
        names.append(name)
        values.append(parse_numbers(cells, table.path, name, table.first_line))
    _check_unique(names, table.path, "trait column")
    return names, np.column_stack(values)


def _long_traits(
    table: PhenotypeTable, pheno_col, env_col: str
) -> tuple[list[str], list[str], np.ndarray, list[int]]:
    """Pivot a long table (id, env, trait) to wide; returns names, ids, values, first rows."""
    if table.ids is None:
        raise ValueError(f"{table.path}: --env-col needs a phenotype file with sample ids")
    _, envs = table.column(env_col)
    trait_cols = _split_cols(pheno_col)
    if len(trait_cols) > 1:
        raise ValueError(f"with env_col, pheno_col must be one column. Received: {pheno_col!r}")
    first_other = next(nm for nm in table.names if nm != env_col)
    name, cells = table.column(trait_cols[0] if trait_cols else first_other)
    vals = parse_numbers(cells, table.path, name, table.first_line)
    env_names = list(dict.fromkeys(envs))
    ids = list(dict.fromkeys(table.ids))
    row_of, col_of = {s: i for i, s in enumerate(ids)}, {e: j for j, e in enumerate(env_names)}
    y = np.full((len(ids), len(env_names)), np.nan)
    seen: dict[tuple[str, str], int] = {}
    for i, (s, e, v) in enumerate(zip(table.ids, envs, vals, strict=True)):
        if (s, e) in seen:
            raise ValueError(
                f"{table.path}: line {i + table.first_line} repeats id {s!r} in environment "
                f"{e!r} (first on line {seen[(s, e)] + table.first_line}); give one value per "
                "line and environment (e.g. its mean or BLUE)"
            )
        seen[(s, e)] = i
        y[row_of[s], col_of[e]] = v
    first = [table.ids.index(s) for s in ids]
    return env_names, ids, y, first


def _covariates(table, rows: list[int], fixed, covariates) -> Covariates | None:
    """Fixed-effect columns for the phenotype-file ``rows`` (-1: a line without a row, which
    gets no level and no covariate value: it is only predicted, never fitted)."""
    factors, numeric = {}, {}
    have = [r for r in rows if r >= 0]
    for col in _split_cols(fixed):
        name, cells = table.column(col)
        bad = [f"line {r + table.first_line}" for r in have if cells[r].lower() in _MISSING]
        if bad:
            raise ValueError(f"{table.path}: fixed effect {name!r} is missing on {_few(bad)}")
        factors[name] = np.array([cells[r] if r >= 0 else None for r in rows], dtype=object)
    for col in _split_cols(covariates):
        name, cells = table.column(col)
        vals = parse_numbers([cells[r] for r in have], table.path, name, table.first_line)
        if np.isnan(vals).any():
            raise ValueError(f"{table.path}: covariate {name!r} has missing values")
        full = np.full(len(rows), np.nan)
        full[[i for i, r in enumerate(rows) if r >= 0]] = vals
        numeric[name] = full
    return Covariates(factors, numeric) if factors or numeric else None


def _join(geno: Genotypes, ids: list[str] | None, n_rows: int, path: str, partial: bool):
    """Phenotype row of every genotyped sample (-1: none); by id, or by order without ids."""
    if geno.has_ids and ids is not None:
        index = {s: i for i, s in enumerate(ids)}
        rows = [index.get(s, -1) for s in geno.sample_ids]
        missing = [s for s, r in zip(geno.sample_ids, rows, strict=True) if r < 0]
        if len(missing) == geno.n or (missing and not partial):
            extra = [s for s in ids if s not in set(geno.sample_ids)]
            hint = f"; phenotype ids not in the genotypes: {_few(extra)}" if extra else ""
            raise ValueError(
                f"{len(missing)} of {geno.n} genotyped samples have no row in {path}: "
                f"{_few(missing)}{hint}"
            )
        return np.array(rows), n_rows - (geno.n - len(missing))
    if n_rows != geno.n:
        raise ValueError(
            f"rows are matched by order (one file has no ids) but {geno.path} has "
            f"{geno.n} samples and {path} has {n_rows} phenotype rows"
        )
    return np.arange(geno.n), 0


def load_dataset(
    geno: str | Path | Genotypes,
    pheno: str | Path,
    *,
    pheno_col=None,
    env_col: str | None = None,
    fixed=None,
    covariates=None,
    group_col: str | None = None,
    keep_unphenotyped: bool = False,
) -> GenomicData:
    """Read genotypes and phenotypes and join them by sample id (or by order without ids).

    Args:
        geno: a genotype file (see :func:`cnnkit.genomics.io.read_genotypes`) or Genotypes.
        pheno: the phenotype file.
        pheno_col: trait column(s): NAME or 1-based INDEX, several comma-separated for
            several environments (wide form); default the first trait column.
        env_col: long form: the column naming each row's environment (ids repeat).
        fixed: factor columns (comma-separated names) used as fixed effects.
        covariates: numeric columns used as covariates.
        group_col: a column of group labels (leave-group-out cross-validation).
        keep_unphenotyped: keep genotyped samples without any phenotype (no row, or all
            traits missing) with NaN traits, for breeding values; else they are dropped.

    Returns:
        The :class:`GenomicData`; ``info`` counts the dropped and ignored samples.

    Raises:
        ValueError: ids that do not match, bad values (naming file, column and lines).
    """
    g = geno if isinstance(geno, Genotypes) else read_genotypes(geno)
    table = read_phenotype_table(pheno)
    ids: list[str] | None
    if env_col:
        traits, ids, y_all, first = _long_traits(table, pheno_col, env_col)
    else:
        traits, y_all = _wide_traits(table, pheno_col)
        ids, first = table.ids, list(range(len(y_all)))
        if ids is not None:
            _check_unique(ids, table.path, "sample id")
    rows, ignored = _join(g, ids, len(y_all), table.path, keep_unphenotyped)
    has_row = rows >= 0
    y = np.full((g.n, len(traits)), np.nan)
    y[has_row] = y_all[rows[has_row]]
    keep = np.ones(g.n, bool) if keep_unphenotyped else ~np.isnan(y).all(axis=1)
    if (~np.isnan(y[keep]).all(axis=1)).sum() < 3:
        raise ValueError(f"{table.path}: fewer than 3 samples with a phenotype after joining")
    src = [first[r] if r >= 0 else -1 for r in rows]
    kept = np.flatnonzero(keep)
    cov = _covariates(table, [src[i] for i in kept], fixed, covariates)
    groups = None
    if group_col:
        _, cells = table.column(group_col)
        groups = np.array([cells[src[i]] if src[i] >= 0 else None for i in kept], dtype=object)
    info = {
        "phenotype_missing_dropped": int((~keep).sum()),
        "phenotype_rows_ignored": int(ignored),
        "unphenotyped": int(np.isnan(y[keep]).all(axis=1).sum()),
        "traits": traits,
        **g.notes,
    }
    return GenomicData(g.take(keep), y[keep], traits, cov, groups, info)


def read_fold_file(path: str | Path, ids: list[str], has_ids: bool = True) -> np.ndarray:
    """A fold label per genotyped sample from a CSV/TSV of ``id,fold``.

    The ids are the first column, or a column named ``id`` when the first is R's row names
    (``write.csv`` without ``row.names = FALSE``); the fold is the column named ``fold``, else
    the first other column. A file without ids (a plain column of folds) is matched by order.

    Returns:
        Shape ``(len(ids),)``, the labels as text.

    Raises:
        ValueError: samples without a fold (a few named), or a count mismatch by order.
    """
    table = read_phenotype_table(path)
    names_lower = [n.lower() for n in table.names]
    file_ids = table.ids
    if "id" in names_lower:
        file_ids = table.columns[table.names[names_lower.index("id")]]
    others = [n for n in table.names if n.lower() != "id"]
    col = table.names[names_lower.index("fold")] if "fold" in names_lower else others[0]
    folds = table.columns[col]
    if file_ids is None or not has_ids:
        if len(folds) != len(ids):
            raise ValueError(
                f"{path}: {len(folds)} folds for {len(ids)} samples (matched by order)"
            )
        return np.array(folds, dtype=object)
    index = dict(zip(file_ids, folds, strict=True))
    missing = [s for s in ids if s not in index]
    if missing:
        raise ValueError(f"{path}: {len(missing)} samples have no fold: {_few(missing)}")
    return np.array([index[s] for s in ids], dtype=object)
