"""Prediction methods by short name (``cnn``, ``mlp``, ``gblup``, ``rkhs``, ``ridge``,
``lasso``, ``elasticnet``, and ``kblup`` on a user relationship matrix), each an estimator
with ``fit(x, y)`` / ``predict(x)`` on centred genotypes.

The networks (:class:`NeuralRegressor`) start from GBLUP: their linear skip path is set to
the GBLUP marker effects of the training rows and frozen, and the convolutional (or dense)
path learns the leave-one-out GBLUP residuals, i.e. only what the additive model cannot
predict out of sample. The last layer starts at zero, so before training the network *is*
GBLUP, and early stopping keeps it so when the deep path does not help on the inner
validation rows.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

from cnnkit.genomics.baselines import GBLUP, RKHS, ElasticNet, FixedEffects, Lasso, Ridge
from cnnkit.genomics.multienv import MultiEnvBLUP
from cnnkit.genomics.trainer import SnpTrainConfig, fit_network
from cnnkit.models.registry import create_model

METHODS = (
    "cnn", "mlp", "gblup", "rkhs", "ridge", "lasso", "elasticnet", "kblup",
    "gblup_me", "rkhs_me", "gblup_mt", "rkhs_mt", "cnn_me", "mlp_me",
)  # fmt: skip
MODEL_OF = {"cnn": "snp_cnn1d", "mlp": "snp_mlp"}
# Methods that estimate fixed effects themselves (GLS); the others get FixedEffects.
NATIVE_FIXED = frozenset({"gblup", "rkhs"})
# Networks whose linear part alone is also scored (``cnn_linear``) on the same fits.
LINEAR_PART = frozenset({"cnn", "mlp", "cnn_me", "mlp_me"})
# Methods fitted on every environment at once (y of shape (N, E)).
MULTI_ENV: frozenset[str] = frozenset(
    {"gblup_me", "rkhs_me", "gblup_mt", "rkhs_mt", "cnn_me", "mlp_me"}
)

# The default CNN (tuned on simulations, see bench/results/genomics.md).
CNN_DEFAULTS: dict[str, Any] = dict(
    filters=(16, 16), kernel_size=5, stride=1, pool=4, dropout=0.5, hidden=0, linear_skip=True
)
MLP_DEFAULTS: dict[str, Any] = dict(widths=(64,), dropout=0.3, linear_skip=True)
# Training settings of each network over SnpTrainConfig's: the CNN averages 3 networks
# trained with a stronger L2 penalty (3x the fit time of one; bench/results/genomics.md).
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "snp_cnn1d": dict(weight_decay=1e-2, ensemble=3),
    "snp_mlp": {},
}


def train_config(model: str, train: SnpTrainConfig | dict | None = None) -> SnpTrainConfig:
    """``train`` itself, or ``model``'s training defaults updated with the dict ``train``.

    Args:
        model: registry name (``snp_cnn1d`` or ``snp_mlp``).
        train: a complete config, overrides of :class:`SnpTrainConfig` fields, or None.

    Raises:
        ValueError: an override that is no field of :class:`SnpTrainConfig`.
    """
    if isinstance(train, SnpTrainConfig):
        return train
    unknown = sorted(set(train or {}) - set(SnpTrainConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(
            f"train overrides must be SnpTrainConfig fields "
            f"({', '.join(SnpTrainConfig.__dataclass_fields__)}). Received: {unknown}"
        )
    return SnpTrainConfig(**{**TRAIN_DEFAULTS.get(model, {}), **(train or {})})


# Member ``e`` of an ensemble is seeded with ``seed + ENSEMBLE_SEED_STEP * e``.
ENSEMBLE_SEED_STEP = 1000


def member_seeds(seed: int, n: int) -> list[int]:
    """Seeds of an ensemble's ``n`` networks; member 0 gets ``seed`` itself."""
    return [seed + ENSEMBLE_SEED_STEP * e for e in range(n)]


class SnpEnsemble(torch.nn.Module):
    """Networks whose outputs are averaged.

    Args:
        members: networks mapping ``(B, L)`` to ``(B, 1)``.

    Shape:
        ``(B, L) -> (B, 1)``.
    """

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)  # (E, B, 1) -> (B, 1)


def members_of(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The networks of an :class:`SnpEnsemble`, or ``[net]`` for a single network."""
    return list(net.members) if isinstance(net, SnpEnsemble) else [net]


@torch.no_grad()
def average_prediction(net: torch.nn.Module, x: torch.Tensor, binary: bool) -> np.ndarray:
    """The members' outputs (probabilities when ``binary``) averaged, shape ``(M,)``.

    Shape:
        ``x`` ``(M, L)`` on the networks' device.
    """
    outs = []
    for member in members_of(net):
        member.eval()
        out = torch.cat([member(x[i : i + 1024]) for i in range(0, len(x), 1024)])[:, 0]
        outs.append(torch.sigmoid(out) if binary else out)  # (M, 1) -> (M,)
    return torch.stack(outs).mean(0).cpu().numpy().astype(np.float64)


def _start_from_linear(net: torch.nn.Module, beta: np.ndarray, bias: np.ndarray) -> None:
    """Set and freeze the skip path to marker effects ``beta`` ``(L, E)`` and ``bias``
    ``(E,)``; zero the last layer, so the network starts as that linear model."""
    skip = cast(torch.nn.Linear, net.get_submodule("skip"))
    fc = cast(torch.nn.Linear, net.get_submodule("fc"))
    with torch.no_grad():
        skip.weight.copy_(torch.as_tensor(np.asarray(beta).T, dtype=torch.float32))
        skip.bias.copy_(torch.as_tensor(np.asarray(bias), dtype=torch.float32))
        fc.weight.zero_()  # the deep path starts at 0: the net starts as the linear model
        fc.bias.zero_()
    skip.requires_grad_(False)


def _start_from_gblup(net: torch.nn.Module, gb: GBLUP) -> None:
    """Set and freeze the skip path to GBLUP's marker effects; zero the last layer."""
    _start_from_linear(net, gb.beta[:, None], np.array([gb.intercept]))


def _loo_per_env(x: np.ndarray, ys: np.ndarray, means) -> np.ndarray:
    """Leave-one-out residuals of a single-environment GBLUP per column (NaN: no record)."""
    out = np.full(ys.shape, np.nan)
    for e in range(ys.shape[1]):
        rows = np.flatnonzero(~np.isnan(ys[:, e]))
        if rows.size >= 3:
            out[rows, e] = GBLUP(means=means).fit(x[rows], ys[rows, e]).loo_residuals
    return out


class NeuralRegressor:
    """A registered SNP network trained with :func:`fit_network` on standardised ``y``.

    With a linear skip path (the default), the skip path is set to the training rows' GBLUP
    marker effects and frozen, and the deep (convolutional or dense) path learns GBLUP's
    leave-one-out residuals, i.e. what the additive model cannot predict out of sample;
    :meth:`predict_linear` is the skip path alone. With ``y`` of shape ``(N, E)`` (several
    environments, NaN = no record) the network has E outputs: the skip path is the
    unstructured multi-environment GBLUP (:class:`cnnkit.genomics.multienv.MultiEnvBLUP`),
    the deep path is shared and learns every environment's residuals at once (masked loss).

    With ``train.ensemble = N > 1``, N networks (seeds :func:`member_seeds`) are trained on
    the same targets (with early stopping, each on the same inner split seeded by ``seed``)
    and their predictions are averaged; ``net`` is then an :class:`SnpEnsemble`.

    Args:
        model: registry name (``snp_cnn1d`` or ``snp_mlp``).
        model_kwargs: builder options (filters, kernel_size, linear_skip, ...).
        train: training settings, or a dict of overrides of the model's defaults
            (:func:`train_config`).
        seed: seeds initialisation, the inner split and shuffling.
        means: training-fold SNP means (for GBLUP's VanRaden scaling of the skip path).
        device: torch device.
    """

    def __init__(
        self,
        model: str = "snp_cnn1d",
        model_kwargs: dict | None = None,
        train: SnpTrainConfig | dict | None = None,
        *,
        seed: int = 0,
        means: np.ndarray | None = None,
        device: str = "cpu",
    ) -> None:
        self.model_name = model
        defaults = CNN_DEFAULTS if model == "snp_cnn1d" else MLP_DEFAULTS
        self.model_kwargs = {**defaults, **(model_kwargs or {})}
        self.train = train_config(model, train)
        self.seed, self.means, self.device = seed, means, device
        self.outputs = 1
        if self.train.task == "binary":
            self.model_kwargs["linear_skip"] = False

    def _build_one(self, length: int, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model(
            self.model_name, num_classes=self.outputs, input_size=(1, length), **self.model_kwargs
        )

    def build(self, length: int) -> torch.nn.Module:
        """A fresh network for ``length`` loci (seeded); an ensemble when ``ensemble > 1``."""
        nets = [self._build_one(length, s) for s in member_seeds(self.seed, self.train.ensemble)]
        return nets[0] if len(nets) == 1 else SnpEnsemble(nets)

    def _targets(self, x: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Skip paths set to GBLUP and frozen; targets = in-sample fit + LOO residuals."""
        if ys.ndim == 2:
            return self._targets_multi(x, ys)
        gb = GBLUP(means=self.means).fit(x, ys)
        for member in members_of(self.net):
            _start_from_gblup(member, gb)
        self.gblup_h2 = gb.h2
        return gb.predict(x) + gb.loo_residuals

    def _targets_multi(self, x: np.ndarray, ys: np.ndarray) -> np.ndarray:
        me = MultiEnvBLUP("gblup", "unstructured", means=self.means).fit(x, ys)
        beta = me.marker_effects()
        for member in members_of(self.net):
            _start_from_linear(member, beta, me.env_means)
        fitted = me.env_means[None, :] + x.astype(np.float64) @ beta
        return np.where(np.isnan(ys), np.nan, fitted + _loo_per_env(x, ys, self.means))

    def fit(self, x: np.ndarray, y: np.ndarray) -> NeuralRegressor:
        """Fit on centred genotypes ``x`` ``(N, L)`` and the trait ``y`` ``(N,)``, or several
        environments ``(N, E)`` with NaN where a line has no record."""
        binary = self.train.task == "binary"
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and binary:
            raise ValueError("task binary takes one trait column. Received: y of shape "
                             f"{y.shape}")  # fmt: skip
        self.outputs = 1 if y.ndim == 1 else y.shape[1]
        self.y_mean = 0.0 if binary else _nanstat(np.nanmean, y)
        self.y_std = 1.0 if binary else _nanstat(np.nanstd, y, floor=True)
        ys = (y - self.y_mean) / self.y_std
        self.net = self.build(x.shape[1])
        target = self._targets(x, ys) if self.model_kwargs.get("linear_skip") else ys
        seeds = member_seeds(self.seed, self.train.ensemble)
        self.histories = [
            fit_network(m, x, target, self.train, seed=s, split_seed=self.seed, device=self.device)
            for m, s in zip(members_of(self.net), seeds, strict=True)
        ]
        self.history = self.histories[0]
        return self

    def _scale(self, out: np.ndarray) -> np.ndarray:
        return out * np.asarray(self.y_std) + np.asarray(self.y_mean)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions (probabilities for a binary task), members averaged, shape ``(M,)``
        (``(M, E)`` for several environments)."""
        xt = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        if self.outputs > 1:
            return self._scale(_average(self.net, xt, "forward"))
        out = average_prediction(self.net, xt, self.train.task == "binary")
        return out if self.train.task == "binary" else self._scale(out)

    def predict_linear(self, x: np.ndarray) -> np.ndarray:
        """The linear (skip) path alone, members averaged, on the trait scale; shape ``(M,)``
        (``(M, E)``). Without a skip path this is the trait mean."""
        xt = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        out = _average(self.net, xt, "forward_linear")
        return self._scale(out if self.outputs > 1 else out[:, 0])


def _nanstat(fn, y: np.ndarray, floor: bool = False):
    """A column statistic (a float for one column); a zero spread becomes 1."""
    v = fn(y, axis=0)
    if floor:
        v = np.where(np.asarray(v) > 0, v, 1.0)
    return float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)


@torch.no_grad()
def _average(net: torch.nn.Module, x: torch.Tensor, method: str) -> np.ndarray:
    """The members' outputs ``(M, E)`` of ``method`` (``forward``/``forward_linear``), averaged."""
    outs = []
    for member in members_of(net):
        member.eval()
        fn = cast(Any, member) if method == "forward" else getattr(member, method)
        outs.append(torch.cat([fn(x[i : i + 1024]) for i in range(0, len(x), 1024)]))
    return torch.stack(outs).mean(0).cpu().numpy().astype(np.float64)


def make_method(
    name: str,
    *,
    seed: int = 0,
    means: np.ndarray | None = None,
    h2: float | None = None,
    train: SnpTrainConfig | dict | None = None,
    model_kwargs: dict | None = None,
    device: str = "cpu",
    fixed: bool = False,
    select: str = "reml",
):
    """A fresh, unfitted estimator for method ``name`` (see :data:`METHODS`).

    Args:
        fixed: the estimator will get a fixed-effect design (``fit(x, y, fixed)``); methods
            without native fixed effects are wrapped in :class:`FixedEffects`.
        select: how the kernel methods estimate their variance ratio (and RKHS its
            bandwidth): ``"reml"`` or ``"loo"``.

    Raises:
        ValueError: unknown method name.
    """
    key = name.strip().lower().replace("-", "_")
    if key == "gblup":
        return GBLUP(h2=h2, means=means, select=select)
    if key == "rkhs":
        return RKHS(h2=h2, select=select)
    if key in ("cnn_me", "mlp_me"):
        model = MODEL_OF[key.removesuffix("_me")]
        return NeuralRegressor(model, model_kwargs, train, seed=seed, means=means, device=device)
    if key in MULTI_ENV:
        kernel, kind = key.split("_")
        return MultiEnvBLUP(kernel, "gxe" if kind == "me" else "unstructured", means=means)
    est: Any
    if key in ("ridge", "rrblup", "rr_blup"):
        est = Ridge(means=means)
    elif key == "lasso":
        est = Lasso(seed=seed)
    elif key in ("elasticnet", "elastic_net", "enet"):
        est = ElasticNet(seed=seed)
    elif key in MODEL_OF or key in MODEL_OF.values():
        model = MODEL_OF.get(key, key)
        est = NeuralRegressor(model, model_kwargs, train, seed=seed, means=means, device=device)
    else:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return FixedEffects(est) if fixed else est


def default_methods(multi: bool = False, kinship=None) -> list[str]:
    """The methods ``genomics cv`` runs without ``--methods``."""
    out = ["cnn", "mlp", "gblup", "rkhs", "ridge", "lasso", "elasticnet"]
    if kinship is not None:
        out.append("kblup")
    if multi:
        out += [m for m in MULTI_ENV_DEFAULTS if m in MULTI_ENV]
    return out


# Multi-environment methods run by default with several environments.
MULTI_ENV_DEFAULTS = ("gblup_me", "rkhs_me", "cnn_me")


def parse_methods(text: str | list[str]) -> list[str]:
    """``"cnn,gblup"`` -> ``["cnn", "gblup"]`` (validated, duplicates removed, order kept)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    canonical = {m.replace("_", ""): m for m in METHODS}
    canonical.update(snpcnn1d="cnn", snpmlp="mlp", rrblup="ridge", enet="elasticnet")
    for raw in (i for i in items if i.strip()):
        item = canonical.get(raw.strip().lower().replace("_", "").replace("-", ""))
        if item is None:
            raise ValueError(
                f"methods must be a comma-separated subset of {','.join(METHODS)}. "
                f"Received: {raw.strip()!r}"
            )
        if item not in out:
            out.append(item)
    if not out:
        raise ValueError(f"methods is empty. Received: methods={text!r}")
    return out
