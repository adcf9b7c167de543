"""Several environments at once: multi-environment kernel models.

For line ``l`` in environment ``e``, ``y_le = mu_e + u_le + e_le`` with genetic values
``u ~ N(0, Sigma_g (x) K)`` over (environment, line) and residuals ``e ~ N(0, Sigma_e (x) I)``
(a line's records may share a non-genetic effect; records of different lines are
independent). Two structures of the genetic covariance ``Sigma_g`` between environments:

- ``"gxe"``: a genetic effect shared by every environment plus environment-specific
  deviations, ``u_le = g_l + ge_le``, ``Sigma_g = s2g J + s2ge I``; one residual variance
  (the marker x environment model of Lopez-Cruz et al. 2015, *G3* 5:569, BGLR's
  multi-environment example). Any two environments have the genetic correlation
  ``s2g / (s2g + s2ge)`` >= 0, and an environment without records can still be predicted.
- ``"unstructured"``: any positive semi-definite ``Sigma_g`` and ``Sigma_e`` (the multi-trait
  GBLUP): environments may be correlated negatively, each pair as the data say, and a
  line's non-genetic effect shared between environments goes to ``Sigma_e``, not to
  ``Sigma_g``. Every environment needs training records.

A line's records in some environments inform its prediction in the others (the CV2
scheme), through ``Sigma_g``'s off-diagonal.

**Estimation.** REML on the lines with a record in every environment that has records:
rotated by the eigenvectors of ``S (K + I) S`` (``S`` centres; as EMMA does for one trait)
their records become independent rows with covariance ``phi_i Sigma_g + Sigma_e``, so the
restricted likelihood costs ``O(N E^3)`` per evaluation and L-BFGS maximises it over the
Cholesky factor of ``Sigma_g`` and the log residual variances. **Prediction** (BLUP) then
uses every training record, also those of incomplete lines: one Cholesky factorisation of
the records' covariance, the environment means by GLS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize

from cnnkit.genomics.baselines import RKHS
from cnnkit.genomics.kernels import (
    gaussian_kernel,
    median_distance,
    squared_distances,
    vanraden_g,
    vanraden_scale,
)

STRUCTURES = ("gxe", "unstructured")


@dataclass(frozen=True)
class MultiEnvComponents:
    """REML estimates of a multi-environment model.

    Attributes:
        genetic_covariance: ``Sigma_g`` between the environments with records (scale of K).
        residual_covariance: ``Sigma_e`` between a line's records in the environments.
        genetic_correlation: ``Sigma_g`` as correlations.
        h2: heritability within each environment on the population scale
            (``c Sigma_g[e, e] / (c Sigma_g[e, e] + Sigma_e[e, e])``,
            ``c = mean(diag K) - mean(K)``).
        loglik: the maximised restricted log-likelihood (of the lines used).
        lines_used: lines with a record in every environment (the REML sample).
    """

    structure: str
    genetic_covariance: list[list[float]]
    residual_covariance: list[list[float]]
    genetic_correlation: list[list[float]]
    h2: list[float]
    loglik: float
    lines_used: int

    def to_dict(self) -> dict:
        return asdict(self)


def _rotation(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(phi, Q)``: eigenvalues - 1 and eigenvectors of ``S (K + I) S`` without ``S``'s null
    direction; ``Q' y`` has covariance ``phi Sigma_g + Sigma_e`` per row for centred ``y``."""
    n = len(k)
    s = np.eye(n) - 1.0 / n
    lam, q = np.linalg.eigh(s @ (k + np.eye(n)) @ s)
    return np.clip(lam[1:] - 1.0, 0.0, None), q[:, 1:]


class _RotatedReml:
    """The restricted likelihood of complete lines in ``K``'s eigenbasis."""

    def __init__(self, k: np.ndarray, y: np.ndarray, structure: str) -> None:
        self.phi, q = _rotation(k)
        self.ys = q.T @ y  # (n - 1, E)
        self.n_env = y.shape[1]
        self.structure = structure
        self.tril = np.tril_indices(self.n_env)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Sigma_g, Sigma_e)`` from the free parameters (Cholesky factors, or logs)."""
        e = self.n_env
        if self.structure == "gxe":
            s2g, s2ge, s2e = np.exp(theta)
            return s2g * np.ones((e, e)) + s2ge * np.eye(e), s2e * np.eye(e)
        k = len(self.tril[0])
        lg, le = np.zeros((e, e)), np.zeros((e, e))
        lg[self.tril], le[self.tril] = theta[:k], theta[k:]
        return lg @ lg.T, le @ le.T + 1e-10 * np.eye(e)

    def start(self) -> np.ndarray:
        """Half the phenotypic (co)variance genetic, half residual."""
        cov = np.cov(self.ys.T).reshape(self.n_env, self.n_env)
        scale = float(np.mean(self.phi)) or 1.0
        if self.structure == "gxe":
            v = float(np.mean(np.diag(cov)))
            off = float(np.mean(cov[~np.eye(self.n_env, dtype=bool)])) if self.n_env > 1 else 0
            s2g = max(off, 0.05 * v) / 2 / scale
            return np.log([s2g, max(v / 2 / scale - s2g, 0.05 * v / scale), v / 2])
        ridge = 1e-3 * np.eye(self.n_env) * float(np.mean(np.diag(cov)))
        lg = np.linalg.cholesky(cov / 2 / scale + ridge)
        le = np.linalg.cholesky(cov / 2 + ridge)
        return np.concatenate([lg[self.tril], le[self.tril]])

    def neg2(self, theta: np.ndarray) -> float:
        """``-2`` x the restricted log-likelihood, up to a constant."""
        sg, se = self.unpack(theta)
        m = self.phi[:, None, None] * sg[None] + se[None]  # (n, E, E)
        try:
            chol = np.linalg.cholesky(m)
        except np.linalg.LinAlgError:
            return 1e300
        logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)))
        w = np.linalg.solve(chol, self.ys[:, :, None])[:, :, 0]  # L^-1 y per row
        return float(logdet + np.sum(w * w))


def estimate(k: np.ndarray, y: np.ndarray, structure: str) -> tuple[np.ndarray, np.ndarray, float]:
    """REML ``(Sigma_g, Sigma_e, loglik)`` from complete lines' records ``y``
    ``(n, E)`` and their kernel ``k`` ``(n, n)``."""
    model = _RotatedReml(k, y - y.mean(axis=0), structure)
    res = minimize(model.neg2, model.start(), method="L-BFGS-B",
                   options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-7})  # fmt: skip
    sg, se = model.unpack(res.x)
    q = model.ys.shape[0] * model.n_env
    return sg, se, -0.5 * (float(res.fun) + q * math.log(2 * math.pi))


class MultiEnvBLUP:
    """A multi-environment model on VanRaden's G (``kernel="gblup"``) or a Gaussian kernel
    (``kernel="rkhs"``), fitted on every training record at once.

    Args:
        kernel: ``"gblup"`` or ``"rkhs"``.
        structure: ``"gxe"`` (main + G x E) or ``"unstructured"`` (multi-trait).
        means: training SNP means (VanRaden's scale for ``gblup``).
        bandwidth: the Gaussian kernel's bandwidth; None: the one single-environment RKHS
            chooses by REML on each line's mean over its environments.

    Attributes (after fit): vc (:class:`MultiEnvComponents`), env_means, bandwidth.
    """

    def __init__(
        self,
        kernel: str = "gblup",
        structure: str = "gxe",
        means=None,
        bandwidth: float | None = None,
    ) -> None:
        if kernel not in ("gblup", "rkhs"):
            raise ValueError(f'kernel must be "gblup" or "rkhs". Received: kernel={kernel!r}')
        if structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {STRUCTURES}. Received: {structure!r}")
        self.kernel_name, self.structure = kernel, structure
        self.means, self.bandwidth_arg = means, bandwidth
        self.bandwidth = float("nan") if bandwidth is None else float(bandwidth)

    def _lines_kernel(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.kernel_name == "gblup":
            self.k = vanraden_scale(self.means) if self.means is not None else z.shape[1] / 2
            return vanraden_g(z, self.k)
        d = squared_distances(z)
        self.median = median_distance(d)
        bandwidth = self.bandwidth_arg
        if bandwidth is None:  # chosen anew on every fit
            seen = ~np.isnan(y).all(axis=1)
            bandwidth = RKHS().fit(z[seen], np.nanmean(y[seen], axis=1)).bandwidth
        self.bandwidth = float(bandwidth)
        return gaussian_kernel(d, self.bandwidth, self.median)

    def _cross(self, z_new: np.ndarray) -> np.ndarray:
        if self.kernel_name == "gblup":
            return vanraden_g(self.z, self.k, z_new)
        return gaussian_kernel(squared_distances(self.z, z_new), self.bandwidth, self.median)

    def fit(self, x: np.ndarray, y: np.ndarray) -> MultiEnvBLUP:
        """Fit on centred genotypes ``x`` ``(N, L)`` and records ``y`` ``(N, E)`` (NaN: none).

        Raises:
            ValueError: ``y`` not 2-D; fewer complete lines than environments + 3; an
                environment without records for the unstructured model.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"y must be (lines, environments). Received: shape={y.shape}")
        self.z, self.n_env = x.astype(np.float64), y.shape[1]
        seen = np.flatnonzero(~np.isnan(y).all(axis=0))  # environments with records
        if self.structure == "unstructured" and len(seen) < self.n_env:
            raise ValueError(
                "the unstructured multi-environment model needs training records in every "
                "environment (leave-env-out: use the main + G x E model, gblup_me)"
            )
        k_lines = self._lines_kernel(self.z, y)
        complete = np.flatnonzero(~np.isnan(y[:, seen]).any(axis=1))
        if len(complete) < len(seen) + 3:
            raise ValueError(
                f"need >= {len(seen) + 3} lines with a record in every environment to estimate "
                f"the genetic covariance. Received: {len(complete)}"
            )
        sub = y[np.ix_(complete, seen)]
        sg, se, loglik = estimate(k_lines[np.ix_(complete, complete)], sub, self.structure)
        self.sigma_g, self.sigma_e = self._expand(sg, se, seen)
        self._blup(k_lines, y)
        self.vc = self._components(k_lines, loglik, len(complete))
        return self

    def _expand(self, sg, se, seen) -> tuple[np.ndarray, np.ndarray]:
        """Sigma_g and Sigma_e over all environments (``gxe`` extends its compound symmetry
        to an environment without records)."""
        e = self.n_env
        if len(seen) == e:
            return sg, se
        # one environment cannot split s2g from s2ge: the unseen one gets its genetic values
        s2g = float(sg[0, 1]) if len(seen) > 1 else float(sg[0, 0])
        s2ge = float(sg[0, 0]) - s2g
        return s2g * np.ones((e, e)) + s2ge * np.eye(e), float(se[0, 0]) * np.eye(e)

    def _blup(self, k_lines: np.ndarray, y: np.ndarray) -> None:
        """Environment means (GLS) and ``alpha = V^-1 (y - X b)`` over every record."""
        line, env = np.nonzero(~np.isnan(y))
        self.rec_line, self.rec_env = line, env
        v = self.sigma_g[np.ix_(env, env)] * k_lines[np.ix_(line, line)]
        v += self.sigma_e[np.ix_(env, env)] * (line[:, None] == line[None, :])
        envs = np.unique(env)
        x = (env[:, None] == envs[None, :]).astype(np.float64)
        c = cho_factor(v, lower=True, check_finite=False)
        vinv_x = cho_solve(c, x, check_finite=False)
        vinv_y = cho_solve(c, y[line, env], check_finite=False)
        beta = np.linalg.solve(x.T @ vinv_x, x.T @ vinv_y)
        self.alpha = vinv_y - vinv_x @ beta
        self.env_means = np.full(self.n_env, float(np.mean(beta)))
        self.env_means[envs] = beta

    def _components(self, k_lines, loglik: float, used: int) -> MultiEnvComponents:
        sd = np.sqrt(np.clip(np.diag(self.sigma_g), 1e-300, None))
        c = float(np.mean(np.diag(k_lines)) - np.mean(k_lines))
        gv = c * np.diag(self.sigma_g)
        return MultiEnvComponents(
            self.structure, self.sigma_g.tolist(), self.sigma_e.tolist(),
            (self.sigma_g / np.outer(sd, sd)).tolist(),
            (gv / (gv + np.diag(self.sigma_e))).tolist(), float(loglik), int(used),
        )  # fmt: skip

    def genetic_values(self, x: np.ndarray) -> np.ndarray:
        """Predicted genetic values of lines ``x`` ``(M, L)`` in every environment, ``(M, E)``."""
        k_new = self._cross(x.astype(np.float64))[:, self.rec_line]  # (M, n)
        onehot = self.rec_env[:, None] == np.arange(self.n_env)[None, :]  # (n, E)
        per_env = k_new @ (self.alpha[:, None] * onehot)  # (M, E): sum over records of env e'
        return per_env @ self.sigma_g  # Sigma_g[e', e] carries env e' to env e

    def marker_effects(self) -> np.ndarray:
        """Per-environment marker effects ``(L, E)`` of the ``gblup`` kernel: the genetic
        values are ``x @ marker_effects()`` for centred genotypes ``x``."""
        if self.kernel_name != "gblup":
            raise ValueError("marker effects exist for the gblup kernel only")
        onehot = self.rec_env[:, None] == np.arange(self.n_env)[None, :]  # (n, E)
        per_env = self.z[self.rec_line].T @ (self.alpha[:, None] * onehot) / self.k  # (L, E)
        return per_env @ self.sigma_g

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Environment mean + genetic value of lines ``x`` ``(M, L)``, shape ``(M, E)``."""
        return self.env_means[None, :] + self.genetic_values(x)
