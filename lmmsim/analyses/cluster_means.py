"""OLS of the J cluster means on the cluster-level columns of X (``cluster_means``)."""

from __future__ import annotations

import numpy as np

from lmmsim.analyses.base import BatchFits, batch_result, wald_frame
from lmmsim.fit.ols import fit_ols_arrays, rank_deficiency
from lmmsim.inference import cluster_level
from lmmsim.simulate.batch import design_matrices


def cluster_means(data, model, coefs):
    """t test with J − p_b df; reports only cluster-level coefficients."""
    y, X, codes = design_matrices(data, model)
    between = cluster_level(X.to_numpy(), codes)
    J = int(codes.max()) + 1
    keep = [c for c in coefs if between[list(X.columns).index(c)]]
    first = np.unique(codes, return_index=True)[1]
    Xb = X.loc[:, between].to_numpy()[first]
    deficient = rank_deficiency(Xb, X.columns[between])
    if deficient:
        raise ValueError(f"cluster level: {deficient}")
    ybar = np.bincount(codes, weights=y) / np.bincount(codes)
    beta, *_ = np.linalg.lstsq(Xb, ybar, rcond=None)
    df = J - Xb.shape[1]
    s2 = ((ybar - Xb @ beta) ** 2).sum() / df
    se = np.sqrt(s2 * np.diag(np.linalg.inv(Xb.T @ Xb)))
    names = list(X.columns[between])
    idx = [names.index(c) for c in keep]
    return wald_frame(keep, beta[idx], se[idx], float(df))


def cluster_means_batch(fits: BatchFits, coefs):
    """:func:`cluster_means` of every replication of a batch."""
    b = fits.batch
    between = fits.between
    if between.ndim == 2:
        if not (between == between[0]).all():
            raise ValueError("the cluster-level columns of X differ between replications")
        between = between[0]
    keep = [c for c in coefs if between[list(b.columns).index(c)]]
    first = np.unique(b.groups, return_index=True)[1]
    Xb = b.X[..., first, :][..., between]  # (J, p_b) or (R, J, p_b)
    sizes = np.bincount(b.groups)
    onehot = np.zeros((len(b.groups), b.J))
    onehot[np.arange(len(b.groups)), b.groups] = 1.0
    ybar = b.y @ onehot / sizes
    columns = list(np.asarray(b.columns)[between])
    beta, resid, inv = fit_ols_arrays(ybar, Xb)
    df = b.J - Xb.shape[-1]
    s2 = (resid**2).sum(1) / df
    se = np.sqrt(s2[:, None] * np.diagonal(inv, axis1=-2, axis2=-1))
    idx = [columns.index(c) for c in keep]
    return batch_result(keep, beta[:, idx], se[:, idx], float(df))
