"""Genomic run folders: fit a model on every phenotyped sample, save it, predict, reload.

Two kinds of model: the SNP networks (``snp_cnn1d``, ``snp_mlp``) and the kernel models
(``gblup``, ``rkhs``, ``kblup`` on a user relationship matrix). A run folder holds only JSON,
CSV and safetensors (never pickle)::

    RUN/
      config.json                 settings, trait, data paths, SNP ids, fit summary
      model.safetensors           networks: the weights (every member of an ensemble, keys
                                  ``members.E.*``); kernel models: the training genotypes,
                                  phenotypes and fixed-effect design the predictions need
      preprocessor.safetensors    kept SNP indices and their training means
      history.csv                 networks: epoch,loss,val_loss (member 0 of an ensemble)
      predictions.csv             kernel models: every genotyped line (phenotyped or not):
                                  id, phenotyped, observed, gebv, reliability, prediction
      marker_effects.csv          gblup: snp_id, effect (per copy of the counted allele), mean

Every file is written atomically; :func:`load_run` checks every field and array of a
folder before it builds anything, so a damaged or edited folder is one clear error.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save as save_np_bytes
from safetensors.torch import save

from cnnkit.errors import OVERWRITE, RunFolderError, user_error
from cnnkit.fileio import FileFormatError, atomic_write_bytes, atomic_write_json, atomic_write_text
from cnnkit.fileio import read_json as read_json_object
from cnnkit.genomics.baselines import GBLUP, RKHS
from cnnkit.genomics.dataset import GenomicData, load_dataset
from cnnkit.genomics.io import Genotypes, read_genotypes
from cnnkit.genomics.kernels import read_relationship
from cnnkit.genomics.methods import MODEL_OF, NeuralRegressor, average_prediction, member_seeds
from cnnkit.genomics.mixed import KernelBLUP
from cnnkit.genomics.preprocess import SnpPreprocessor
from cnnkit.genomics.runcheck import check_config, check_kernel_arrays, check_preprocessor
from cnnkit.genomics.trainer import SnpTrainConfig
from cnnkit.runs.layout import RunExistsError, create_run_dir, discard_if_unstarted
from cnnkit.runs.weights import check_header_fits, load_weights, weights_header

KIND = "genomics"
NETWORKS = tuple(MODEL_OF.values())
KERNELS = ("gblup", "rkhs", "kblup")
# What a fit writes before config.json: a failed fit removes them with the folder.
_OUTPUTS = ("model.safetensors", "preprocessor.safetensors", "history.csv", "predictions.csv",
            "marker_effects.csv")  # fmt: skip


def load_data(
    geno: str | Path, pheno: str | Path, pheno_col=None
) -> tuple[Genotypes, np.ndarray, dict]:
    """Read genotypes and one trait and join them (see :func:`cnnkit.genomics.io.align`)."""
    d = load_dataset(geno, pheno, pheno_col=pheno_col)
    info = {**d.info, "trait": d.traits[0], "n": d.geno.n, "p": d.geno.p}
    info.pop("traits", None)
    info.pop("unphenotyped", None)
    return d.geno, d.y[:, 0], info


def _model_name(model: str) -> str:
    key = model.strip().lower().replace("-", "_")
    name = MODEL_OF.get(key, key)
    if name not in (*NETWORKS, *KERNELS):
        raise ValueError(
            "model must be cnn, mlp, snp_cnn1d, snp_mlp, gblup, rkhs or kblup. "
            f"Received: model={model!r}"
        )
    return name


def train_run(
    geno: str | Path,
    pheno: str | Path,
    out: str | Path,
    *,
    pheno_col=None,
    model: str = "cnn",
    train: SnpTrainConfig | dict | None = None,
    model_kwargs: dict | None = None,
    seed: int = 0,
    overwrite: bool = False,
    device: str = "cpu",
    fixed=None,
    covariates=None,
    kinship: str | Path | None = None,
    h2: float | None = None,
    bandwidth: float | None = None,
    select: str = "reml",
) -> dict:
    """Fit a model on every phenotyped sample of GENO/PHENO and write a run folder.

    Kernel models (``gblup``, ``rkhs``, ``kblup``) also predict every genotyped sample
    without a phenotype (no row in PHENO, or NA) and write ``predictions.csv`` with reliabilities.

    Args:
        fixed, covariates: phenotype-file columns used as fixed effects (kernel models).
        kinship: a relationship-matrix file (``kblup``).
        h2: fix the heritability of a kernel model instead of REML.
        bandwidth: the Gaussian kernel's bandwidth (``rkhs``; default chosen by ``select``).
        select: ``"reml"`` or ``"loo"``: how a kernel model chooses its variance ratio.

    Returns:
        The saved ``config.json`` contents.

    Raises:
        FileExistsError: ``out`` exists (without ``overwrite``).
        ValueError: bad data or options (see the readers).
    """
    name = _model_name(model)
    out = Path(out)
    if name in NETWORKS and (fixed or covariates):
        raise ValueError(
            "fixed effects and covariates in genomics train are for gblup, rkhs and kblup; "
            f"genomics cv takes them for every method. Received: model={model!r}"
        )
    if name == "kblup" and kinship is None:
        raise ValueError("model kblup needs a relationship matrix: --kinship FILE")
    data = load_dataset(
        geno, pheno, pheno_col=pheno_col, fixed=fixed, covariates=covariates,
        keep_unphenotyped=name in KERNELS,
    )  # fmt: skip
    if data.multi:
        raise ValueError(f"genomics train fits one trait; pheno_col names {len(data.traits)}")
    try:
        run = create_run_dir(out, overwrite=overwrite, kind=KIND)
    except RunExistsError:
        raise user_error(
            FileExistsError,
            "run folder {out} already exists; pass {overwrite} to replace it",
            out=out,
            overwrite=OVERWRITE,
        ) from None
    try:
        if name in NETWORKS:
            config = _train_network(data, out, name, train, model_kwargs, seed, device)
        else:
            config = _train_kernel(data, out, name, h2, bandwidth, kinship, select)
    except BaseException:
        discard_if_unstarted(run, keep=(*_OUTPUTS,))
        raise
    config.update(
        geno=str(Path(geno).resolve()), pheno=str(Path(pheno).resolve()), pheno_col=pheno_col,
        seed=seed,
    )  # fmt: skip
    atomic_write_json(out / "config.json", config)
    return config


def _data_info(data: GenomicData) -> dict:
    info = {k: v for k, v in data.info.items() if k != "traits"}
    return {**info, "trait": data.traits[0], "n": int(np.sum(~np.isnan(data.y[:, 0]))),
            "p": data.geno.p}  # fmt: skip


def _train_network(data: GenomicData, out: Path, name, train, model_kwargs, seed, device) -> dict:
    g, y = data.geno, data.y[:, 0]
    pre = SnpPreprocessor().fit(g.matrix)
    est = NeuralRegressor(name, model_kwargs, train, seed=seed, means=pre.means, device=device)
    est.fit(pre.transform(g.matrix), y)
    _save_tensors(out / "model.safetensors", est.net.state_dict())
    atomic_write_bytes(out / "preprocessor.safetensors", save_np_bytes(pre.state()))
    _write_history(out / "history.csv", est.history)
    return {
        "kind": KIND,
        "model": name,
        "model_kwargs": _jsonable(est.model_kwargs),
        "train": est.train.to_dict(),
        "data": _data_info(data),
        "snp_ids": g.snp_ids,
        "snps_kept": int(pre.keep.size),
        "snps_dropped": pre.n_dropped,
        "y_mean": est.y_mean,
        "y_std": est.y_std,
        "gblup_h2": getattr(est, "gblup_h2", None),
        "epochs_run": len(est.history),
        "best_val_loss": _best_val(est.history),
        "members": _members(est),
    }


def _save_tensors(path: Path, state: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write_bytes(path, save(tensors))


def _members(est: NeuralRegressor) -> list[dict]:
    """Seed, epochs run and best inner-validation loss of every network of ``est``."""
    seeds = member_seeds(est.seed, est.train.ensemble)
    return [
        {
            "seed": s,
            "epochs_run": len(h),
            "best_val_loss": _best_val(h),
        }
        for s, h in zip(seeds, est.histories, strict=True)
    ]


def _best_val(history: list[dict]) -> float | None:
    """The best inner-validation loss (None when trained without early stopping)."""
    return min([h["val_loss"] for h in history if h["val_loss"] is not None], default=None)


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["epoch", "loss", "val_loss"], lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- kernel models


def _kernel_estimator(name: str, means, h2, bandwidth, delta=None, select="reml"):
    if name == "gblup":
        return GBLUP(h2=h2, means=means, delta=delta, select=select)
    return RKHS(bandwidth=bandwidth, h2=h2, delta=delta, select=select)


def _train_kernel(data: GenomicData, out: Path, name, h2, bandwidth, kinship, select) -> dict:
    """Fit a kernel model on the phenotyped rows; GEBVs and reliabilities for every row."""
    y = data.y[:, 0]
    tr = np.flatnonzero(~np.isnan(y))
    everyone = np.arange(data.geno.n)
    design = None if data.fixed is None else data.fixed.design(tr, tr)
    pre = SnpPreprocessor().fit(data.geno.matrix[tr])
    z = pre.transform(data.geno.matrix)  # (N, L): every genotyped line
    fit: dict = {}
    if name == "kblup":
        g = data.geno
        k = read_relationship(kinship, g.sample_ids if g.has_ids else None, g.n)
        model = KernelBLUP(h2, select=select).fit(k[np.ix_(tr, tr)], y[tr], design)
        gebv = k[:, tr] @ model.alpha
        rel = model.reliability(k[:, tr], np.diag(k))
        vc, b = model.vc, model.b
        fit["kinship"] = str(Path(kinship).resolve())
    else:
        est = _kernel_estimator(name, pre.means, h2, bandwidth, select=select)
        est.fit(z[tr], y[tr], design)
        gebv, rel = est.breeding_values(z), est.reliability(z)
        vc, b = est.vc, est.b if name == "gblup" else est.model.b
        fit["delta"] = float(est.lam if name == "gblup" else est.model.delta)
        if name == "rkhs":
            fit.update(bandwidth=float(est.bandwidth), median_distance=float(est.median))
        if name == "gblup":
            fit["vanraden_k"] = float(est.k)
            _write_marker_effects(out, data.geno.snp_ids, pre, est.beta)
    design_tr = np.ones((len(tr), 1)) if design is None else design
    if name != "kblup":  # kblup predicts only the lines of its K, all in predictions.csv
        arrays: dict[str, np.ndarray] = {
            "z": z[tr].astype(np.float32), "y": y[tr].astype(np.float64), "design": design_tr,
        }  # fmt: skip
        atomic_write_bytes(out / "model.safetensors", save_np_bytes(arrays))
    atomic_write_bytes(out / "preprocessor.safetensors", save_np_bytes(pre.state()))
    mean_fixed = float(np.mean(design_tr @ b))
    _write_gebv(out, data, y, gebv, rel, mean_fixed)
    return {
        "kind": KIND,
        "model": name,
        "select": select,
        "data": _data_info(data),
        "fixed": None if data.fixed is None else data.fixed.to_dict(),
        "snp_ids": data.geno.snp_ids,
        "snps_kept": int(pre.keep.size),
        "snps_dropped": pre.n_dropped,
        "variance_components": vc.to_dict(),
        "h2": vc.h2,
        "h2_se": vc.h2_se,
        "fixed_effects": b.tolist(),
        "mean_fixed": mean_fixed,
        "n_train": int(tr.size),
        "n_predicted": int(everyone.size - tr.size),
        **fit,
    }


def _write_gebv(out: Path, data: GenomicData, y, gebv, rel, mean_fixed: float) -> None:
    """``predictions.csv``: every genotyped line with its GEBV, reliability and predicted value."""
    lines = ["id,phenotyped,observed,gebv,reliability,prediction"]
    for s, v, g, r in zip(data.geno.sample_ids, y, gebv, rel, strict=True):
        obs = "" if math.isnan(v) else f"{v:.10g}"
        lines.append(f"{s},{int(not math.isnan(v))},{obs},{g:.8g},{r:.6f},{mean_fixed + g:.8g}")
    atomic_write_text(out / "predictions.csv", "\n".join(lines) + "\n")


def _write_marker_effects(out: Path, snp_ids: list[str], pre: SnpPreprocessor, beta) -> None:
    """``marker_effects.csv``: each kept SNP's effect per copy of the counted allele."""
    lines = ["snp_id,effect,mean_dosage"]
    for j, b, m in zip(pre.keep, beta, pre.means, strict=True):
        lines.append(f"{snp_ids[j]},{b:.8g},{m:.6g}")
    atomic_write_text(out / "marker_effects.csv", "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- loading


@dataclass
class GenomicRun:
    """A loaded run folder: the model, its preprocessor and settings.

    ``net`` is the network (an :class:`~cnnkit.genomics.methods.SnpEnsemble` when
    ``train.ensemble > 1``) or None for a kernel model, whose fitted estimator is ``kernel``.
    """

    path: Path
    config: dict
    net: torch.nn.Module | None
    pre: SnpPreprocessor
    kernel: Any = None

    @property
    def is_kernel(self) -> bool:
        return self.net is None

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """Predictions for dosages ``x`` ``(M, P)`` in the training SNP order; shape ``(M,)``."""
        z = self.pre.transform(x)
        if self.kernel is not None:
            return self.config["mean_fixed"] + self.kernel.breeding_values(z)
        assert self.net is not None
        binary = self.config["train"]["task"] == "binary"
        out = average_prediction(self.net, torch.as_tensor(z, dtype=torch.float32), binary)
        return out if binary else out * self.config["y_std"] + self.config["y_mean"]

    def breeding_values(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A kernel model's GEBVs and their reliabilities for dosages ``x`` ``(M, P)``."""
        z = self.pre.transform(x)
        return self.kernel.breeding_values(z), self.kernel.reliability(z)


def _read_json(path: Path) -> dict:
    try:
        return read_json_object(path, "genomics run config")
    except FileNotFoundError:
        raise RunFolderError(
            f"{path.parent} is not a genomics run folder: {path.name} is missing"
        ) from None
    except FileFormatError as e:
        raise RunFolderError(str(e)) from None


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise RunFolderError(f"{path.parent} is not a genomics run folder: {path.name} is missing")
    try:
        return load_np(str(path))
    except Exception as e:  # noqa: BLE001 - any safetensors failure means a damaged file
        raise RunFolderError(f"{path}: not a valid safetensors file ({str(e)[:160]})") from None


def _load_preprocessor(path: Path, n_snps: int) -> SnpPreprocessor:
    state = _load_arrays(path / "preprocessor.safetensors")
    check_preprocessor(state, n_snps, path / "preprocessor.safetensors")
    return SnpPreprocessor.from_state(state)


def load_run(path: str | Path) -> GenomicRun:
    """Reload a run folder written by :func:`train_run`, checking it first.

    Raises:
        RunFolderError: the folder is missing a file, is not a genomics run, or a field or
            array does not have the type, shape or range its writer gives it.
    """
    path = Path(path)
    config = _read_json(path / "config.json")
    check_config(config, path / "config.json")
    pre = _load_preprocessor(path, len(config["snp_ids"]))
    if config["model"] in KERNELS:
        return GenomicRun(path, config, None, pre, _load_kernel(path, config, pre))
    return GenomicRun(path, config, _load_network(path, config, pre), pre)


def _load_network(path: Path, config: dict, pre: SnpPreprocessor) -> torch.nn.Module:
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["model_kwargs"].items()}
    train = SnpTrainConfig(**config["train"])
    weights = path / "model.safetensors"
    n_members = _count_members(weights_header(weights))
    if n_members != train.ensemble:
        raise RunFolderError(
            f"{path / 'config.json'}: train.ensemble is {train.ensemble} but {weights.name} "
            f"holds {n_members} network(s)"
        )
    est = NeuralRegressor(config["model"], kwargs, train)
    try:
        net = est.build(int(pre.keep.size))
    except (ValueError, TypeError, RuntimeError) as e:
        raise RunFolderError(f"{path / 'config.json'}: model_kwargs do not build ({e})") from None
    check_header_fits(net, weights)
    net.load_state_dict(load_weights(weights))
    net.eval()
    return net


def _count_members(header: dict) -> int:
    keys = list(header)
    if not keys or not all(k.startswith("members.") for k in keys):
        return 1
    return len({k.split(".")[1] for k in keys})


def _load_kernel(path: Path, config: dict, pre: SnpPreprocessor):
    if config["model"] == "kblup":
        return None
    arrays = _load_arrays(path / "model.safetensors")
    check_kernel_arrays(arrays, int(pre.keep.size), len(config["fixed_effects"]), path)
    est = _kernel_estimator(
        config["model"], pre.means, None, config.get("bandwidth"), config["delta"]
    )
    return est.fit(arrays["z"], arrays["y"], arrays["design"])


def match_snps(run: GenomicRun, g: Genotypes) -> np.ndarray:
    """``g``'s dosages in the run's SNP order (by SNP id when ids exist, else by position).

    Raises:
        ValueError: SNPs of the run are missing from ``g`` (lists a few) or counts differ.
    """
    wanted = run.config["snp_ids"]
    if g.snp_ids == wanted:
        return g.matrix
    if g.has_ids:
        index = {s: j for j, s in enumerate(g.snp_ids)}
        missing = [s for s in wanted if s not in index]
        if not missing:
            return g.matrix[:, [index[s] for s in wanted]]
        raise ValueError(
            f"{g.path}: {len(missing)} of the run's {len(wanted)} SNPs are missing, e.g. "
            + ", ".join(repr(s) for s in missing[:5])
        )
    if g.p != len(wanted):
        raise ValueError(f"{g.path} has {g.p} SNP columns; the run was trained on {len(wanted)}")
    return g.matrix


def predict_run(run: str | Path | GenomicRun, geno: str | Path) -> list[dict]:
    """``[{"sample_id", "prediction"}]`` for every sample of ``geno``; kernel models add
    ``gebv`` and ``reliability``.

    Raises:
        ValueError: a ``kblup`` run (it predicts only the lines of its relationship matrix,
            all in its ``predictions.csv``), or SNPs that do not match.
    """
    r = run if isinstance(run, GenomicRun) else load_run(run)
    if r.config["model"] == "kblup":
        raise ValueError(
            f"{r.path}: a kblup run predicts only the lines of its relationship matrix; "
            f"they are all in {r.path / 'predictions.csv'}"
        )
    g = read_genotypes(geno)
    x = match_snps(r, g)
    pred = r.predict_matrix(x)
    rows = [
        {"sample_id": s, "prediction": float(v)} for s, v in zip(g.sample_ids, pred, strict=True)
    ]
    if r.is_kernel:
        gebv, rel = r.breeding_values(x)
        for row, gv, rl in zip(rows, gebv, rel, strict=True):
            row.update(gebv=float(gv), reliability=float(rl))
    return rows
