"""Estimates of the variance parameters by REML (``sd_reml``) or ML (``sd_ml``), to compare
their bias; estimates only (no SE, CI or test)."""

from __future__ import annotations

import numpy as np

from lmmsim.analyses.base import BatchFits, BatchResult, exact_status, fit_status, frame, variance_names
from lmmsim.analyses.lmm import lmm
from lmmsim.design import INTERCEPT


def _estimates(data, model, reml: bool):
    names = variance_names(model)
    fit = lmm(data, model, reml=reml)
    status = fit_status(fit)
    if status.code == "failed":
        return frame(names, status.code, status.message)
    return frame(names, status.code, status.message, estimate=fit.estimates["estimate"].reindex(names).to_numpy())


def _batch(fit, batch) -> BatchResult:
    status, message = exact_status(fit, batch.layout)
    if batch.layout is None:
        names = (f"sd({INTERCEPT}|{batch.group_name})", "sd(residual)")
        est = np.column_stack([fit.sigma_u, fit.sigma_e])
    else:  # variance_names' order: the top level's SDs, its correlations, the nested SDs, sd(residual)
        k = batch.layout.terms[0][0]
        names = batch.layout.names
        est = np.column_stack([fit.sd[:, :k], fit.corr, fit.sd[:, k:], fit.sigma_e])
    nan = np.full_like(est, np.nan)
    return BatchResult(names, est, nan, nan, nan, nan, nan, nan, status, message)


def sd_reml(data, model, coefs):
    """REML estimates of the SDs (and correlations) of ``model``."""
    return _estimates(data, model, reml=True)


def sd_ml(data, model, coefs):
    """ML estimates of the SDs (and correlations) of ``model``."""
    return _estimates(data, model, reml=False)


def sd_reml_batch(fits: BatchFits, coefs):
    """:func:`sd_reml` of every replication of a batch (exact REML)."""
    return _batch(fits.reml, fits.batch)


def sd_ml_batch(fits: BatchFits, coefs):
    """:func:`sd_ml` of every replication of a batch (exact ML)."""
    return _batch(fits.ml, fits.batch)


def reports(model, coefs):
    """The variance parameters of ``model`` (``coefs`` are ignored)."""
    return variance_names(model)
