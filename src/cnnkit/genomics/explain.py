"""Saliency over loci (gradient x input) and its Manhattan-style plot.

For each individual, ``d prediction / d x_j * x_j`` (``x`` = centred dosage) says how much
locus ``j`` moved that prediction away from the mean genotype; the plot shows the mean
absolute value per locus, with the simulation's true QTL and interacting pairs marked.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from cnnkit.explain.plots import new_figure
from cnnkit.fileio import atomic_write_bytes
from cnnkit.genomics.io import read_genotypes
from cnnkit.genomics.run import GenomicRun, load_run, match_snps
from cnnkit.genomics.simulate import find_truth


def saliency(net: torch.nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Mean absolute gradient x input per locus.

    Args:
        net: maps ``(B, L)`` to ``(B, 1)``.
        x: centred dosages, shape ``(N, L)``.
        batch_size: rows per backward pass.

    Returns:
        Shape ``(L,)``, non-negative.
    """
    net.eval()
    total = np.zeros(x.shape[1])
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i : i + batch_size], dtype=torch.float32).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(xb).sum(), xb)
        total += (grad * xb).abs().sum(0).detach().double().numpy()  # (B, L) -> (L,)
    return total / len(x)


def _truth_loci(truth: dict | None) -> tuple[list[int], list[int]]:
    if not truth:
        return [], []
    qtl = [int(q["snp_index"]) for q in truth.get("qtl", [])]
    pairs = [int(k) for p in truth.get("pairs", []) for k in p["snp_index"]]
    return qtl, pairs


def manhattan_plot(
    scores: np.ndarray,
    out: str | Path,
    truth: dict | None = None,
    title: str = "saliency (|gradient x input|) over loci",
) -> Path:
    """Write a Manhattan-style PNG of per-locus ``scores`` ``(P,)`` (NaN = dropped SNP)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = new_figure(figsize=(10, 3.5), dpi=100, layout="tight")
    ax = fig.add_subplot()
    idx = np.arange(len(scores))
    ax.scatter(idx, scores, s=4, c="#4c72b0", label="locus")
    qtl, pairs = _truth_loci(truth)
    if qtl:
        ax.scatter(
            qtl,
            np.nan_to_num(scores[qtl]),
            s=30,
            facecolors="none",
            edgecolors="#dd2222",
            label="true QTL",
        )
    if pairs:
        ax.scatter(
            pairs,
            np.nan_to_num(scores[pairs]),
            s=30,
            marker="^",
            facecolors="none",
            edgecolors="#22aa22",
            label="true interacting SNP",
        )
    ax.set_xlabel("SNP (genome order)")
    ax.set_ylabel("mean |grad x input|")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out, buf.getvalue())
    return out


def explain_run(run, out: str | Path, *, geno: str | Path | None = None, top: int = 10) -> dict:
    """Saliency of a genomic run folder over loci, plotted to ``out``.

    Args:
        run: a run folder (or a loaded :class:`cnnkit.genomics.run.GenomicRun`).
        out: the PNG to write.
        geno: genotypes to explain on (default: the run's training genotypes).
        top: how many of the most salient loci to return.

    Returns:
        ``{"out", "top_loci": [{"snp_id", "index", "saliency", "true_qtl"}], "qtl_marked"}``.
    """

    r = run if isinstance(run, GenomicRun) else load_run(run)
    geno = geno or r.config["geno"]
    g = read_genotypes(geno)
    x = r.pre.transform(match_snps(r, g))
    scores = np.full(r.pre.n_input, np.nan)
    if r.net is not None:
        scores[r.pre.keep] = saliency(r.net, x)
    elif r.config["model"] == "gblup":  # linear: gradient x input is x_j * beta_j
        beta = r.kernel.beta
        scores[r.pre.keep] = np.mean(np.abs(x.astype(np.float64) * beta), axis=0)
    else:
        raise ValueError(
            f"{r.path}: explain needs a network or a gblup run. Received: {r.config['model']}"
        )
    truth = find_truth(r.config["geno"])
    manhattan_plot(scores, out, truth)
    qtl, pairs = _truth_loci(truth)
    marked = set(qtl) | set(pairs)
    order = np.argsort(-np.nan_to_num(scores, nan=-1.0))[:top]
    ids = r.config["snp_ids"]
    return {
        "out": str(Path(out).resolve()),
        "top_loci": [
            {
                "snp_id": ids[j],
                "index": int(j),
                "saliency": float(scores[j]),
                "true_qtl": int(j) in marked,
            }
            for j in order
        ],
        "qtl_marked": len(marked),
    }
