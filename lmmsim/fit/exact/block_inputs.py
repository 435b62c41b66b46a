"""Checks of the arrays given to the block-diagonal fitter (:func:`lmmsim.fit.exact.block.fit_block`)."""

from __future__ import annotations

import numpy as np

from lmmsim.fit.exact.block_criterion import theta_template


def check_rank(xtx: np.ndarray) -> None:
    """Raise unless every X'X (p, p, R) is numerically positive definite.

    Cholesky pivots of the unit-diagonal scaling: cheaper than an SVD of each
    replication's X, which would cost more than the fit.
    """
    scale = 1.0 / np.sqrt(np.maximum(np.einsum("aa...->a...", xtx), 1e-300))
    a = xtx * scale[:, None] * scale[None, :]
    smallest = np.inf
    for k in range(len(a)):
        pivot = a[k, k].copy()
        smallest = min(smallest, pivot.min())
        if smallest < 1e-10:
            raise ValueError(f"X: got a rank-deficient design (pivot {smallest:.3g} in column {k} of the scaled "
                             f"X'X), expected full column rank p = {len(a)}")
        a = a - a[:, k:k + 1] * a[k:k + 1, :] / pivot


def check_inputs(y, X, Z, groups, terms):
    """Validated float arrays and integer group codes; see :func:`fit_block`."""
    y, X, Z = (np.asarray(v, dtype=float) for v in (y, X, Z))
    groups = np.asarray(groups)
    if y.ndim not in (1, 2):
        raise ValueError(f"y: got shape {y.shape}, expected (n,) or (R, n)")
    y = np.atleast_2d(y)
    R, n = y.shape
    if X.ndim not in (2, 3) or X.shape[-2] != n or (X.ndim == 3 and X.shape[0] != R):
        raise ValueError(f"X: got shape {X.shape}, expected (n, p) or (R, n, p) with (R, n) = {(R, n)} from y")
    if Z.ndim != 2 or Z.shape[0] != n:
        raise ValueError(f"Z: got shape {Z.shape}, expected (n, q) with n = {n} from y")
    if groups.shape != (n,):
        raise ValueError(f"groups: got shape {groups.shape}, expected ({n},), one label per observation")
    for name, value in (("y", y), ("X", X), ("Z", Z)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name}: got {np.size(value) - np.isfinite(value).sum()} non-finite values, "
                             "expected all finite")
    p = X.shape[-1]
    if not 0 < p < n:
        raise ValueError(f"X: got p = {p} columns for n = {n} observations, expected 1 <= p < n")
    q = len(theta_template(terms))
    if q != Z.shape[1]:
        raise ValueError(f"terms: got {list(terms)}, which need q = {q} columns of Z, but Z has {Z.shape[1]}")
    _, codes = np.unique(groups, return_inverse=True)
    if codes.max() < 1:
        raise ValueError("groups: got 1 distinct group, expected at least 2")
    return y, X, Z, codes.reshape(n), [(int(k), int(m)) for k, m in terms]
