"""Baselines for genomic prediction: GBLUP, RKHS (Gaussian kernel), ridge (RR-BLUP), LASSO,
ElasticNet.

Every estimator takes centred genotypes ``x`` of shape ``(N, L)`` (see
:class:`cnnkit.genomics.preprocess.SnpPreprocessor`) and a trait ``y`` of shape ``(N,)``,
and chooses its penalty from the training rows it is given only (REML or inner
cross-validation). ``fit``/``predict`` take an optional fixed-effect design ``fixed``
``(N, q)`` (intercept included): GBLUP and RKHS estimate it jointly (GLS); the others
through :class:`FixedEffects`.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import ElasticNetCV, LassoCV, RidgeCV
from sklearn.model_selection import KFold

from cnnkit.genomics.kernels import (
    gaussian_kernel,
    median_distance,
    squared_distances,
    vanraden_g,
    vanraden_scale,
)
from cnnkit.genomics.mixed import KernelBLUP

__all__ = [
    "GBLUP",
    "RKHS",
    "ElasticNet",
    "FixedEffects",
    "H2_GRID",
    "Lasso",
    "Ridge",
    "vanraden_g",
    "vanraden_scale",
]

# Heritabilities tried by ridge; alpha = k (1 - h2) / h2 on the scale of a VanRaden G.
H2_GRID = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97])

# Gaussian-kernel bandwidths (in units of the median squared distance) tried by RKHS.
BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


class GBLUP:
    """GBLUP: the mixed model on VanRaden's genomic relationship matrix, variance components by
    REML (:class:`cnnkit.genomics.mixed.KernelBLUP`).

    ``y_hat = X_new b + G_new,train P y``; ``G = Z Z' / k``, ``k = 2 sum p (1 - p)`` from the
    training means. Given ``h2`` (population scale) the variance ratio is fixed instead;
    ``select="loo"`` chooses it by exact leave-one-out error instead of REML.

    Attributes (after fit):
        lam: ``s2e / s2g`` (the ridge penalty on the scale of G); h2: heritability on the
        population scale; vc: the :class:`~cnnkit.genomics.mixed.VarianceComponents`;
        beta: marker effects ``Z' P y / k`` so that ``y_hat = X b + x @ beta``;
        intercept: the first fixed effect (the mean without other fixed effects);
        loo_residuals: exact leave-one-out residuals of the training rows.
    """

    def __init__(
        self,
        h2: float | None = None,
        means: np.ndarray | None = None,
        delta: float | None = None,
        select: str = "reml",
    ) -> None:
        if h2 is not None and not 0.0 < h2 < 1.0:
            raise ValueError(f"h2 must be in (0, 1). Received: h2={h2}")
        self.h2_given = h2
        self.delta_given = delta
        self.select = select
        self.means = means

    def fit(self, x: np.ndarray, y: np.ndarray, fixed: np.ndarray | None = None) -> GBLUP:
        """Fit on centred genotypes ``x`` ``(N, L)``, trait ``y`` ``(N,)``, design ``fixed``."""
        k = vanraden_scale(self.means) if self.means is not None else float(x.shape[1] / 2)
        self.k = k
        self.z = x.astype(np.float64)
        blup = KernelBLUP(self.h2_given, self.delta_given, self.select)
        self.model = blup.fit(vanraden_g(self.z, k), y, fixed)
        self.lam, self.vc = self.model.delta, self.model.vc
        self.h2 = self.vc.h2
        self.b = self.model.b
        self.intercept = float(self.b[0])
        self.loo_residuals = self.model.loo_residuals
        self.beta = (self.z.T @ self.model.alpha) / k
        return self

    def predict(self, x: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
        """Predicted trait for centred genotypes ``x`` ``(M, L)``; shape ``(M,)``."""
        fixed_part = self.intercept if fixed is None else np.asarray(fixed, float) @ self.b
        return fixed_part + x.astype(np.float64) @ self.beta

    def breeding_values(self, x: np.ndarray) -> np.ndarray:
        """GEBVs ``x @ beta`` (the genetic part, without fixed effects), shape ``(M,)``."""
        return x.astype(np.float64) @ self.beta

    def reliability(self, x: np.ndarray) -> np.ndarray:
        """Reliability (squared accuracy) of each GEBV of ``x`` ``(M, L)``, shape ``(M,)``."""
        z = x.astype(np.float64)
        g_new = vanraden_g(self.z, self.k, z)
        return self.model.reliability(g_new, np.sum(z * z, axis=1) / self.k)


class RKHS:
    """RKHS regression: the mixed model on a Gaussian kernel of the genotypes
    ``K = exp(-h D / median(D))`` (``D``: squared Euclidean distances between centred dosage
    vectors, the median over the training pairs), variance components by REML.

    Args:
        bandwidth: ``h``; ``1`` is the median rule. None: chosen among :data:`BANDWIDTHS` on
            the training rows by ``select``.
        h2: fix the heritability instead of REML.
        delta: fix the variance ratio (a saved model's; needs ``bandwidth``).
        select: ``"reml"`` (bandwidth with the largest restricted likelihood, i.e. empirical
            Bayes, and the variance ratio by REML; the default) or ``"loo"`` (both by the
            smallest exact leave-one-out error: inner CV).

    Attributes (after fit): bandwidth (the one used), vc, h2, loo_residuals.
    """

    def __init__(
        self,
        bandwidth: float | None = None,
        h2: float | None = None,
        select: str = "reml",
        delta: float | None = None,
    ) -> None:
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0. Received: bandwidth={bandwidth}")
        if select not in ("reml", "loo"):
            raise ValueError(f'select must be "reml" or "loo". Received: select={select!r}')
        self.bandwidth_given = bandwidth
        self.h2_given = h2
        self.delta_given = delta
        self.select = select

    def fit(self, x: np.ndarray, y: np.ndarray, fixed: np.ndarray | None = None) -> RKHS:
        """Fit on centred genotypes ``x`` ``(N, L)``, trait ``y`` ``(N,)``, design ``fixed``."""
        self.z = x.astype(np.float64)
        d = squared_distances(self.z)
        self.median = median_distance(d)
        grid = BANDWIDTHS if self.bandwidth_given is None else (self.bandwidth_given,)
        best = math.inf
        for h in grid:
            kern = gaussian_kernel(d, h, self.median)
            blup = KernelBLUP(self.h2_given, self.delta_given, self.select)
            model = blup.fit(kern, y, fixed)
            if self.select == "loo":
                loss = float(np.mean(model.loo_residuals**2))
            else:
                loss = -model.vc.loglik
            if loss < best:
                best, self.model, self.bandwidth = loss, model, h
        self.vc, self.h2 = self.model.vc, self.model.vc.h2
        self.loo_residuals = self.model.loo_residuals
        return self

    def kernel(self, x: np.ndarray) -> np.ndarray:
        """Kernel between rows of ``x`` ``(M, L)`` and the training rows, shape ``(M, N)``."""
        return gaussian_kernel(squared_distances(self.z, x), self.bandwidth, self.median)

    def predict(self, x: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
        """Predicted trait for centred genotypes ``x`` ``(M, L)``; shape ``(M,)``."""
        return self.model.predict(self.kernel(x), fixed)

    def breeding_values(self, x: np.ndarray) -> np.ndarray:
        """Predicted genetic values (without fixed effects), shape ``(M,)``."""
        return self.kernel(x) @ self.model.alpha

    def reliability(self, x: np.ndarray) -> np.ndarray:
        """Reliability of each predicted genetic value of ``x`` ``(M, L)``, shape ``(M,)``."""
        return self.model.reliability(self.kernel(x), np.ones(len(x)))


class FixedEffects:
    """Fixed effects for an estimator without them: least squares on the training design, the
    estimator fitted on the residuals, the fixed part added back to its predictions.

    Args:
        estimator: any ``fit(x, y)`` / ``predict(x)`` estimator.
    """

    def __init__(self, estimator) -> None:
        self.estimator = estimator

    def fit(self, x: np.ndarray, y: np.ndarray, fixed: np.ndarray | None = None) -> FixedEffects:
        design = np.ones((len(y), 1)) if fixed is None else np.asarray(fixed, float)
        self.b = np.linalg.lstsq(design, np.asarray(y, float), rcond=None)[0]
        self.estimator.fit(x, np.asarray(y, float) - design @ self.b)
        return self

    def predict(self, x: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
        design = np.ones((len(x), 1)) if fixed is None else np.asarray(fixed, float)
        return design @ self.b + self.estimator.predict(x)

    def predict_linear(self, x: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
        """The fixed part plus a network's linear part (see ``NeuralRegressor``)."""
        design = np.ones((len(x), 1)) if fixed is None else np.asarray(fixed, float)
        return design @ self.b + self.estimator.predict_linear(x)

    def __getattr__(self, name: str):
        if name == "estimator":
            raise AttributeError(name)
        return getattr(self.estimator, name)


class Ridge:
    """Ridge regression on markers (RR-BLUP), alpha by efficient leave-one-out CV."""

    def __init__(self, means: np.ndarray | None = None) -> None:
        self.means = means

    def fit(self, x: np.ndarray, y: np.ndarray) -> Ridge:
        k = vanraden_scale(self.means) if self.means is not None else float(x.shape[1] / 2)
        alphas = k * (1 - H2_GRID) / H2_GRID
        self.model = RidgeCV(alphas=alphas).fit(x.astype(np.float64), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x.astype(np.float64))


class Lasso:
    """LASSO with the penalty chosen by 5-fold CV inside the training rows."""

    l1_ratio: float | list[float] = 1.0

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _cv(self):
        return KFold(5, shuffle=True, random_state=self.seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Lasso:
        self.model = LassoCV(
            alphas=25, cv=self._cv(), max_iter=3000, tol=1e-3, random_state=self.seed
        ).fit(x.astype(np.float64), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x.astype(np.float64))


class ElasticNet(Lasso):
    """ElasticNet; penalty and l1 ratio (0.1, 0.5, 0.9) by CV inside the training rows."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> ElasticNet:
        self.model = ElasticNetCV(
            l1_ratio=[0.1, 0.5, 0.9],
            alphas=25,
            cv=self._cv(),
            max_iter=3000,
            tol=1e-3,
            random_state=self.seed,
        ).fit(x.astype(np.float64), y)
        return self
