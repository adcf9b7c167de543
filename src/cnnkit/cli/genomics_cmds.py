"""``cnnkit genomics simulate|cv|gwas|train|predict|explain``: the SNP workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from cnnkit.cli._common import JSON_OPTION, emit, log
from cnnkit.fileio import atomic_write_text, finite
from cnnkit.genomics.cv import CVConfig, cross_validate
from cnnkit.genomics.dataset import load_dataset, read_fold_file
from cnnkit.genomics.explain import explain_run
from cnnkit.genomics.gwas import association, report_figures, top_hits, write_gwas
from cnnkit.genomics.kernels import read_relationship
from cnnkit.genomics.methods import default_methods, parse_methods
from cnnkit.genomics.report import write_cv_outputs
from cnnkit.genomics.run import predict_run, train_run
from cnnkit.genomics.simulate import SimConfig, find_truth, simulate, write_simulation

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


NO_EARLY_STOPPING = typer.Option(
    False,
    "--no-early-stopping",
    help="Networks: train exactly --epochs epochs on every training row (no inner "
    "validation split, no best-epoch restore); the deep path then always trains.",
)


def _train_overrides(
    epochs, batch_size, lr, weight_decay, patience, task, ensemble, no_early_stopping=False
) -> dict:
    """Training settings given on the command line; the rest are the model's defaults."""
    given = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        task=task,
        ensemble=ensemble,
        early_stopping=False if no_early_stopping else None,
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


FIXED = typer.Option(
    None, "--fixed", help="Phenotype-file columns used as fixed-effect factors (trial,tester)."
)
COVARIATES = typer.Option(
    None, "--covariates", help="Numeric phenotype-file columns used as covariates (pc1,pc2)."
)
KINSHIP = typer.Option(
    None,
    "--kinship",
    help="Relationship matrix (pedigree A or any K) for method kblup: CSV "
    "with ids as header and first column, or a plain matrix in genotype order.",
)
SELECT = typer.Option(
    "reml",
    "--select",
    help="Kernel models' variance ratio (and RKHS bandwidth): reml "
    "(restricted likelihood, as rrBLUP/sommer) or loo (exact leave-one-out error).",
)
ENV_COL = typer.Option(
    None, "--env-col", help="Long phenotype file: the column naming each row's environment."
)


@genomics_app.command("cv")
def cv_cmd(
    geno: Path = typer.Argument(..., help=GENO_HELP),
    pheno: Path = typer.Argument(..., help=PHENO_HELP),
    pheno_col: str | None = typer.Option(
        None,
        "--pheno-col",
        help="Trait column(s): NAME or INDEX (1 = first trait column); "
        "several comma-separated = several environments.",
    ),
    env_col: str | None = ENV_COL,
    methods: str | None = typer.Option(
        None,
        "--methods",
        help="Comma-separated, from: cnn, mlp, gblup, rkhs, ridge, lasso, elasticnet, kblup; "
        "several environments: gblup_me, rkhs_me (main + G x E), gblup_mt, rkhs_mt "
        "(unstructured), cnn_me, mlp_me (one output per environment). Default: all "
        "single-environment ones but kblup (added with --kinship), + gblup_me, rkhs_me, "
        "cnn_me with several environments.",
    ),
    folds: int = typer.Option(5, "--folds"),
    repeats: int = typer.Option(2, "--repeats"),
    scheme: str = typer.Option(
        "cv1",
        "--scheme",
        help="cv1 (new lines), cv2 (lines seen in some environments), leave-env-out.",
    ),
    fold_file: Path | None = typer.Option(
        None, "--fold-file", help="CSV of id,fold: your own folds (replaces --folds/--repeats)."
    ),
    group_col: str | None = typer.Option(
        None, "--group-col", help="Phenotype-file column of groups (family): leave-group-out."
    ),
    fixed: str | None = FIXED,
    covariates: str | None = COVARIATES,
    kinship: Path | None = KINSHIP,
    seed: int = typer.Option(0, "--seed"),
    h2: float | None = typer.Option(None, "--h2", help="Fix the kernel models' h2 (no REML)."),
    select: str = SELECT,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for cv.json and report.html; finished folds are kept in "
        "DIR/progress.jsonl, and the same command resumes an interrupted run.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Discard an unfinished run of other settings in --out."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device of the networks."),
    jobs: int = typer.Option(1, "--jobs", help="Worker processes for the (fold, method) tasks."),
    ensemble: int | None = ENSEMBLE,
    epochs: int | None = typer.Option(
        None, "--epochs", help="Networks' epochs (default 150, with early stopping)."
    ),
    no_early_stopping: bool = NO_EARLY_STOPPING,
    gwas: bool = typer.Option(
        False, "--gwas", help="Also a kinship-corrected GWAS: Manhattan and QQ plots in the report."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cross-validate the methods on identical folds; r, MSE, slope with SE.

    Example: cnnkit genomics cv sim/geno.bed sim/pheno.csv --methods gblup,rkhs,cnn --out cv
    """
    data = load_dataset(
        geno, pheno, pheno_col=_pheno_col(pheno_col), env_col=env_col, fixed=fixed,
        covariates=covariates, group_col=group_col,
    )  # fmt: skip
    chosen = parse_methods(methods) if methods else default_methods(data.multi, kinship)
    cfg = CVConfig(
        methods=tuple(chosen), folds=folds, repeats=repeats, seed=seed, h2=h2, device=device,
        n_jobs=jobs, scheme=scheme.strip().lower().replace("_", "-"), select=select,
    )  # fmt: skip
    trait = ",".join(data.traits)
    log(f"{data.geno.n} samples x {data.geno.p} SNPs, trait {trait}")
    extra = _cv_extras(data, kinship, fold_file)
    progress = None
    if out is not None:
        progress = out / "progress.jsonl"
        if overwrite and progress.exists():
            progress.unlink()
    train = _train_overrides(epochs, None, None, None, None, None, ensemble, no_early_stopping)
    result = cross_validate(
        data.geno.matrix, data.y if data.multi else data.y[:, 0], cfg, train=train or None,
        simulation=find_truth(geno), log=log, fixed=data.fixed, envs=data.traits,
        groups=data.groups, progress_file=progress, **extra,
    )  # fmt: skip
    result["trait"], result["data"] = trait, data.info
    if data.fixed is not None:
        result["fixed"] = data.fixed.to_dict()
    if kinship is not None:
        result["kinship"] = str(Path(kinship).resolve())
    figures = None
    if gwas:
        figures = _gwas_figures(data, out)
        result["gwas"] = {k: v for k, v in figures.items() if k not in ("manhattan", "qq")}
    if out is not None:
        result["outputs"] = write_cv_outputs(result, out, trait, gwas=figures)
        progress.unlink(missing_ok=True)  # type: ignore[union-attr]
    shown = finite({k: v for k, v in result.items() if k != "fold_results"})
    emit(shown, as_json, _cv_text)


def _gwas_figures(data, out: Path | None) -> dict:
    """The GWAS of the first trait column for the report (and ``OUT/gwas.csv``)."""
    if out is None:
        raise ValueError("--gwas draws its plots into the report: give --out DIR")
    design = _fixed_design(data)
    res = association(data.geno.matrix, data.y[:, 0], design)
    write_gwas(res, data.geno.snp_ids, out)
    return report_figures(res, data.geno.snp_ids)


def _fixed_design(data):
    if data.fixed is None:
        return None
    every = np.arange(data.geno.n)
    return data.fixed.design(every, every)


@genomics_app.command("gwas")
def gwas_cmd(
    geno: Path = typer.Argument(..., help=GENO_HELP),
    pheno: Path = typer.Argument(..., help=PHENO_HELP),
    pheno_col: str | None = PHENO_COL,
    fixed: str | None = FIXED,
    covariates: str | None = COVARIATES,
    out: Path = typer.Option(..., "--out", help="Folder for gwas.csv, manhattan.png, qq.png."),
    top: int = typer.Option(10, "--top", help="Markers listed in the output."),
    naive: bool = typer.Option(
        False, "--no-kinship", help="Ordinary least squares without the kinship term (inflated)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Single-marker tests with a kinship correction (EMMAX/P3D); Manhattan and QQ plots.

    Example: cnnkit genomics gwas sim/geno.bed sim/pheno.csv --out gwas
    """
    data = load_dataset(
        geno, pheno, pheno_col=_pheno_col(pheno_col), fixed=fixed, covariates=covariates
    )
    if data.multi:
        raise ValueError(
            f"--pheno-col: genomics gwas tests one trait column. Received: {','.join(data.traits)}"
        )
    res = association(data.geno.matrix, data.y[:, 0], _fixed_design(data), kinship=not naive)
    result = {
        "n": res.n, "markers": int(np.sum(np.isfinite(res.p))), "lambda_gc": res.lambda_gc,
        "h2": res.h2, "threshold": res.threshold, "kinship": not naive,
        "top": top_hits(res, data.geno.snp_ids, top),
        "outputs": write_gwas(res, data.geno.snp_ids, out),
    }  # fmt: skip
    emit(result, as_json, _gwas_text)


def _gwas_text(r: dict) -> str:
    lines = [
        f"{r['n']} lines, {r['markers']} markers; lambda = {r['lambda_gc']:.3f}, "
        f"h2 (null model) = {r['h2']:.3f}, Bonferroni p < {r['threshold']:.3g}",
        f"{'snp':20s} {'effect':>10s} {'se':>10s} {'p':>10s}",
    ]
    for t in r["top"]:
        lines.append(f"{t['snp_id']:20s} {t['effect']:10.4g} {t['se']:10.3g} {t['p']:10.3g}")
    return "\n".join([*lines, f"written: {', '.join(r['outputs'].values())}"])


def _cv_extras(data, kinship: Path | None, fold_file: Path | None) -> dict:
    """The relationship matrix and user folds, ordered like the genotypes."""
    g = data.geno
    extra: dict = {}
    if kinship is not None:
        extra["kinship"] = read_relationship(kinship, g.sample_ids if g.has_ids else None, g.n)
    if fold_file is not None:
        extra["fold_of"] = read_fold_file(fold_file, g.sample_ids, g.has_ids)
    return extra


def _f(v, width: int = 0, digits: int = 3) -> str:
    """A number for the text table; None (not finite) as ``n/a``."""
    return f"{v:{width}.{digits}f}" if v is not None else f"{'n/a':>{width}s}"


def _cv_text(r: dict) -> str:
    lines = [
        f"n={r['n']} p={r['p']} folds={r['folds']} repeats={r['repeats']} scheme={r['scheme']}",
        f"{'method':12s} {'env':>8s} {'r':>14s} {'mse':>14s} {'slope':>6s} {'r - gblup':>15s}",
    ]
    paired = {(p["method"], p.get("env")): p for p in r["paired"] if p["against"] == "gblup"}
    own = {(p["method"], p.get("env")): p for p in r["paired"] if p["against"] != "gblup"}
    for m in r["methods"]:
        key = (m["method"], m.get("env"))
        d = paired.get(key)
        diff = f"{d['r_diff_mean']:+.3f} +/- {d['r_diff_se']:.3f}" if d else ""
        lines.append(
            f"{m['method']:12s} {str(m.get('env', '')):>8s} {_f(m['r_mean'])} +/- {_f(m['r_se'])} "
            f"{_f(m['mse_mean'])} +/- {_f(m['mse_se'])} {_f(m['slope_mean'], 6, 2)} {diff:>15s}"
        )
        if key in own:
            o = own[key]
            lines.append(
                f"{'':12s} {'':>8s} {m['method']} - {o['against']}: "
                f"{o['r_diff_mean']:+.3f} +/- {o['r_diff_se']:.3f}"
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
    model: str = typer.Option(
        "snp_cnn1d",
        "--model",
        help="snp_cnn1d (cnn), snp_mlp (mlp), or a kernel model: "
        "gblup, rkhs, kblup (these also write gebv.csv: breeding values with reliabilities "
        "for every genotyped line, phenotyped or not; gblup also marker_effects.csv).",
    ),
    fixed: str | None = FIXED,
    covariates: str | None = COVARIATES,
    kinship: Path | None = KINSHIP,
    h2: float | None = typer.Option(None, "--h2", help="Fix a kernel model's h2 (no REML)."),
    select: str = SELECT,
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
    no_early_stopping: bool = NO_EARLY_STOPPING,
    device: str = typer.Option("cpu", "--device"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train a SNP network or a kernel model on all phenotyped samples; write a run folder.

    Example: cnnkit genomics train sim/geno.bed sim/pheno.csv --model gblup --out gebv-run
    """
    cfg = _train_overrides(
        epochs, batch_size, lr, weight_decay, patience, task, ensemble, no_early_stopping
    )
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
        fixed=fixed,
        covariates=covariates,
        kinship=kinship,
        h2=h2,
        select=select,
    )
    result = {
        "run": str(Path(out).resolve()),
        "model": saved["model"],
        "n": saved["data"]["n"],
        "snps_kept": saved["snps_kept"],
        "snps_dropped": saved["snps_dropped"],
        "trait": saved["data"]["trait"],
    }
    if "train" in saved:
        result.update(
            epochs_run=saved["epochs_run"], best_val_loss=saved["best_val_loss"],
            ensemble=saved["train"]["ensemble"],
        )  # fmt: skip
    else:
        result.update(
            h2=saved["h2"], h2_se=saved["h2_se"], n_predicted=saved["n_predicted"],
            gebv=str(Path(out, "gebv.csv").resolve()),
        )  # fmt: skip
    emit(result, as_json, _train_text)


def _train_text(r: dict) -> str:
    head = (
        f"trained {r['model']} on {r['n']} samples "
        f"({r['snps_kept']} SNPs, {r['snps_dropped']} monomorphic dropped)"
    )
    if "h2" in r:
        head += (
            f"\nh2 {r['h2']:.3f} +/- {r['h2_se']:.3f} (REML); breeding values for "
            f"{r['n_predicted']} unphenotyped lines too: {r['gebv']}"
        )
    return f"{head}\nrun: {r['run']}"


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
    rows = predict_run(run, geno)
    cols = ["sample_id", "prediction"] + (["gebv", "reliability"] if "gebv" in rows[0] else [])
    if out is not None:
        body = "".join(
            ",".join(str(r[c]) if c == "sample_id" else f"{r[c]:.6g}" for c in cols) + "\n"
            for r in rows
        )
        atomic_write_text(out, ",".join(cols) + "\n" + body)
    emit(
        rows,
        as_json,
        lambda rs: "\n".join(
            "\t".join(str(r[c]) if c == "sample_id" else f"{r[c]:.4f}" for c in cols) for r in rs
        ),
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
