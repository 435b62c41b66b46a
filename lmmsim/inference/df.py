"""Denominator degrees of freedom for t tests of fixed effects in mixed models.

Between-within df (SAS ``DDFM=BETWITHIN``), extended to random slopes; Satterthwaite and
Kenward–Roger are not implemented.
"""

from __future__ import annotations

import numpy as np

_TOL = 1e-10  # a column is cluster-level if it varies within clusters by less than this (relative)


def cluster_level(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Which columns of X are constant within every cluster.

    ``X`` of shape (n, p) gives shape (p,); (R, n, p) gives (R, p). A column counts as
    constant when its range within each cluster is at most ``_TOL`` times
    (1 + its largest absolute value).
    """
    groups, X = np.asarray(groups), np.asarray(X, dtype=float)
    if X.ndim == 2:
        return cluster_level(X[None], groups)[0]
    xt = np.moveaxis(X, -1, 0)  # (p, R, n): X is stored column by column
    if np.any(np.diff(groups) < 0):  # each cluster's rows together
        order = np.argsort(groups, kind="stable")
        xt, groups = xt[..., order], groups[order]
    high, low = xt.max(axis=-1), xt.min(axis=-1)
    tol = _TOL * (1.0 + np.maximum(high, -low))
    # Cheap verdicts first: a column within the tolerance overall is constant in every
    # cluster; one that varies beyond it within the first cluster is not.
    constant = high - low <= tol
    first = np.searchsorted(groups, groups[0], side="right")
    varies = np.abs(np.diff(xt[..., :first], axis=-1)).max(axis=-1, initial=0.0) > tol
    for j in range(len(xt)):  # the rest column by column (a view when all replications are left)
        left = ~(constant[j] | varies[j])
        if left.all():
            constant[j] = _constant_within(xt[j], groups, tol[j])
        elif left.any():
            constant[j][left] = _constant_within(xt[j][left], groups, tol[j][left])
    return constant.T


def _constant_within(a: np.ndarray, groups: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Whether ``a`` (observations on the last axis, clusters contiguous) ranges within each
    cluster by at most ``tol``."""
    # The largest step between neighbouring rows of a cluster bounds the range from below, and
    # is 0 exactly when the range is: one pass along memory decides nearly every row; the
    # per-cluster range (reductions over short runs, much slower) only where a step is
    # nonzero but within the tolerance.
    step = np.diff(a, axis=-1)
    np.abs(step, out=step)  # in place: a fresh array of this size costs its page faults
    step[..., np.flatnonzero(np.diff(groups))] = 0.0  # across a cluster boundary
    largest = step.max(axis=-1)
    constant = largest == 0.0
    unsure = (largest > 0.0) & (largest <= tol)
    if unsure.any():
        high, low = _cluster_extremes(a[unsure], groups)
        constant[unsure] = (high - low).max(axis=-1) <= tol[unsure]
    return constant


def _cluster_extremes(a: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and smallest value of ``a`` (observations on the last axis) in each cluster
    that has observations, shape ``a.shape[:-1] + (clusters,)``."""
    if np.any(np.diff(groups) < 0):  # the reductions below need each cluster contiguous
        order = np.argsort(groups, kind="stable")
        a, groups = a[..., order], groups[order]
    sizes = np.bincount(groups)
    sizes = sizes[sizes > 0]
    if (sizes == sizes[0]).all():  # equal clusters: a reshape, much faster than reduceat
        blocks = a.reshape(*a.shape[:-1], len(sizes), sizes[0])
        return blocks.max(axis=-1), blocks.min(axis=-1)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return np.maximum.reduceat(a, starts, axis=-1), np.minimum.reduceat(a, starts, axis=-1)


def between_within_df(between: np.ndarray, n: int, J: int) -> np.ndarray:
    """Between-within df of each coefficient: J − p_b if cluster-level, else N − J − p_w."""
    between = np.asarray(between, dtype=bool)
    p_b = between.sum(axis=-1, keepdims=True)
    p_w = between.shape[-1] - p_b
    return np.where(between, J - p_b, n - J - p_w).astype(float)


def denominator_df(X: np.ndarray, groups: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
    """Between-within df, extended to random slopes, for each column of X: shape (n, p) gives
    (p,), (R, n, p) gives (R, p).

    Each random-effect column z_t of ``Z`` (shape (n, q); default: the random intercept)
    claims the columns of X that are z_t times a cluster-level variable (for the
    intercept: the cluster-level columns; for a random slope of week: week and its
    interactions with cluster-level variables). Those are estimated from the J clusters'
    own coefficients: df = J − (number of columns claimed by z_t). The remaining
    columns get N − J·q − (their number). With only a random intercept this is SAS's
    ``DDFM=BETWITHIN``: J − p_b and N − J − p_w.
    """
    X = np.asarray(X, dtype=float)
    single = X.ndim == 2
    X = X[None] if single else X
    R, n, p = X.shape
    J = int(groups.max()) + 1
    Z = np.ones((n, 1)) if Z is None else np.asarray(Z, dtype=float).reshape(n, -1)
    family = np.full((R, p), -1)
    for t in range(Z.shape[1]):
        for c in range(p):
            claimed = (family[:, c] < 0) & _proportional_within(X[:, :, c], Z[:, t], groups)
            family[claimed, c] = t
    df = np.empty((R, p))
    for t in range(Z.shape[1]):
        df = np.where(family == t, J - (family == t).sum(axis=1, keepdims=True), df)
    rest = family < 0
    df = np.where(rest, n - J * Z.shape[1] - rest.sum(axis=1, keepdims=True), df)
    return df[0] if single else df


def _proportional_within(x: np.ndarray, z: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Whether each row of x (shape (R, n)) is z · (a value per cluster), up to rounding."""
    tol = _TOL * (1.0 + np.abs(x).max(axis=1))
    zero = np.abs(z) <= _TOL * (1.0 + np.abs(z).max())
    if zero.all():
        return np.zeros(len(x), dtype=bool)
    outside = (np.abs(x[:, zero]) > tol[:, None]).any(axis=1)
    high, low = _cluster_extremes(x[:, ~zero] / z[~zero], groups[~zero])
    scale = 1.0 + np.maximum(np.abs(high).max(axis=1), np.abs(low).max(axis=1))
    return ~outside & ((high - low) <= _TOL * scale[:, None]).all(axis=1)
