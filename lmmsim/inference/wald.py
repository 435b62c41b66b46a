"""Wald tests and intervals: t with given df, or z where the df are missing."""

from __future__ import annotations

import numpy as np
from scipy import stats

LEVEL = 0.95
"""Confidence level of every interval."""


def t_or_z(estimate, se, df):
    """Statistic, two-sided p-value and CI bounds (level ``LEVEL``): t with ``df`` or, where df
    is NaN, z."""
    estimate, se, df = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (estimate, se, df)))
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimate / se
    z = np.isnan(df)
    dfs = np.where(z | (df <= 0), 1.0, df)
    p = np.where(z, 2 * stats.norm.sf(np.abs(statistic)), 2 * stats.t.sf(np.abs(statistic), dfs))
    levels, at = np.unique(dfs, return_inverse=True)  # few distinct df: the quantile is slow to compute
    q = np.where(z, stats.norm.ppf(0.5 + LEVEL / 2), stats.t.ppf(0.5 + LEVEL / 2, levels)[at.reshape(dfs.shape)])
    bad = ~z & (df <= 0)
    p, q = np.where(bad, np.nan, p), np.where(bad, np.nan, q)
    return statistic, p, estimate - q * se, estimate + q * se
