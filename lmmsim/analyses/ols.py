"""Naive OLS (``ols``) and OLS with cluster-robust SEs (``ols_cluster``: CR1 with J − 1 df,
the common default of Stata and statsmodels, kept to show that it is liberal with few clusters;
``ols_cr2``: CR2 with Bell–McCaffrey df, the small-sample choice), per dataset and batched."""

from __future__ import annotations

import numpy as np

from lmmsim.analyses.base import BatchFits, batch_result, select, wald_frame
from lmmsim.fit.ols import fit_ols
from lmmsim.inference.cluster_robust import cluster_robust
from lmmsim.simulate.batch import design_matrices


def _diag(m):
    return np.diagonal(m, axis1=-2, axis2=-1)


def _fitted(fit):
    """The statsmodels result of an OLS fit; a failed fit (rank-deficient X) raises, saying why."""
    if fit.status.failed:
        raise ValueError(fit.status.message.removeprefix("failed: "))
    return fit.result


def ols(data, model, coefs):
    """Naive OLS: ignores the grouping; t test with N − p df."""
    r = _fitted(fit_ols(data, model))
    return wald_frame(coefs, r.params[list(coefs)], r.bse[list(coefs)], float(r.df_resid))


def ols_batch(fits: BatchFits, coefs):
    """:func:`ols` of every replication of a batch."""
    b = fits.batch
    idx = select(b.columns, coefs)
    beta, resid, inv = fits.ols
    n, p = b.y.shape[1], len(b.columns)
    s2 = (resid**2).sum(1) / (n - p)
    se = np.sqrt(s2[:, None] * _diag(inv))
    return batch_result(coefs, beta[:, idx], se[:, idx], float(n - p))


def ols_cluster(data, model, coefs):
    """OLS with CR1 cluster-robust SEs: the sandwich times Stata's and statsmodels' factor
    ``J/(J − 1) · (N − 1)/(N − p)``, t test with J − 1 df. Liberal with 10 or so clusters of
    unequal size; :func:`ols_cr2` is the small-sample correction."""
    fit = fit_ols(data, model, cluster="CR1")
    _fitted(fit)  # raises for a failed fit
    r = fit.estimates.loc[list(coefs)]
    return wald_frame(coefs, r["estimate"].to_numpy(), r["se"].to_numpy(), r["df"].to_numpy())


def ols_cluster_batch(fits: BatchFits, coefs):
    """:func:`ols_cluster` of every replication of a batch."""
    b = fits.batch
    idx = select(b.columns, coefs)
    beta, resid, inv = fits.ols
    n, p, J = b.y.shape[1], len(b.columns), b.J
    onehot = np.zeros((n, J))
    onehot[np.arange(n), b.groups] = 1.0
    X = np.broadcast_to(b.X, (b.R, n, p))
    scores = np.swapaxes(X * resid[..., None], 1, 2) @ onehot  # (R, p, J)
    meat = scores @ np.swapaxes(scores, 1, 2)
    cov = inv @ meat @ inv * (J / (J - 1) * (n - 1) / (n - p))
    return batch_result(coefs, beta[:, idx], np.sqrt(_diag(cov))[:, idx], float(J - 1))


def ols_cr2(data, model, coefs):
    """OLS with CR2 (Bell–McCaffrey) SEs; t test with their Satterthwaite df."""
    y, X, codes = design_matrices(data, model)
    idx = select(X.columns, coefs)
    test = cluster_robust(y, X.to_numpy(), codes, contrasts=np.eye(X.shape[1])[idx])
    return wald_frame(coefs, test.estimate[0], test.se[0], test.df[0])


def ols_cr2_batch(fits: BatchFits, coefs):
    """:func:`ols_cr2` of every replication of a batch."""
    b = fits.batch
    idx = select(b.columns, coefs)
    test = cluster_robust(b.y, b.X, b.groups, contrasts=np.eye(len(b.columns))[idx])
    return batch_result(coefs, test.estimate, test.se, test.df)
