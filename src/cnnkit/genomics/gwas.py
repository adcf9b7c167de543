"""Genome-wide association: single-marker tests with a kinship correction (EMMAX / P3D).

For each marker ``j`` the model ``y = X b + z_j beta_j + u + e``, ``u ~ N(0, s2g G)``, with
``G`` VanRaden's relationship matrix of all markers. As EMMAX (Kang et al. 2010, *Nat Genet*
42:348) and P3D (Zhang et al. 2010, *Nat Genet* 42:355) do, the variance ratio
``delta = s2e / s2g`` is estimated once by REML under the null model (no marker) and held for
every test; rotated by ``G``'s eigenvectors and scaled by ``1 / sqrt(d + delta)``, the model
becomes an ordinary regression with independent errors, so every marker's GLS estimate, its
standard error and a t test (``n - q - 1`` degrees of freedom) cost one pass over the
rotated markers. Without the kinship term, relatives and population structure inflate the
test statistics; the genomic inflation factor ``lambda`` (median chi-square / 0.4549) says
how much is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from cnnkit.explain.plots import figure_png, new_figure
from cnnkit.fileio import atomic_write_bytes, atomic_write_text
from cnnkit.genomics.kernels import vanraden_g, vanraden_scale
from cnnkit.genomics.mixed import KernelBLUP, intercept
from cnnkit.genomics.preprocess import SnpPreprocessor

CHI2_MEDIAN = 0.45493642311957305  # median of chi-square with 1 degree of freedom


@dataclass
class GwasResult:
    """Per-marker results (NaN for a marker dropped as monomorphic).

    Attributes:
        effect: the marker's allele-substitution effect (per copy of the counted allele).
        se: its standard error; p: the two-sided p-value of ``effect = 0``.
        h2: heritability under the null model (population scale); delta: ``s2e / s2g``.
        lambda_gc: the genomic inflation factor of the tested markers.
        n: lines tested; df: residual degrees of freedom of each test.
    """

    effect: np.ndarray
    se: np.ndarray
    p: np.ndarray
    h2: float
    delta: float
    lambda_gc: float
    n: int
    df: int

    @property
    def threshold(self) -> float:
        """The Bonferroni threshold ``0.05 / markers tested``."""
        return 0.05 / max(int(np.sum(np.isfinite(self.p))), 1)


def _rotation(g: np.ndarray, delta: float) -> np.ndarray:
    """``W = diag(1 / sqrt(d + delta)) U'``: ``W (G + delta I) W' = I``."""
    d, u = np.linalg.eigh(g)
    return u.T / np.sqrt(np.clip(d, 0.0, None) + delta)[:, None]


def association(
    x: np.ndarray, y: np.ndarray, fixed: np.ndarray | None = None, kinship: bool = True
) -> GwasResult:
    """Test every marker of ``x`` ``(n, L)`` (dosages, NaN missing) against ``y`` ``(n,)``.

    Args:
        x: genotypes of the phenotyped lines.
        y: the trait, finite.
        fixed: a fixed-effect design ``(n, q)`` with its intercept (default: intercept).
        kinship: False: ordinary least squares without the relationship term (the
            uncorrected scan, for comparison).

    Raises:
        ValueError: shapes disagree, or fewer lines than fixed effects + 3.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"y must be one value per line of x. Received: {y.shape} vs {x.shape}")
    xf = intercept(len(y)) if fixed is None else np.asarray(fixed, dtype=np.float64)
    q = int(np.linalg.matrix_rank(xf))
    if len(y) < q + 3:
        raise ValueError(f"GWAS needs at least {q + 3} phenotyped lines. Received: {len(y)}")
    pre = SnpPreprocessor().fit(x)
    z = pre.transform(x).astype(np.float64)
    g = vanraden_g(z, vanraden_scale(pre.means))
    null = KernelBLUP().fit(g, y, xf)
    w = _rotation(g, null.delta) if kinship else np.eye(len(y))
    effect, se, p, df = _scan(w @ z, w @ y, w @ xf, q)
    full = [np.full(x.shape[1], np.nan) for _ in range(3)]
    for out, values in zip(full, (effect, se, p), strict=True):
        out[pre.keep] = values
    chi2 = (effect / se) ** 2
    lam = float(np.median(chi2[np.isfinite(chi2)]) / CHI2_MEDIAN) if chi2.size else float("nan")
    return GwasResult(
        full[0], full[1], full[2], h2=null.h2, delta=null.delta, lambda_gc=lam, n=len(y), df=df
    )


def _scan(zs: np.ndarray, ys: np.ndarray, xs: np.ndarray, q: int):
    """Every marker's regression on the rotated data, fixed effects partialled out first
    (Frisch-Waugh): ``(effect, se, p, df)``."""
    proj = np.linalg.pinv(xs)
    ry = ys - xs @ (proj @ ys)
    rz = zs - xs @ (proj @ zs)
    ss = np.einsum("ij,ij->j", rz, rz)
    ok = ss > 1e-10 * max(float(ss.max(initial=0.0)), 1e-300)
    ss_safe = np.where(ok, ss, 1.0)
    effect = (rz.T @ ry) / ss_safe
    df = len(ys) - q - 1
    rss = np.clip(float(ry @ ry) - effect**2 * ss_safe, 0.0, None)
    se = np.sqrt(rss / df / ss_safe)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2.0 * stats.t.sf(np.abs(effect / se), df)
    return (np.where(ok, effect, np.nan), np.where(ok, se, np.nan), np.where(ok, p, np.nan), df)


def top_hits(result: GwasResult, snp_ids: list[str], k: int = 10) -> list[dict]:
    """The ``k`` smallest p-values: ``snp_id``, ``effect``, ``se``, ``p``."""
    order = np.argsort(np.where(np.isfinite(result.p), result.p, np.inf))[:k]
    return [
        {"snp_id": snp_ids[i], "effect": float(result.effect[i]), "se": float(result.se[i]),
         "p": float(result.p[i])}
        for i in order if np.isfinite(result.p[i])
    ]  # fmt: skip


def plots_png(result: GwasResult) -> tuple[bytes, bytes]:
    """``(manhattan, qq)`` PNG bytes: ``-log10 p`` per marker with the Bonferroni line, and
    observed against expected ``-log10 p`` with ``lambda``."""
    p = result.p[np.isfinite(result.p)]
    logp = -np.log10(np.clip(result.p, 1e-300, 1.0))
    fig = new_figure(figsize=(8, 3))
    ax = fig.add_subplot()
    idx = np.flatnonzero(np.isfinite(logp))
    ax.scatter(idx, logp[idx], s=4, color="#1f77b4")
    ax.axhline(-np.log10(result.threshold), ls="--", c="#d62728", label="Bonferroni 0.05")
    ax.set_xlabel("marker (genome order)")
    ax.set_ylabel("-log10 p")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    manhattan = figure_png(fig)
    fig = new_figure(figsize=(3.6, 3.6))
    ax = fig.add_subplot()
    observed = -np.log10(np.clip(np.sort(p), 1e-300, 1.0))
    expected = -np.log10((np.arange(1, len(p) + 1) - 0.5) / max(len(p), 1))
    ax.scatter(expected, observed, s=4, color="#1f77b4")
    top = float(max(expected.max(initial=1.0), observed.max(initial=1.0)))
    ax.plot([0, top], [0, top], c="#d62728", lw=1)
    ax.set_xlabel("expected -log10 p")
    ax.set_ylabel("observed -log10 p")
    ax.set_title(f"lambda = {result.lambda_gc:.3f}", fontsize=9)
    fig.tight_layout()
    return manhattan, figure_png(fig)


def gwas_csv(result: GwasResult, snp_ids: list[str]) -> str:
    """``snp_id,effect,se,p`` per marker (empty fields for a dropped marker)."""
    rows = ["snp_id,effect,se,p"]
    for i, sid in enumerate(snp_ids):
        vals = (result.effect[i], result.se[i], result.p[i])
        rows.append(",".join([sid, *("" if not np.isfinite(v) else f"{v:.6g}" for v in vals)]))
    return "\n".join(rows) + "\n"


def report_figures(result: GwasResult, snp_ids: list[str], k: int = 10) -> dict:
    """What the cross-validation report shows: method, lambda, h2, threshold, the two plots
    (PNG bytes) and the ``k`` top markers."""
    manhattan, qq = plots_png(result)
    return {
        "method": f"EMMAX/P3D mixed-model scan of {result.n} lines (VanRaden G, REML under "
        "the null)",
        "lambda_gc": result.lambda_gc, "h2": result.h2, "threshold": result.threshold,
        "manhattan": manhattan, "qq": qq, "top": top_hits(result, snp_ids, k),
    }  # fmt: skip


def write_gwas(result: GwasResult, snp_ids: list[str], out: str | Path) -> dict[str, str]:
    """``gwas.csv``, ``manhattan.png`` and ``qq.png`` in folder ``out`` (written atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manhattan, qq = plots_png(result)
    atomic_write_text(out / "gwas.csv", gwas_csv(result, snp_ids))
    atomic_write_bytes(out / "manhattan.png", manhattan)
    atomic_write_bytes(out / "qq.png", qq)
    return {name: str(out / name) for name in ("gwas.csv", "manhattan.png", "qq.png")}
