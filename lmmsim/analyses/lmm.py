"""Mixed models by REML, all with the model-based SE √diag(σ̂²(X'V̂⁻¹X)⁻¹) (lme4's): with a
Wald z test (``lmm_wald``), a between-within t test (``lmm_t``) or a Satterthwaite t test
(``lmm_satterthwaite``, models whose random effects the exact fitters take)."""

from __future__ import annotations

import numpy as np

from lmmsim.analyses.base import (
    BatchFits,
    batch_result,
    exact_status,
    fit_status,
    frame,
    is_random_intercept,
    select,
    wald_frame,
)
from lmmsim.fit.exact import fit_block, fit_random_intercept
from lmmsim.fit.exact.block_layout import model_block_reason, model_layout
from lmmsim.fit.result import Fit
from lmmsim.fit.statsmodels import fit_lmm
from lmmsim.inference import between_within_df, cluster_level, denominator_df
from lmmsim.inference.satterthwaite_ri import satterthwaite_ri
from lmmsim.model import prepare
from lmmsim.simulate.batch import design_matrices

LMM_OPTIMIZERS = ("bfgs", "lbfgs", "powell", "nm")
"""Optimizers for statsmodels MixedLM, in the order tried (see the Notes of
:mod:`lmmsim.analyses`)."""


def lmm(data, model, reml=True) -> Fit:
    """:func:`~lmmsim.fit.fit_lmm` with :data:`LMM_OPTIMIZERS`."""
    return fit_lmm(data, model, reml=reml, optimizers=LMM_OPTIMIZERS)


def gls_covariance(result) -> np.ndarray:
    """σ̂²(X'V̂₀⁻¹X)⁻¹ from a statsmodels MixedLM result: the variance components
    treated as known, for any random-effects structure."""
    model = result.model
    cov_re = np.asarray(result.cov_re)
    p = len(result.fe_params)
    A = np.zeros((p, p))
    for j in range(len(model.group_labels)):
        X = model.exog_li[j]
        V = result.scale * np.eye(X.shape[0])
        if model.k_re:
            Z = model.exog_re_li[j]
            V += Z @ cov_re @ Z.T
        for k in range(len(model.exog_vc.names)):
            M = model.exog_vc.mats[k][j]
            V += result.vcomp[k] * (M @ M.T)
        A += X.T @ np.linalg.solve(V, X)
    return np.linalg.inv(A)


def lmm_wald(data, model, coefs):
    """The model-based SE (as lme4) and a Wald z test."""
    fit = lmm(data, model)
    status = fit_status(fit)
    if status.code == "failed":
        return frame(coefs, status.code, status.message)
    est = fit.estimates.reindex(list(coefs))
    return wald_frame(coefs, est["estimate"], est["se"], np.nan, status.code, status.message)


def lmm_wald_batch(fits: BatchFits, coefs):
    """:func:`lmm_wald` of every replication of a batch (exact REML)."""
    idx = select(fits.batch.columns, coefs)
    status, message = exact_status(fits.reml)
    return batch_result(coefs, fits.reml.beta[:, idx], fits.reml.se[:, idx], np.nan, status, message)


def lmm_t(data, model, coefs):
    """Model-based SE and a t test with between-within df."""
    fit = lmm(data, model)
    status = fit_status(fit)
    if status.code == "failed":
        return frame(coefs, status.code, status.message)
    _, X, codes = design_matrices(data, model)
    idx = select(X.columns, coefs)
    se = np.sqrt(np.diag(gls_covariance(fit.result)))[idx]
    df = denominator_df(X.to_numpy(), codes, fit.result.model.exog_re)[idx]
    return wald_frame(coefs, fit.result.fe_params.to_numpy()[idx], se, df, status.code, status.message)


def lmm_t_batch(fits: BatchFits, coefs):
    """:func:`lmm_t` of every replication of a batch (exact REML)."""
    b, fit = fits.batch, fits.reml
    idx = select(b.columns, coefs)
    status, message = exact_status(fit, b.layout)
    if b.layout is None:  # cluster-level columns: shared with cluster_means when it runs too
        between = cluster_level(b.X, b.groups) if fits.between is None else fits.between
        df = between_within_df(between, b.y.shape[1], b.J)
    else:  # the random effects of the top-level groups claim columns of X, as in lmm_t
        df = denominator_df(b.X, b.groups, b.layout.Z[:, : b.layout.terms[0][0]])
    df = np.broadcast_to(df, fit.beta.shape)[:, idx]
    return batch_result(coefs, fit.beta[:, idx], fit.se[:, idx], df, status, message)


def check_satterthwaite(model) -> None:
    """Raise unless the random effects of ``model`` are blocks the exact fitters take: a random
    intercept (closed-form Satterthwaite df) or intercepts, plain slopes and nested intercepts."""
    reason = model_block_reason(model)
    if reason is not None:
        raise ValueError(f"analysis lmm_satterthwaite: the model {model.lme4 or model.formula!r}: {reason}; "
                         "its exact REML fit and Satterthwaite df are for such models only")


def lmm_satterthwaite(data, model, coefs):
    """Model-based SE and a t test with lmerTest's Satterthwaite df (exact REML fit)."""
    check_satterthwaite(model)
    y, X, codes = design_matrices(data, model)
    idx = select(X.columns, coefs)
    block = None
    if is_random_intercept(model):
        fit = fit_random_intercept(y, X.to_numpy(), codes)
        test = satterthwaite_ri(y, X.to_numpy(), codes, fit, np.eye(X.shape[1])[idx])
        estimate, se, df = test.estimate[0], test.se[0], test.df[0]
    else:
        block = model_layout(prepare(data, model), model)
        fit = fit_block(y, X.to_numpy(), block.Z, codes, block.terms, satterthwaite=True)
        estimate, se, df = fit.beta[0, idx], fit.se[0, idx], fit.df[0, idx]
    status, message = exact_status(fit, block)
    return wald_frame(coefs, estimate, se, df, status[0], message[0])


def lmm_satterthwaite_batch(fits: BatchFits, coefs):
    """:func:`lmm_satterthwaite` of every replication of a batch (exact REML)."""
    b, fit = fits.batch, fits.reml
    idx = select(b.columns, coefs)
    if b.layout is not None:
        return batch_result(coefs, fit.beta[:, idx], fit.se[:, idx], fit.df[:, idx], *exact_status(fit, b.layout))
    test = satterthwaite_ri(b.y, b.X, b.groups, fit, np.eye(len(b.columns))[idx])
    return batch_result(coefs, test.estimate, test.se, test.df, *exact_status(fit))
