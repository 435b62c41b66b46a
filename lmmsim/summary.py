"""Performance of estimators and tests over Monte Carlo replications, with Monte Carlo SEs.

Each measure and its Monte Carlo standard error (MCSE) follow Morris, White & Crowther
(2019, *Statistics in Medicine* 38:2074, Table 6). With n replications, estimates
θ̂_i, true value θ, model SEs s_i, mean θ̄ and empirical SE S (the SD of the θ̂_i):

================  ==========================================  ===============================================
measure           estimate                                    MCSE
================  ==========================================  ===============================================
bias              θ̄ − θ                                       S / √n
empirical SE      S                                           S / √(2(n − 1))
RMSE              √(Σ(θ̂_i − θ)² / n)                          MCSE(MSE) / (2 RMSE), MCSE(MSE) =
                                                              √(Σ((θ̂_i − θ)² − MSE)² / (n(n − 1)))
model SE          √(Σ s_i² / n)                               √(Var(s²) / (4 n ModSE²))
relative SE error ModSE / S − 1                               (ModSE / S) √(Var(s²)/(4 n ModSE⁴) + 1/(2(n − 1)))
coverage          share of CIs that contain θ                 √(C(1 − C) / n)
rejection         share of p-values ≤ α                       √(P(1 − P) / n)
================  ==========================================  ===============================================

(RMSE's MCSE is the delta method applied to Morris et al.'s MSE formula.) Missing
values (failed fits, analyses that give no SE) are left out of each measure, so n may
differ between measures; ``n`` in :func:`summarise` counts the estimates.

>>> import numpy as np
>>> from lmmsim.summary import bias
>>> b = bias(np.array([0.9, 1.1, 1.3]), truth=1.0)  # mean 1.1, SD 0.2
>>> round(b.value, 4), round(b.mcse, 4), b.n  # MCSE = 0.2 / sqrt(3)
(0.1, 0.1155, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lmmsim.schema import PER_REPLICATION

__all__ = ["MEASURES", "Performance", "bias", "coverage", "empirical_se", "format_summary", "model_se",
           "rejection", "relative_se_error", "rmse", "summarise"]

MEASURES = ("bias", "emp_se", "model_se", "rel_se_error", "rmse", "coverage", "rejection")
"""The measures of :func:`summarise`, each with a ``<measure>_mcse`` column."""



@dataclass(frozen=True)
class Performance:
    """A performance measure with its Monte Carlo standard error.

    Attributes
    ----------
    value : float
        The measure (NaN if it needs more replications than there are).
    mcse : float
        Its Monte Carlo standard error.
    n : int
        Replications it is based on (missing values left out).
    """

    value: float
    mcse: float
    n: int


def _clean(*arrays) -> list[np.ndarray]:
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    arrays = np.broadcast_arrays(*arrays)
    keep = np.logical_and.reduce([~np.isnan(a) for a in arrays])
    return [a[keep] for a in arrays]


def _nan(n: int) -> Performance:
    return Performance(float("nan"), float("nan"), int(n))


def bias(estimates, truth) -> Performance:
    """Mean estimate minus the truth; MCSE = S/√n."""
    est, = _clean(estimates)
    truth = float(truth)
    n = len(est)
    if n < 2 or np.isnan(truth):
        return _nan(n)
    return Performance(float(est.mean() - truth), float(est.std(ddof=1) / np.sqrt(n)), n)


def empirical_se(estimates) -> Performance:
    """SD of the estimates over replications; MCSE = S/√(2(n − 1))."""
    est, = _clean(estimates)
    n = len(est)
    if n < 2:
        return _nan(n)
    s = float(est.std(ddof=1))
    return Performance(s, s / np.sqrt(2 * (n - 1)), n)


def rmse(estimates, truth) -> Performance:
    """Root mean squared error; MCSE by the delta method from that of the MSE."""
    est, = _clean(estimates)
    truth = float(truth)
    n = len(est)
    if n < 2 or np.isnan(truth):
        return _nan(n)
    sq = (est - truth) ** 2
    mse = sq.mean()
    mcse_mse = np.sqrt(((sq - mse) ** 2).sum() / (n * (n - 1)))
    value = np.sqrt(mse)
    return Performance(float(value), float(mcse_mse / (2 * value)) if value > 0 else 0.0, n)


def model_se(se) -> Performance:
    """Average model SE, √(mean s_i²); MCSE = √(Var(s²)/(4 n ModSE²))."""
    s, = _clean(se)
    n = len(s)
    if n < 2:
        return _nan(n)
    var = s**2
    value = np.sqrt(var.mean())
    return Performance(float(value), float(np.sqrt(var.var(ddof=1) / (4 * n * value**2))) if value > 0 else 0.0, n)


def relative_se_error(estimates, se) -> Performance:
    """ModSE / EmpSE − 1 (as a fraction: 0.1 means the model SEs are 10 % too large).

    Only replications with both an estimate and an SE are used.
    """
    est, s = _clean(estimates, se)
    n = len(est)
    if n < 3:
        return _nan(n)
    emp = est.std(ddof=1)
    var = s**2
    mod = np.sqrt(var.mean())
    if emp == 0 or mod == 0:
        return _nan(n)
    ratio = mod / emp
    mcse = ratio * np.sqrt(var.var(ddof=1) / (4 * n * mod**4) + 1 / (2 * (n - 1)))
    return Performance(float(ratio - 1), float(mcse), n)


def _share(hits: np.ndarray) -> Performance:
    n = len(hits)
    if n == 0:
        return _nan(0)
    p = float(hits.mean())
    return Performance(p, float(np.sqrt(p * (1 - p) / n)), n)


def coverage(ci_low, ci_high, truth) -> Performance:
    """Share of intervals [ci_low, ci_high] that contain the truth; MCSE = √(C(1 − C)/n)."""
    low, high = _clean(ci_low, ci_high)
    if np.isnan(float(truth)):
        return _nan(len(low))
    return _share((low <= truth) & (truth <= high))


def rejection(p_values, alpha: float = 0.05) -> Performance:
    """Share of p-values ≤ ``alpha`` (type I error rate when the null is true, power
    otherwise); MCSE = √(P(1 − P)/n)."""
    p, = _clean(p_values)
    return _share(p <= alpha)


def summarise(results: pd.DataFrame, alpha: float = 0.05, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Performance of every analysis and parameter in every grid cell.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`lmmsim.montecarlo.run` (or a subset of its rows).
    alpha : float
        Significance level for the rejection rate.
    by : sequence of str, optional
        Grouping columns; default every column that is not per-replication: the grid
        parameters, ``analysis`` and ``parameter``.

    Returns
    -------
    pandas.DataFrame
        One row per group, in order of first appearance: the ``by`` columns, then
        ``n`` (estimates available), ``n_failed``, ``n_boundary``, ``n_not_converged``,
        ``truth``, ``mean`` (of the estimates), and for each of ``MEASURES`` its value
        and ``<measure>_mcse``. Every status is included in the measures except
        ``failed`` (which has no estimate).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: got {alpha!r}, expected a level in (0, 1)")
    needed = {"analysis", "parameter", "truth", "estimate", "se", "ci_low", "ci_high", "p_value", "status"}
    missing = needed - set(results)
    if missing:
        raise ValueError(f"results: columns {sorted(missing)} are missing; expected the output of montecarlo.run")
    if by is None:
        by = [c for c in results.columns if c not in PER_REPLICATION]
    rows = []
    for key, group in results.groupby(list(by), sort=False, dropna=False):
        truths = group["truth"].dropna().unique()
        truth = float(truths[0]) if len(truths) == 1 else float("nan")
        est = group["estimate"].to_numpy(dtype=float)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(
            n=int((~np.isnan(est)).sum()),
            n_failed=int((group["status"] == "failed").sum()),
            n_boundary=int((group["status"] == "boundary").sum()),
            n_not_converged=int((group["status"] == "not_converged").sum()),
            truth=truth,
            mean=float(np.nanmean(est)) if (~np.isnan(est)).any() else float("nan"),
        )
        measures = {
            "bias": bias(est, truth),
            "emp_se": empirical_se(est),
            "model_se": model_se(group["se"]),
            "rel_se_error": relative_se_error(est, group["se"]),
            "rmse": rmse(est, truth),
            "coverage": coverage(group["ci_low"], group["ci_high"], truth),
            "rejection": rejection(group["p_value"], alpha),
        }
        for name, perf in measures.items():
            row[name] = perf.value
            row[f"{name}_mcse"] = perf.mcse
        rows.append(row)
    return pd.DataFrame(rows)


def format_summary(table: pd.DataFrame,
                   measures: Sequence[str] = ("bias", "emp_se", "model_se", "coverage", "rejection"),
                   digits: int = 3) -> pd.DataFrame:
    """``value (mcse)`` strings for printing, e.g. ``0.052 (0.005)``.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`summarise`.
    measures : sequence of str
        Which of ``MEASURES`` to show.
    digits : int
        Decimal places.
    """
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise ValueError(f"measures: {unknown} are not measures; expected some of {list(MEASURES)}")
    keys = [c for c in table.columns if c not in {"n", "n_failed", "n_boundary", "n_not_converged", "truth", "mean"}
            and c not in MEASURES and not c.endswith("_mcse")]
    out = table[[*keys, "n", "truth"]].copy()
    for m in measures:
        out[m] = [
            "" if np.isnan(v) else f"{v:.{digits}f} ({e:.{digits}f})" for v, e in zip(table[m], table[f"{m}_mcse"])
        ]
    return out
