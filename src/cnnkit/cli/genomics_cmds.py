"""``cnnkit genomics simulate|cv|train|predict|explain``: the SNP workflow."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli._common import JSON_OPTION, emit, log

genomics_app = typer.Typer(
    name="genomics",
    help="Genomic prediction: 1D CNN / MLP on SNP matrices vs GBLUP and ridge baselines.\n\n"
    "Example: cnnkit genomics simulate --out sim && cnnkit genomics cv sim/geno.bed sim/pheno.csv",
    no_args_is_help=True,
)

GENO_HELP = "Genotypes: PLINK .bed (or prefix), .vcf[.gz], CSV/TSV with ids, or a plain matrix."
PHENO_HELP = "Phenotypes: CSV/TSV with ids in the first column, a .fam, or a plain matrix."
PHENO_COL = typer.Option(
    None, "--pheno-col", help="Trait column: header NAME or INDEX (1 = first trait column)."
)


def _pheno_col(value: str | None) -> str | None:
    return None if value is None else value.strip()


ENSEMBLE = typer.Option(
    None,
    "--ensemble",
    help="Networks averaged per fit (seeds from --seed; N times the fit time). "
    "Default: 3 for snp_cnn1d, 1 for snp_mlp.",
)


def _train_overrides(epochs, batch_size, lr, weight_decay, patience, task, ensemble) -> dict:
    """Training settings given on the command line; the rest are the model's defaults."""
    given = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        task=task,
        ensemble=ensemble,
    )
    return {k: v for k, v in given.items() if v is not None}


@genomics_app.command("simulate")
def simulate_cmd(
    out: Path = typer.Option(
        ..., "--out", help="Folder for geno.bed/.bim/.fam, pheno.csv, truth.json."
    ),
    n: int = typer.Option(2000, "--n", help="Individuals."),
    snps: int = typer.Option(2000, "--snps", help="SNPs after thinning."),
    h2: float = typer.Option(0.5, "--h2", help="Heritability (genetic share of the variance)."),
    trait: str = typer.Option("additive", "--trait", help="additive|local-epistasis|mixed|null."),
    seed: int = typer.Option(0, "--seed"),
    ne: int = typer.Option(1000, "--ne", help="Effective population size of the coalescent."),
    genome_morgans: float = typer.Option(1.0, "--genome-morgans", help="Chromosome length (M)."),
    n_qtl: int = typer.Option(100, "--n-qtl", help="Additive QTL (pairs: half of it)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Simulate genotypes with linkage (msprime) and a trait of known h2 (tstrait).

    Example: cnnkit genomics simulate --n 500 --snps 2000 --h2 0.5 --out sim
    """
    from cnnkit.genomics.simulate import SimConfig, simulate, write_simulation

    cfg = SimConfig(
        n=n,
        snps=snps,
        h2=h2,
        trait=trait.replace("_", "-"),
        seed=seed,
        ne=ne,
        genome_morgans=genome_morgans,
        n_qtl=n_qtl,
    )
    log(f"simulating {n} x {snps} ({cfg.trait}, h2={h2}, seed={seed}) ...")
    paths = write_simulation(simulate(cfg), out)
    result = {**paths, "n": n, "snps": snps, "h2": h2, "trait": cfg.trait, "seed": seed}
    emit(result, as_json, lambda r: "\n".join(f"{k}: {v}" for k, v in paths.items()))


@genomics_app.command("cv")
def cv_cmd(
    geno: Path = typer.Argument(..., help=GENO_HELP),
    pheno: Path = typer.Argument(..., help=PHENO_HELP),
    pheno_col: str | None = PHENO_COL,
    methods: str = typer.Option("cnn,mlp,gblup,ridge,lasso,elasticnet", "--methods"),
    folds: int = typer.Option(5, "--folds"),
    repeats: int = typer.Option(2, "--repeats"),
    seed: int = typer.Option(0, "--seed"),
    h2: float | None = typer.Option(None, "--h2", help="Fix GBLUP's h2 instead of inner CV."),
    out: Path | None = typer.Option(None, "--out", help="Folder for cv.json and report.html."),
    device: str = typer.Option("cpu", "--device", help="Torch device of the networks."),
    jobs: int = typer.Option(1, "--jobs", help="Worker processes for the (fold, method) tasks."),
    ensemble: int | None = ENSEMBLE,
    as_json: bool = JSON_OPTION,
) -> None:
    """Cross-validate the methods on identical folds; r, MSE, slope with SE.

    Example: cnnkit genomics cv sim/geno.bed sim/pheno.csv --methods cnn,gblup --out cv
    """
    from cnnkit.genomics.cv import CVConfig, cross_validate
    from cnnkit.genomics.methods import parse_methods
    from cnnkit.genomics.report import write_cv_outputs
    from cnnkit.genomics.run import load_data
    from cnnkit.genomics.simulate import find_truth

    cfg = CVConfig(
        methods=tuple(parse_methods(methods)),
        folds=folds,
        repeats=repeats,
        seed=seed,
        h2=h2,
        device=device,
        n_jobs=jobs,
    )
    g, y, info = load_data(geno, pheno, _pheno_col(pheno_col))
    log(f"{g.n} samples x {g.p} SNPs, trait {info['trait']}")
    train = None if ensemble is None else {"ensemble": ensemble}
    result = cross_validate(g.matrix, y, cfg, train=train, simulation=find_truth(geno), log=log)
    result["trait"], result["data"] = info["trait"], info
    if out is not None:
        result["outputs"] = write_cv_outputs(result, out, info["trait"])
    emit({k: v for k, v in result.items() if k != "fold_results"}, as_json, _cv_text)


def _cv_text(r: dict) -> str:
    lines = [
        f"n={r['n']} p={r['p']} folds={r['folds']} repeats={r['repeats']}",
        f"{'method':12s} {'r':>14s} {'mse':>14s} {'slope':>6s} {'r - gblup':>15s}",
    ]
    paired = {p["method"]: p for p in r["paired"]}
    for m in r["methods"]:
        d = paired.get(m["method"])
        diff = f"{d['r_diff_mean']:+.3f} +/- {d['r_diff_se']:.3f}" if d else ""
        lines.append(
            f"{m['method']:12s} {m['r_mean']:.3f} +/- {m['r_se']:.3f} "
            f"{m['mse_mean']:.3f} +/- {m['mse_se']:.3f} {m['slope_mean']:6.2f} {diff:>15s}"
        )
    lines.append(f"monomorphic SNPs dropped per training fold: up to {r['snps_dropped_max']}")
    if r.get("ceiling") is not None:
        dae = f", Daetwyler {r['daetwyler']:.3f}" if r.get("daetwyler") is not None else ""
        lines.append(f"ceiling sqrt(h2) {r['ceiling']:.3f}{dae}")
    if r.get("outputs"):
        lines.append(f"report: {Path(r['outputs']['report']).resolve()}")
    return "\n".join(lines)


@genomics_app.command("train")
def train_cmd(
    geno: Path = typer.Argument(..., help=GENO_HELP),
    pheno: Path = typer.Argument(..., help=PHENO_HELP),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    pheno_col: str | None = PHENO_COL,
    model: str = typer.Option("snp_cnn1d", "--model", help="snp_cnn1d (cnn) or snp_mlp (mlp)."),
    epochs: int = typer.Option(150, "--epochs"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="L2 penalty. Default: 1e-2 for snp_cnn1d, 1e-3 for snp_mlp."
    ),
    patience: int = typer.Option(15, "--patience", help="Early-stopping patience (epochs)."),
    task: str = typer.Option("regression", "--task", help="regression|binary."),
    seed: int = typer.Option(0, "--seed"),
    ensemble: int | None = ENSEMBLE,
    device: str = typer.Option("cpu", "--device"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train a SNP network on all samples and write a run folder.

    Example: cnnkit genomics train sim/geno.bed sim/pheno.csv --out snp-run
    """
    from cnnkit.genomics.run import train_run

    cfg = _train_overrides(epochs, batch_size, lr, weight_decay, patience, task, ensemble)
    saved = train_run(
        geno,
        pheno,
        out,
        pheno_col=_pheno_col(pheno_col),
        model=model,
        train=cfg,
        seed=seed,
        overwrite=overwrite,
        device=device,
    )
    result = {
        "run": str(Path(out).resolve()),
        "model": saved["model"],
        "n": saved["data"]["n"],
        "snps_kept": saved["snps_kept"],
        "snps_dropped": saved["snps_dropped"],
        "epochs_run": saved["epochs_run"],
        "best_val_loss": saved["best_val_loss"],
        "trait": saved["data"]["trait"],
        "ensemble": saved["train"]["ensemble"],
    }
    emit(
        result,
        as_json,
        lambda r: (
            f"trained {r['model']} on {r['n']} samples "
            f"({r['snps_kept']} SNPs, {r['snps_dropped']} monomorphic dropped)\nrun: {r['run']}"
        ),
    )


@genomics_app.command("predict")
def predict_cmd(
    run: Path = typer.Argument(..., help="Run folder from `cnnkit genomics train`."),
    geno: Path = typer.Argument(..., help=GENO_HELP),
    out: Path | None = typer.Option(None, "--out", help="Also write sample_id,prediction CSV."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Predict the trait of every sample in GENO.

    Example: cnnkit genomics predict snp-run new.bed --out predictions.csv
    """
    from cnnkit.genomics.run import predict_run

    rows = predict_run(run, geno)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            "sample_id,prediction\n"
            + "".join(f"{r['sample_id']},{r['prediction']:.6g}\n" for r in rows),
            encoding="utf-8",
        )
    emit(
        rows, as_json, lambda rs: "\n".join(f"{r['sample_id']}\t{r['prediction']:.4f}" for r in rs)
    )


@genomics_app.command("explain")
def explain_cmd(
    run: Path = typer.Argument(..., help="Run folder from `cnnkit genomics train`."),
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    geno: Path | None = typer.Option(
        None, "--geno", help="Genotypes (default: the training ones)."
    ),
    top: int = typer.Option(10, "--top", help="Loci listed in the output."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Saliency over loci (gradient x input) as a Manhattan-style plot.

    Example: cnnkit genomics explain snp-run --out saliency.png
    """
    from cnnkit.genomics.explain import explain_run

    result = explain_run(run, out, geno=geno, top=top)
    emit(
        result,
        as_json,
        lambda r: "\n".join(
            [f"{t['snp_id']}\t{t['saliency']:.4g}" for t in r["top_loci"]] + [f"plot: {r['out']}"]
        ),
    )


def register(app: typer.Typer) -> None:
    """Add ``cnnkit genomics ...`` to the CLI."""
    app.add_typer(genomics_app, name="genomics")
