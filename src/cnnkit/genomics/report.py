"""Cross-validation outputs: ``cv.json``, ``folds.csv``, ``r_by_method.png`` and a
self-contained ``report.html`` (the plot inlined as base64)."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import jinja2

_TEMPLATE = jinja2.Template(
    (Path(__file__).parent / "templates" / "cv_report.html.j2").read_text(encoding="utf-8")
)


def r_plot_png(result: dict) -> bytes:
    """Bar chart of mean r +/- SE per method, fold values as dots, ceiling lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m["method"] for m in result["methods"]]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    for i, m in enumerate(result["methods"]):
        ax.bar(i, m["r_mean"], yerr=m["r_se"], color="#9ecae1", capsize=4)
        pts = [f["r"] for f in result["fold_results"] if f["method"] == m["method"]]
        ax.scatter([i] * len(pts), pts, s=8, color="#333")
    if result.get("ceiling") is not None:
        ax.axhline(result["ceiling"], ls="--", c="#d62728", label="sqrt(h2)")
    if result.get("daetwyler") is not None:
        ax.axhline(result["daetwyler"], ls=":", c="#ff7f0e", label="Daetwyler")
    if result.get("ceiling") is not None:
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("Pearson r (test folds)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_cv_outputs(result: dict, out: str | Path, trait: str = "") -> dict[str, str]:
    """Write ``cv.json``, ``folds.csv``, ``r_by_method.png`` and ``report.html`` into ``out``.

    Returns:
        The written paths by name.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    rows = result["fold_results"]
    with open(out / "folds.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    png = r_plot_png(result)
    (out / "r_by_method.png").write_bytes(png)
    html = _TEMPLATE.render(
        r=result,
        trait=trait or "?",
        plot=base64.b64encode(png).decode("ascii"),
        paired={p["method"]: p for p in result["paired"]},
    )
    (out / "report.html").write_text(html, encoding="utf-8")
    return {
        k: str(out / f)
        for k, f in (
            ("json", "cv.json"),
            ("folds", "folds.csv"),
            ("plot", "r_by_method.png"),
            ("report", "report.html"),
        )
    }
