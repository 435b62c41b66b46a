"""Ordinary least squares: one dataset with statsmodels, or many replications at once."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from lmmsim.fit.result import Fit
from lmmsim.fit.status import FitStatus
from lmmsim.model import ModelSpec, formula_error, prepare


def fit_ols(data: pd.DataFrame, model: ModelSpec, *, cluster: bool = False) -> Fit:
    """Fit the fixed effects by ordinary least squares, ignoring the grouping.

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    model : ModelSpec
        Its formula gives the fixed effects; the random effects are ignored.
    cluster : bool
        Use cluster-robust (sandwich) standard errors with ``model.groups`` as clusters.

    Returns
    -------
    Fit
        With ``sd(residual)`` as the only variance parameter; ``failed``, without estimates,
        if X is rank deficient (see ``lmmsim.fit.ols.rank_deficiency``).
    """
    import patsy  # imported here: statsmodels takes ~1 s to import, and the CLI rarely fits
    import statsmodels.formula.api as smf

    data = prepare(data, model)
    try:
        ols = smf.ols(model.formula, data)
    except patsy.PatsyError as err:
        raise formula_error("model", model.formula, err) from None
    deficient = rank_deficiency(ols.exog, ols.exog_names)
    if deficient:
        status = FitStatus(False, message=f"failed: {deficient}", failed=True)
        return Fit("OLS (cluster-robust)" if cluster else "OLS", _no_estimates(), status, float("nan"), int(ols.nobs))
    if cluster:
        codes = pd.factorize(data[model.groups])[0]
        result = ols.fit(cov_type="cluster", cov_kwds={"groups": codes})
    else:
        result = ols.fit()
    ci = result.conf_int(alpha=0.05)
    estimates = pd.DataFrame(
        {"estimate": result.params, "se": result.bse, "ci_low": ci[0], "ci_high": ci[1]}
    )
    estimates.loc["sd(residual)"] = (np.sqrt(result.scale), np.nan, np.nan, np.nan)
    estimates.index.name = "parameter"
    return Fit(
        "OLS (cluster-robust)" if cluster else "OLS",
        estimates,
        FitStatus(True),
        float(result.llf),
        int(result.nobs),
        result,
    )


def rank_deficiency(X: np.ndarray, names) -> str:
    """Why the columns of ``X`` (n, p) do not determine p coefficients (``""`` if they do): a
    constant column beside the intercept, a level no observation has left (dropout), ...
    Least squares would then report an arbitrary solution with meaningless SEs."""
    X = np.asarray(X, dtype=float)
    rank = np.linalg.matrix_rank(X) if X.size else 0
    if rank == X.shape[-1]:
        return ""
    return (f"X is rank deficient (rank {rank} < {X.shape[-1]} columns: {', '.join(map(str, names))}); "
            "its coefficients are not identified")


def _no_estimates() -> pd.DataFrame:
    frame = pd.DataFrame(columns=["estimate", "se", "ci_low", "ci_high"], dtype=float)
    frame.index.name = "parameter"
    return frame


class OlsArrays(NamedTuple):
    """OLS of R replications: ``beta`` (R, p), ``resid`` (R, n) and ``xtx_inv``, (X'X)⁻¹ of
    shape (p, p) or (R, p, p)."""

    beta: np.ndarray
    resid: np.ndarray
    xtx_inv: np.ndarray


def fit_ols_arrays(y: np.ndarray, X: np.ndarray) -> OlsArrays:
    """OLS of each row of ``y`` (R, n) on ``X``, shared (n, p) or per replication (R, n, p).

    Raises
    ------
    ValueError
        If ``X`` (of some replication) is rank deficient.
    """
    ranks = np.linalg.matrix_rank(X)
    if np.any(ranks < X.shape[-1]):
        raise ValueError(f"X is rank deficient (rank {int(np.min(ranks))} < {X.shape[-1]} columns); "
                         "its coefficients are not identified")
    inv = np.linalg.inv(np.swapaxes(X, -1, -2) @ X)
    Xty = (y[:, None, :] @ X)[:, 0, :] if X.ndim == 3 else y @ X
    beta = (inv @ Xty[..., None])[..., 0] if X.ndim == 3 else Xty @ inv.T
    fitted = (X @ beta[..., None])[..., 0] if X.ndim == 3 else beta @ X.T
    return OlsArrays(beta, y - fitted, inv)
