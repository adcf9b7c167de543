"""Per-fold SNP preprocessing: drop monomorphic SNPs, impute and centre with training means.

A :class:`SnpPreprocessor` is fitted on the training rows of a fold only, then applied to
that fold's test rows, so nothing about the test rows leaks into the fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SnpPreprocessor:
    """Keeps polymorphic SNPs, fills missing calls with the training mean, centres.

    Attributes (after :meth:`fit`):
        keep: indices of the SNPs kept, into the original columns. Shape ``(L,)``.
        means: training means of the kept SNPs (the ``2p`` of VanRaden). Shape ``(L,)``.
        n_input: number of SNP columns the preprocessor was fitted on.
    """

    keep: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    means: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    n_input: int = 0

    def fit(self, x: np.ndarray) -> SnpPreprocessor:
        """Learn which SNPs to keep and their means from the training rows ``x`` ``(N, P)``."""
        with np.errstate(all="ignore"):
            means = np.nanmean(x, axis=0)
            lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
        polymorphic = np.isfinite(means) & (hi > lo)
        self.keep = np.flatnonzero(polymorphic)
        self.means = means[self.keep].astype(np.float32)
        self.n_input = int(x.shape[1])
        if self.keep.size == 0:
            raise ValueError("no polymorphic SNP left in the training rows; nothing to fit")
        return self

    @property
    def n_dropped(self) -> int:
        return self.n_input - int(self.keep.size)

    def transform(self, x: np.ndarray, center: bool = True) -> np.ndarray:
        """Kept SNPs of ``x`` ``(N, P)``, missing filled with the training mean, centred.

        Returns:
            float32 array of shape ``(N, L)``; centred (``x - mean``) unless ``center=False``.
        """
        if self.n_input == 0:
            raise RuntimeError("SnpPreprocessor.transform called before fit")
        if x.shape[1] != self.n_input:
            raise ValueError(
                f"genotypes must have the {self.n_input} SNP columns seen in training. "
                f"Received: {x.shape[1]} columns"
            )
        sub = x[:, self.keep].astype(np.float32, copy=True)
        missing = np.isnan(sub)
        sub[missing] = np.broadcast_to(self.means, sub.shape)[missing]
        return sub - self.means if center else sub

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save (e.g. with safetensors)."""
        return {
            "keep": self.keep.astype(np.int64),
            "means": self.means,
            "n_input": np.array([self.n_input], dtype=np.int64),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> SnpPreprocessor:
        """Rebuild from :meth:`state`."""
        return cls(
            np.asarray(state["keep"], dtype=np.int64),
            np.asarray(state["means"], dtype=np.float32),
            int(np.asarray(state["n_input"])[0]),
        )
