"""Linear baselines for genomic prediction: GBLUP, ridge (RR-BLUP), LASSO, ElasticNet.

Every estimator takes centred genotypes ``x`` of shape ``(N, L)`` (see
:class:`cnnkit.genomics.preprocess.SnpPreprocessor`) and a trait ``y`` of shape ``(N,)``,
and chooses its penalty from the training rows it is given only (inner cross-validation).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import ElasticNetCV, LassoCV, RidgeCV
from sklearn.model_selection import KFold

# Heritabilities to try; lambda = (1 - h2) / h2 on the scale of a VanRaden G.
H2_GRID = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97])


def vanraden_scale(means: np.ndarray) -> float:
    """VanRaden's ``k = 2 * sum p (1 - p)`` from mean dosages ``means = 2p``."""
    p = np.clip(np.asarray(means, dtype=np.float64) / 2.0, 0.0, 1.0)
    return float(max(2.0 * np.sum(p * (1.0 - p)), 1e-12))


def vanraden_g(z: np.ndarray, k: float, z2: np.ndarray | None = None) -> np.ndarray:
    """Genomic relationship ``Z1 Z2' / k`` from centred genotypes ``Z`` ``(N, L)``."""
    z = z.astype(np.float64)
    other = z if z2 is None else z2.astype(np.float64)
    return z @ other.T / k


class GBLUP:
    """GBLUP as kernel ridge regression on VanRaden's genomic relationship matrix.

    ``y_hat = mean(y) + G_new,train (G + lambda I)^-1 (y - mean(y))``, with
    ``lambda = (1 - h2) / h2``. Given ``h2`` it is used as is; otherwise lambda minimises
    the exact leave-one-out error on the training rows (one eigendecomposition).

    Attributes (after fit):
        lam: the lambda used; h2: the matching heritability.
        beta: marker effects ``Z' alpha / k`` so that ``y_hat = intercept + x @ beta``.
        loo_residuals: leave-one-out residuals of the training rows (at ``lam``).
    """

    def __init__(self, h2: float | None = None, means: np.ndarray | None = None) -> None:
        if h2 is not None and not 0.0 < h2 < 1.0:
            raise ValueError(f"h2 must be in (0, 1). Received: h2={h2}")
        self.h2_given = h2
        self.means = means

    def fit(self, x: np.ndarray, y: np.ndarray) -> GBLUP:
        """Fit on centred genotypes ``x`` ``(N, L)`` and trait ``y`` ``(N,)``."""
        k = vanraden_scale(self.means) if self.means is not None else float(x.shape[1] / 2)
        self.k = k
        g = vanraden_g(x, k)
        self.intercept = float(np.mean(y))
        yc = np.asarray(y, dtype=np.float64) - self.intercept
        d, u = np.linalg.eigh(g)
        d = np.clip(d, 0.0, None)
        uy = u.T @ yc
        lams = (1 - H2_GRID) / H2_GRID if self.h2_given is None else [self._lam(self.h2_given)]
        scores = [self._loo(d, u, uy, yc, lam) for lam in lams]
        best = int(np.argmin([s[0] for s in scores]))
        self.lam = float(lams[best])
        self.h2 = 1.0 / (1.0 + self.lam)
        self.loo_residuals = scores[best][1]
        alpha = u @ (uy / (d + self.lam))
        self.beta = (x.astype(np.float64).T @ alpha) / k
        return self

    @staticmethod
    def _lam(h2: float) -> float:
        return (1.0 - h2) / h2

    @staticmethod
    def _loo(d, u, uy, yc, lam) -> tuple[float, np.ndarray]:
        shrink = d / (d + lam)
        fitted = u @ (shrink * uy)
        hat_diag = np.einsum("ij,j,ij->i", u, shrink, u)
        resid = (yc - fitted) / np.clip(1.0 - hat_diag, 1e-8, None)
        return float(np.mean(resid**2)), resid

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted trait for centred genotypes ``x`` ``(M, L)``; shape ``(M,)``."""
        return self.intercept + x.astype(np.float64) @ self.beta


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
