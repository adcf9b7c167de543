"""Cross-validation outputs: ``cv.json``, ``folds.csv``, ``r_by_method.png`` and a
self-contained ``report.html`` (plots inlined as base64), written atomically.

Every number in ``cv.json`` is finite or ``null`` (a trait of 1e150 squared still fits a
float; anything that does not becomes ``null``, never ``Infinity``), so the file is valid JSON.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import jinja2
import matplotlib

from cnnkit.explain.plots import new_figure
from cnnkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, finite

_TEMPLATE = jinja2.Template(
    (Path(__file__).parent / "templates" / "cv_report.html.j2").read_text(encoding="utf-8")
)


def r_plot_png(result: dict) -> bytes:
    """Bars of mean r +/- SE per method (grouped by environment), fold values as dots."""
    methods = list(dict.fromkeys(m["method"] for m in result["methods"]))
    envs = list(dict.fromkeys(m.get("env") for m in result["methods"]))
    width = 0.8 / len(envs)
    size = (max(7, 1.1 * len(methods) * max(1, len(envs) / 2)), 3.6)
    fig = new_figure(figsize=size, layout="tight")
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    for j, env in enumerate(envs):
        for i, name in enumerate(methods):
            m = next((m for m in result["methods"]
                      if m["method"] == name and m.get("env") == env), None)  # fmt: skip
            if m is None:
                continue
            xpos = i - 0.4 + width * (j + 0.5)
            ax.bar(
                xpos,
                m["r_mean"],
                width * 0.9,
                yerr=m["r_se"] or 0,
                capsize=3,
                color=colours(j % 10),
                alpha=0.55,
                label=env if i == 0 and env else None,
            )
            pts = [f["r"] for f in result["fold_results"]
                   if f["method"] == name and f.get("env") == env]  # fmt: skip
            ax.scatter([xpos] * len(pts), pts, s=6, color="#333")
    if result.get("ceiling") is not None:
        ax.axhline(result["ceiling"], ls="--", c="#d62728", label="sqrt(h2)")
    if result.get("daetwyler") is not None:
        ax.axhline(result["daetwyler"], ls=":", c="#ff7f0e", label="Daetwyler")
    if len(envs) > 1 or result.get("ceiling") is not None:
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(methods)), methods, rotation=20)
    ax.set_ylabel("Pearson r (test folds)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _folds_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_cv_outputs(
    result: dict, out: str | Path, trait: str = "", gwas: dict | None = None
) -> dict[str, str]:
    """Write ``cv.json``, ``folds.csv``, ``r_by_method.png`` and ``report.html`` into ``out``.

    Args:
        gwas: optional GWAS figures (``manhattan``, ``qq`` PNG bytes, ``top`` rows, ``lambda_gc``)
            shown in the report beside the prediction results.

    Returns:
        The written paths by name.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "cv.json", finite(result))
    atomic_write_text(out / "folds.csv", _folds_csv(finite(result["fold_results"])))
    png = r_plot_png(result)
    atomic_write_bytes(out / "r_by_method.png", png)
    vs_gblup = {(p["method"], p.get("env")): p for p in result["paired"]
                if p.get("against", "gblup") == "gblup"}  # fmt: skip
    vs_own = [p for p in result["paired"] if p.get("against", "gblup") != "gblup"]
    html = _TEMPLATE.render(
        r=result,
        trait=trait or "?",
        plot=base64.b64encode(png).decode("ascii"),
        vs_gblup=vs_gblup,
        vs_own=vs_own,
        gwas=_gwas_images(gwas),
    )
    atomic_write_text(out / "report.html", html)
    return {
        k: str(out / f)
        for k, f in (
            ("json", "cv.json"),
            ("folds", "folds.csv"),
            ("plot", "r_by_method.png"),
            ("report", "report.html"),
        )
    }


def _gwas_images(gwas: dict | None) -> dict | None:
    if not gwas:
        return None
    return {
        **gwas,
        "manhattan": base64.b64encode(gwas["manhattan"]).decode("ascii"),
        "qq": base64.b64encode(gwas["qq"]).decode("ascii"),
    }
