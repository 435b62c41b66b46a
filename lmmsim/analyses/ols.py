"""Naive OLS (``ols``) and OLS with cluster-robust SEs (``ols_cluster``: CR1 with J − 1 df;
``ols_cr2``: CR2 with Bell–McCaffrey df), per dataset and batched."""

from __future__ import annotations

import numpy as np

from lmmsim.analyses.base import BatchFits, batch_result, select, wald_frame
from lmmsim.fit.ols import fit_ols
from lmmsim.inference.cluster_robust import cluster_robust
from lmmsim.model import prepare
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
    """OLS with cluster-robust SEs (statsmodels' small-sample factor); t test with J − 1 df."""
    fit = fit_ols(data, model, cluster=True)
    J = prepare(data, model)[model.groups].nunique()
    r = _fitted(fit)
    return wald_frame(coefs, r.params[list(coefs)], r.bse[list(coefs)], float(J - 1))


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
