"""Genomic run folders: train a SNP network on all samples, save it, predict, reload.

A run folder holds only JSON, CSV and safetensors (never pickle)::

    RUN/
      config.json                 settings, trait, data paths, SNP ids, y scaling, history summary
      model.safetensors           the network's weights (every member of an ensemble,
                                  keys ``members.E.*``, when ``train.ensemble > 1``)
      preprocessor.safetensors    kept SNP indices and their training means
      history.csv                 epoch,loss,val_loss (member 0 of an ensemble)
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save_file as save_np
from safetensors.torch import load_file, save_file

from cnnkit.errors import OVERWRITE, RunFolderError, user_error
from cnnkit.genomics.io import Genotypes, align, read_genotypes, read_phenotypes
from cnnkit.genomics.methods import MODEL_OF, NeuralRegressor, average_prediction, member_seeds
from cnnkit.genomics.preprocess import SnpPreprocessor
from cnnkit.genomics.trainer import SnpTrainConfig

KIND = "genomics"


def load_data(
    geno: str | Path, pheno: str | Path, pheno_col=None
) -> tuple[Genotypes, np.ndarray, dict]:
    """Read genotypes and one trait and join them (see :func:`cnnkit.genomics.io.align`)."""
    g = read_genotypes(geno)
    p = read_phenotypes(pheno, pheno_col)
    g, y, info = align(g, p)
    info.update(trait=p.name, n=g.n, p=g.p, **g.notes)
    return g, y, info


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise user_error(
                FileExistsError,
                "run folder {out} already exists; pass {overwrite} to replace it",
                out=out,
                overwrite=OVERWRITE,
            )
        if not (out / "config.json").is_file():
            raise user_error(
                FileExistsError,
                "{overwrite} refused: {out} is not a run folder (no config.json)",
                out=out,
                overwrite=OVERWRITE,
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


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
) -> dict:
    """Fit a SNP network on every sample of GENO/PHENO and write a run folder.

    Returns:
        The saved ``config.json`` contents.

    Raises:
        FileExistsError: ``out`` exists (without ``overwrite``).
        ValueError: bad data (see the readers).
    """
    name = MODEL_OF.get(model.replace("-", "_"), model.replace("-", "_"))
    if name not in MODEL_OF.values():
        raise ValueError(f"model must be cnn, mlp, snp_cnn1d or snp_mlp. Received: model={model!r}")
    out = Path(out)
    g, y, info = load_data(geno, pheno, pheno_col)
    _prepare(out, overwrite)
    pre = SnpPreprocessor().fit(g.matrix)
    est = NeuralRegressor(name, model_kwargs, train, seed=seed, means=pre.means, device=device)
    est.fit(pre.transform(g.matrix), y)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in est.net.state_dict().items()},
        str(out / "model.safetensors"),
    )
    save_np(pre.state(), str(out / "preprocessor.safetensors"))
    _write_history(out / "history.csv", est.history)
    config = {
        "kind": KIND,
        "model": name,
        "model_kwargs": _jsonable(est.model_kwargs),
        "train": est.train.to_dict(),
        "seed": seed,
        "geno": str(Path(geno).resolve()),
        "pheno": str(Path(pheno).resolve()),
        "pheno_col": pheno_col,
        "data": info,
        "snp_ids": g.snp_ids,
        "snps_kept": int(pre.keep.size),
        "snps_dropped": pre.n_dropped,
        "y_mean": est.y_mean,
        "y_std": est.y_std,
        "gblup_h2": getattr(est, "gblup_h2", None),
        "epochs_run": len(est.history),
        "best_val_loss": min([h["val_loss"] for h in est.history], default=None),
        "members": _members(est),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return config


def _members(est: NeuralRegressor) -> list[dict]:
    """Seed, epochs run and best inner-validation loss of every network of ``est``."""
    seeds = member_seeds(est.seed, est.train.ensemble)
    return [
        {
            "seed": s,
            "epochs_run": len(h),
            "best_val_loss": min([e["val_loss"] for e in h], default=None),
        }
        for s, h in zip(seeds, est.histories, strict=True)
    ]


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _write_history(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["epoch", "loss", "val_loss"])
        w.writeheader()
        w.writerows(history)


@dataclass
class GenomicRun:
    """A loaded run folder: the network (eval mode), its preprocessor and settings.

    ``net`` is an :class:`~cnnkit.genomics.methods.SnpEnsemble` when ``train.ensemble > 1``.
    """

    path: Path
    config: dict
    net: torch.nn.Module
    pre: SnpPreprocessor

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """Predictions for dosages ``x`` ``(M, P)`` in the training SNP order; shape ``(M,)``."""
        z = torch.as_tensor(self.pre.transform(x), dtype=torch.float32)
        binary = self.config["train"]["task"] == "binary"
        out = average_prediction(self.net, z, binary)  # members averaged
        return out if binary else out * self.config["y_std"] + self.config["y_mean"]


def load_run(path: str | Path) -> GenomicRun:
    """Reload a run folder written by :func:`train_run`.

    Raises:
        RunFolderError: the folder is missing a file or is not a genomics run.
    """
    path = Path(path)
    for f in ("config.json", "model.safetensors", "preprocessor.safetensors"):
        if not (path / f).is_file():
            raise RunFolderError(f"{path} is not a genomics run folder: {f} is missing")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("kind") != KIND:
        raise RunFolderError(f"{path} is not a genomics run folder (kind={config.get('kind')!r})")
    pre = SnpPreprocessor.from_state(load_np(str(path / "preprocessor.safetensors")))
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["model_kwargs"].items()}
    est = NeuralRegressor(config["model"], kwargs, SnpTrainConfig(**config["train"]))
    net = est.build(int(pre.keep.size))
    net.load_state_dict(load_file(str(path / "model.safetensors")))
    net.eval()
    return GenomicRun(path, config, net, pre)


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
    """``[{"sample_id", "prediction"}]`` for every sample of ``geno``."""
    r = run if isinstance(run, GenomicRun) else load_run(run)
    g = read_genotypes(geno)
    pred = r.predict_matrix(match_snps(r, g))
    return [
        {"sample_id": s, "prediction": float(v)} for s, v in zip(g.sample_ids, pred, strict=True)
    ]
