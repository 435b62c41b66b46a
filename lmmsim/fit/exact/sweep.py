"""Inverse and log-determinant of many small positive definite matrices at once.

Shared by the exact fitters (``profile``, ``spectral``, ``block_criterion``): for the small
``p`` of a fixed-effects design, Gauss-Jordan sweeps vectorised over the replications are far
faster than batched LAPACK, whose cost is mostly per matrix.
"""

from __future__ import annotations

import numpy as np


def inverse_logdet(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse, in place, and log-determinant of positive definite ``a[i, j, ...]``.

    Gauss-Jordan sweeps vectorised over the trailing axes; positive pivots make
    pivoting unnecessary.
    """
    logdet = 0.0
    for k in range(a.shape[0]):
        pivot = a[k, k].copy()
        logdet = logdet + np.log(pivot)
        col = a[:, k].copy()
        row = a[k] / pivot
        a -= col[:, None] * row[None, :]
        a[k] = row
        a[:, k] = -col / pivot
        a[k, k] = 1.0 / pivot
    return a, logdet
