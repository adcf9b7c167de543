"""The linear mixed model of genomic prediction, solved exactly through one eigendecomposition.

``y = X b + u + e`` with ``u ~ N(0, s2g K)`` and ``e ~ N(0, s2e I)``: ``K`` is a relationship
matrix (VanRaden's G, a Gaussian kernel, a pedigree A or any user matrix) and ``X`` the fixed
effects (an intercept at least). As in EMMA (Kang et al. 2008) and rrBLUP's ``mixed.solve``,
the restricted likelihood (REML) is a function of ``delta = s2e / s2g`` alone once ``K``'s
eigendecomposition ``K = U diag(d) U'`` is known, so it is maximised over one number; BLUEs,
BLUPs, prediction error variances and leave-one-out residuals follow from the same ``U``.

Heritability is reported on the population scale, ``h2 = c s2g / (c s2g + s2e)`` with
``c = mean(diag K) - mean(K)`` (Legarra 2016, *Theor Popul Biol* 107:26), the genetic variance
``K`` implies for the sampled individuals. It does not depend on how ``K`` was scaled: VanRaden's
G of 0/1-coded inbred lines has a mean self-relationship near 0.5, not 1, and the h2 of
``s2g / (s2g + s2e)`` would be wrong by that factor. Its standard error is the delta method on
the inverse of REML's expected (Fisher) information.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar

# log(delta) is searched on this grid, then refined by Brent's method around the best point.
_LOG_DELTA_GRID = np.linspace(-12.0, 12.0, 97)


@dataclass(frozen=True)
class VarianceComponents:
    """REML estimates of a single-kernel mixed model.

    Attributes:
        sigma_g2: genetic variance on the scale of ``K`` (``u ~ N(0, sigma_g2 K)``).
        sigma_e2: residual variance.
        h2: ``c sigma_g2 / (c sigma_g2 + sigma_e2)``, ``c`` = :attr:`kernel_scale`.
        h2_se: its standard error (delta method, expected information); NaN at a boundary.
        kernel_scale: ``c = mean(diag K) - mean(K)``.
        loglik: the maximised restricted log-likelihood (constants included).
        n: records; p: rank of the fixed-effect design.
    """

    sigma_g2: float
    sigma_e2: float
    h2: float
    h2_se: float
    kernel_scale: float
    loglik: float
    n: int
    p: int

    def to_dict(self) -> dict:
        return asdict(self)


def kernel_scale(k: np.ndarray) -> float:
    """``mean(diag K) - mean(K)``: the genetic variance per unit of ``s2g`` in the sample."""
    return float(max(np.mean(np.diag(k)) - np.mean(k), 1e-12))


def intercept(n: int) -> np.ndarray:
    """The design of an intercept only, shape ``(n, 1)``."""
    return np.ones((n, 1))


class _Eigen:
    """``K``'s eigendecomposition and the fixed-effect design rotated by it."""

    def __init__(self, k: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        d, u = np.linalg.eigh(np.asarray(k, dtype=np.float64))
        self.d = np.clip(d, 0.0, None)  # round-off can make a PSD matrix's eigenvalues < 0
        self.u = u
        self.ux = u.T @ x  # (n, p)
        self.uy = u.T @ y  # (n,)
        self.u2 = u**2
        self.n, self.p = x.shape

    def gls(self, delta: float) -> tuple[np.ndarray, np.ndarray, float, float]:
        """BLUE ``b``, ``(X' H^-1 X)^-1``, ``y' P y`` and ``log|X' H^-1 X|`` at ``delta``.

        ``H = K + delta I``; ``P = H^-1 - H^-1 X (X' H^-1 X)^-1 X' H^-1``.
        """
        w = 1.0 / (self.d + delta)
        xhx = (self.ux * w[:, None]).T @ self.ux  # (p, p)
        xhy = (self.ux * w[:, None]).T @ self.uy  # (p,)
        xhx_inv = np.linalg.pinv(xhx)
        b = xhx_inv @ xhy
        r = self.uy - self.ux @ b
        ypy = float(np.sum(w * r**2))
        _, logdet = np.linalg.slogdet(xhx)
        return b, xhx_inv, ypy, float(logdet)

    def loo_mse(self, log_delta: float) -> float:
        """Mean squared exact leave-one-out residual (fixed effects refitted) at ``delta``."""
        delta = math.exp(log_delta)
        w = 1.0 / (self.d + delta)
        _, c, _, _ = self.gls(delta)
        a = self.ux * w[:, None]
        alpha = self.u @ (w * self.uy - a @ (c @ (a.T @ self.uy)))
        hinv_x = self.u @ a
        p_diag = self.u2 @ w - np.einsum("ij,jk,ik->i", hinv_x, c, hinv_x)
        return float(np.mean((alpha / np.clip(p_diag, 1e-300, None)) ** 2))

    def neg_reml(self, log_delta: float) -> float:
        """``-2`` x the profiled restricted log-likelihood, up to a constant."""
        delta = math.exp(log_delta)
        _, _, ypy, logdet_xhx = self.gls(delta)
        q = self.n - self.p
        return q * math.log(max(ypy, 1e-300)) + float(np.sum(np.log(self.d + delta))) + logdet_xhx


def _best_log_delta(objective) -> float:
    """Minimise ``objective(log(delta))``: grid, then Brent within the best grid cell."""
    values = [objective(v) for v in _LOG_DELTA_GRID]
    i = int(np.argmin(values))
    lo = _LOG_DELTA_GRID[max(i - 1, 0)]
    hi = _LOG_DELTA_GRID[min(i + 1, len(_LOG_DELTA_GRID) - 1)]
    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-7})  # fmt: skip
    return float(res.x) if res.fun <= values[i] else float(_LOG_DELTA_GRID[i])


class KernelBLUP:
    """The mixed model ``y = X b + u + e``, ``u ~ N(0, s2g K)``, fitted by REML (or at a given
    variance ratio) through one eigendecomposition of ``K``.

    Args:
        h2: fix the heritability (population scale, see the module docstring) instead of
            estimating it; the variance ratio is then ``delta = c (1 - h2) / h2``.
        delta: fix the variance ratio ``s2e / s2g`` itself (e.g. a saved model's).
        select: how ``delta`` is estimated: ``"reml"`` (the default) or ``"loo"`` (the
            smallest exact leave-one-out error, a prediction-tuned choice); ``s2g`` and ``s2e``
            are then the REML profile estimates at that ratio.

    Attributes (after :meth:`fit`):
        delta: ``s2e / s2g``; b: BLUEs of the fixed effects, shape ``(p,)``;
        alpha: ``P y``, shape ``(n,)``, so that ``u_hat = K alpha`` and a new individual's
        BLUP is ``K_new,train alpha``; vc: :class:`VarianceComponents`;
        loo_residuals: exact leave-one-out residuals (fixed effects refitted), shape ``(n,)``.
    """

    def __init__(
        self, h2: float | None = None, delta: float | None = None, select: str = "reml"
    ) -> None:
        if select not in ("reml", "loo"):
            raise ValueError(f'select must be "reml" or "loo". Received: select={select!r}')
        self.select = select
        if h2 is not None and not 0.0 < h2 < 1.0:
            raise ValueError(f"h2 must be in (0, 1). Received: h2={h2}")
        if delta is not None and not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a finite number > 0. Received: delta={delta}")
        self.h2_given = h2
        self.delta_given = delta

    def fit(self, k: np.ndarray, y: np.ndarray, x: np.ndarray | None = None) -> KernelBLUP:
        """Fit on a training relationship matrix ``k`` ``(n, n)``, trait ``y`` ``(n,)`` and
        fixed-effect design ``x`` ``(n, p)`` (default: an intercept).

        Raises:
            ValueError: shapes disagree, non-finite values, or fewer records than fixed effects + 2.
        """
        y = np.asarray(y, dtype=np.float64)
        x = intercept(len(y)) if x is None else np.asarray(x, dtype=np.float64)
        _check_inputs(k, y, x)
        self.k = np.asarray(k, dtype=np.float64)
        self.scale = kernel_scale(self.k)
        eig = _Eigen(self.k, x, y)
        eig.p = int(np.linalg.matrix_rank(x))
        if self.delta_given is not None:
            self.delta = self.delta_given
        elif self.h2_given is not None:
            self.delta = self.scale * (1.0 - self.h2_given) / self.h2_given
        else:
            objective = eig.neg_reml if self.select == "reml" else eig.loo_mse
            self.delta = math.exp(_best_log_delta(objective))
        self._solve(eig, x, y)
        return self

    def _solve(self, eig: _Eigen, x: np.ndarray, y: np.ndarray) -> None:
        """BLUEs, ``alpha = P y``, variance components and LOO residuals, all in ``O(n^2)``.

        ``P_H = U M U'`` with ``M = W - A C A'``, ``W = diag(1 / (d + delta))``,
        ``A = W U' X`` and ``C = (X' H^-1 X)^-1``; nothing ``(n, n)`` but ``U`` is formed.
        """
        delta, n, p = self.delta, eig.n, eig.p
        self.b, c, ypy, logdet_xhx = eig.gls(delta)
        w = 1.0 / (eig.d + delta)
        a = eig.ux * w[:, None]  # (n, p)
        self._eig, self._w, self._a, self._c = eig, w, a, c
        self.alpha = eig.u @ (w * eig.uy - a @ (c @ (a.T @ eig.uy)))  # P_H y
        hinv_x = eig.u @ a  # H^-1 X, (n, p)
        p_diag = eig.u2 @ w - np.einsum("ij,jk,ik->i", hinv_x, c, hinv_x)
        sigma_g2 = ypy / (n - p)
        loglik = -0.5 * (
            (n - p) * (math.log(2 * math.pi * sigma_g2) + 1)
            + float(np.sum(np.log(eig.d + delta)))
            + logdet_xhx
        )
        traces = _traces(w, eig.d, a, c)
        self.vc = _components(traces, sigma_g2, delta, self.scale, loglik, n, p)
        self.loo_residuals = self.alpha / np.clip(p_diag, 1e-300, None)
        self.x_train = x

    @property
    def h2(self) -> float:
        return self.vc.h2

    def fitted(self) -> np.ndarray:
        """In-sample fit ``X b + K alpha``, shape ``(n,)``."""
        return self.x_train @ self.b + self.k @ self.alpha

    def predict(self, k_new: np.ndarray, x_new: np.ndarray | None = None) -> np.ndarray:
        """``X_new b + K_new,train alpha`` for ``k_new`` ``(m, n)``; shape ``(m,)``."""
        k_new = np.asarray(k_new, dtype=np.float64)
        x_new = intercept(len(k_new)) if x_new is None else np.asarray(x_new, dtype=np.float64)
        return x_new @ self.b + k_new @ self.alpha

    def reliability(self, k_new: np.ndarray, k_new_diag: np.ndarray) -> np.ndarray:
        """``1 - PEV / (s2g K_ii)`` of the BLUPs of new (or training) individuals.

        ``PEV = s2g (K_ii - [K_new,train P_H K_train,new]_ii)`` with ``P_H = s2g P``; this is
        the squared correlation between the true and the predicted genetic value.

        Args:
            k_new: relationships to the training individuals, shape ``(m, n)``.
            k_new_diag: their self-relationships ``K_ii``, shape ``(m,)``.

        Returns:
            Shape ``(m,)``, in [0, 1].
        """
        kn = np.asarray(k_new, dtype=np.float64) @ self._eig.u  # (m, n)
        kna = kn @ self._a  # (m, p)
        explained = (kn**2) @ self._w - np.einsum("ij,jk,ik->i", kna, self._c, kna)
        diag = np.clip(np.asarray(k_new_diag, dtype=np.float64), 1e-12, None)
        return np.clip(explained / diag, 0.0, 1.0)


def _traces(w, d, a, c) -> tuple[float, float, float]:
    """``tr(P_H K P_H K)``, ``tr(P_H K P_H)``, ``tr(P_H P_H)`` in ``O(n p^2)``.

    In ``K``'s eigenbasis ``P_H = M = W - A C A'`` and ``K = D``; for diagonal ``E``, ``F``:
    ``tr(M E M F) = sum(w^2 e f) - 2 sum(w e f diag(A C A')) + tr(C A'EA C A'FA)``.
    """
    aca = np.einsum("ij,jk,ik->i", a, c, a)  # diag(A C A')

    def tr(e: np.ndarray, f: np.ndarray) -> float:
        cross = c @ (a.T * e) @ a @ c @ (a.T * f) @ a  # (p, p)
        return float(np.sum(w * w * e * f) - 2 * np.sum(w * e * f * aca) + np.trace(cross))

    one = np.ones_like(d)
    return tr(d, d), tr(d, one), tr(one, one)


def _components(traces, sigma_g2, delta, scale, loglik, n, p) -> VarianceComponents:
    """Variance components and h2 with its delta-method SE from the expected information.

    With ``V = s2g H``: ``I = 1/2 [[tr(PKPK), tr(PKP)], [tr(PKP), tr(PP)]]`` for
    ``(s2g, s2e)``, ``P = P_H / s2g``.
    """
    sigma_e2 = delta * sigma_g2
    t_kk, t_k, t_1 = traces
    # h2 is scale-free, so its SE is computed in units of s2g (s2g = 1, s2e = delta): the
    # same value, and no overflow for traits of any size
    info = 0.5 * np.array([[t_kk, t_k], [t_k, t_1]])
    total = scale + delta
    h2 = scale / total
    grad = np.array([scale * delta, -scale]) / total**2
    try:
        cov = np.linalg.inv(info)
        var = float(grad @ cov @ grad)
        se = math.sqrt(var) if var >= 0 else math.nan
    except np.linalg.LinAlgError:
        se = math.nan
    return VarianceComponents(
        float(sigma_g2), float(sigma_e2), float(h2), se, float(scale), float(loglik), n, p
    )


def _check_inputs(k: np.ndarray, y: np.ndarray, x: np.ndarray) -> None:
    n = len(y)
    if k.shape != (n, n):
        raise ValueError(f"K must be ({n}, {n}) for {n} records. Received: shape={k.shape}")
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"X must have {n} rows. Received: shape={x.shape}")
    if not (np.isfinite(k).all() and np.isfinite(y).all() and np.isfinite(x).all()):
        raise ValueError("K, y and X must be finite (no NaN or infinity)")
    if n < x.shape[1] + 2:
        raise ValueError(
            f"need at least {x.shape[1] + 2} records for {x.shape[1]} fixed effects. Received: {n}"
        )


def reml(k: np.ndarray, y: np.ndarray, x: np.ndarray | None = None) -> VarianceComponents:
    """REML variance components of ``y = X b + u + e``, ``u ~ N(0, s2g K)``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 300)); k = z @ z.T / 300
    >>> y = z @ rng.normal(size=300) / 300**0.5 + rng.normal(size=200)
    >>> 0.2 < reml(k, y).h2 < 0.8
    True
    """
    return KernelBLUP().fit(k, y, x).vc
