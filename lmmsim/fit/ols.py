"""Ordinary least squares: one dataset with statsmodels, or many replications at once."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from lmmsim.fit.result import Fit
from lmmsim.fit.status import FitStatus
from lmmsim.model import ModelSpec, formula_error, prepare

CLUSTER_TYPES = ("CR2", "CR1")
"""Cluster-robust variances ``fit_ols`` accepts by name; ``cluster=True`` means the first."""


def fit_ols(data: pd.DataFrame, model: ModelSpec, *, cluster: bool | str = False) -> Fit:
    """Fit the fixed effects by ordinary least squares, ignoring the grouping.

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    model : ModelSpec
        Its formula gives the fixed effects; the random effects are ignored.
    cluster : bool or str
        ``False``: the usual OLS SEs, t intervals on N − p df. ``True`` or ``"CR2"``:
        cluster-robust (sandwich) SEs with ``model.groups`` as clusters, with the CR2
        (Bell–McCaffrey) small-sample correction and t intervals on its
        Satterthwaite-type df, as the R package clubSandwich computes them: the choice the
        literature recommends with few clusters (see ``lmmsim.inference.cluster_robust``).
        ``"CR1"``: the sandwich with Stata's and statsmodels' factor
        ``J/(J − 1) · (N − 1)/(N − p)`` and t intervals on J − 1 df, which are liberal with
        10 or so clusters of unequal size.

    Returns
    -------
    Fit
        With ``sd(residual)`` as the only variance parameter; ``failed``, without estimates,
        if X is rank deficient (see ``lmmsim.fit.ols.rank_deficiency``). A cluster-robust fit
        has a ``df`` column (the t reference's degrees of freedom, per coefficient), its
        ``method`` names the variance (``"OLS (cluster-robust CR2)"``), and its ``result`` is
        statsmodels' plain OLS fit, whose own ``bse`` are the non-robust SEs.

    Raises
    ------
    ValueError
        If ``cluster`` is not a bool, ``"CR2"`` or ``"CR1"``.
    """
    import patsy  # imported here: statsmodels takes ~1 s to import, and the CLI rarely fits
    import statsmodels.formula.api as smf

    kind = _cluster_kind(cluster)
    method = f"OLS (cluster-robust {kind})" if kind else "OLS"
    data = prepare(data, model)
    try:
        ols = smf.ols(model.formula, data)
    except patsy.PatsyError as err:
        raise formula_error("model", model.formula, err) from None
    deficient = rank_deficiency(ols.exog, ols.exog_names)
    if deficient:
        status = FitStatus(False, message=f"failed: {deficient}", failed=True)
        return Fit(method, _no_estimates(), status, float("nan"), int(ols.nobs))
    result = ols.fit()
    if kind:
        groups = data.loc[ols.data.row_labels, model.groups].to_numpy()
        estimates = _cluster_estimates(result, groups, kind)
    else:
        ci = result.conf_int(alpha=0.05)
        estimates = pd.DataFrame({"estimate": result.params, "se": result.bse, "ci_low": ci[0], "ci_high": ci[1]})
    estimates.loc["sd(residual)"] = np.nan
    estimates.loc["sd(residual)", "estimate"] = np.sqrt(result.scale)
    estimates.index.name = "parameter"
    return Fit(method, estimates, FitStatus(True), float(result.llf), int(result.nobs), result)


def _cluster_kind(cluster: bool | str) -> str:
    """``""`` for no clustering, else the name of the cluster-robust variance."""
    if cluster is False:
        return ""
    if cluster is True:
        return CLUSTER_TYPES[0]
    if isinstance(cluster, str) and cluster in CLUSTER_TYPES:
        return cluster
    raise ValueError(f"cluster: got {cluster!r}, expected False, True or one of {list(CLUSTER_TYPES)}")


def _cluster_estimates(result, groups: np.ndarray, kind: str) -> pd.DataFrame:
    """Estimates, cluster-robust SEs, df and 95 % t intervals of every coefficient."""
    from lmmsim.inference.cluster_robust import cluster_robust  # scipy: loaded when used

    X = np.asarray(result.model.exog, dtype=float)
    test = cluster_robust(np.asarray(result.model.endog, dtype=float), X, groups, type=kind)
    low, high = test.ci(0.95)
    return pd.DataFrame(
        {"estimate": test.estimate[0], "se": test.se[0], "df": test.df[0], "ci_low": low[0], "ci_high": high[0]},
        index=result.params.index,
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
