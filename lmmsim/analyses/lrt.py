"""Likelihood-ratio tests: of each coefficient (``lrt``, ML fits) and of σ_u = 0
(``lrt_vc``, REML, against the 50:50 mixture of χ²₀ and χ²₁)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from lmmsim.analyses.base import (
    BatchFits,
    BatchResult,
    batch_result,
    exact_status,
    fit_status,
    frame,
    is_random_intercept,
    join,
    select,
)
from lmmsim.analyses.lmm import lmm
from lmmsim.design import INTERCEPT
from lmmsim.fit.exact import fit_random_intercept
from lmmsim.fit.status import worst
from lmmsim.inference import t_or_z
from lmmsim.model import ModelSpec, prepare
from lmmsim.schema import STATUSES
from lmmsim.simulate.batch import design_matrices


def lrt(data, model, coefs):
    """ML fits with and without each coefficient's column of X; LR referred to χ²₁."""
    _, X, _ = design_matrices(data, model)
    idx = select(X.columns, coefs)
    names = [f"_x{k}" for k in range(X.shape[1])]
    data = prepare(data, model)
    data[names] = X.to_numpy()

    def fit(columns):
        spec = ModelSpec(f"{model.outcome} ~ 0 + {' + '.join(columns)}", model.groups, model.re_formula,
                         model.vc_formula, levels=model.levels)
        return lmm(data, spec, reml=False)

    full = fit(names)
    status = fit_status(full)
    if status.code == "failed":
        return frame(coefs, status.code, status.message)
    est = full.estimates.reindex([names[i] for i in idx])
    rows = []
    for k, i in enumerate(idx):
        reduced_fit = fit([n for j, n in enumerate(names) if j != i])
        reduced = fit_status(reduced_fit)
        lr = max(2.0 * (full.loglik - reduced_fit.loglik), 0.0) if reduced.code != "failed" else np.nan
        _, _, low, high = t_or_z(est["estimate"].iloc[k], est["se"].iloc[k], np.nan)
        message = status.message if reduced.code == "ok" else join(status.message, f"reduced fit: {reduced.message}")
        rows.append(frame([coefs[k]], worst(status.code, reduced.code), message,
                          estimate=est["estimate"].iloc[k], se=est["se"].iloc[k], ci_low=low, ci_high=high,
                          statistic=lr, df=1.0, p_value=stats.chi2.sf(lr, 1)))
    return pd.concat(rows, ignore_index=True) if rows else frame([])


def lrt_batch(fits: BatchFits, coefs):
    """:func:`lrt` of every replication of a batch (exact ML)."""
    b, full = fits.batch, fits.ml
    idx = select(b.columns, coefs)
    status, message = exact_status(full)
    status, message = status.copy(), message.copy()
    lr = np.empty((b.R, len(idx)))
    for k, i in enumerate(idx):
        reduced = fit_random_intercept(b.y, np.delete(b.X, i, axis=-1), b.groups, reml=False)
        lr[:, k] = np.maximum(2.0 * (full.loglik_ml - reduced.loglik_ml), 0.0)
        s, m = exact_status(reduced)
        worse = np.array([STATUSES.index(x) for x in s]) > np.array([STATUSES.index(x) for x in status])
        status = np.where(worse, s, status)
        message = np.where(s != "ok", [join(a, f"reduced fit: {c}") for a, c in zip(message, m)], message)
    est, se = full.beta[:, idx], full.se[:, idx]
    _, _, low, high = t_or_z(est, se, np.nan)
    return batch_result(coefs, est, se, 1.0, status.astype(object), message.astype(object), statistic=lr,
                        p_value=stats.chi2.sf(lr, 1), ci=(low, high))


def check_random_intercept(model: ModelSpec) -> None:
    """Raise unless ``model`` is a random-intercept model (what ``lrt_vc`` tests)."""
    if not is_random_intercept(model):
        raise ValueError(
            f"analysis lrt_vc: the model {model.lme4 or model.formula!r} is not a random-intercept model "
            "(re_formula '1', no variance components); the σ_u = 0 test is implemented only for those"
        )


def lrt_vc_names(model, coefs):
    """``lrt_vc`` reports the SD of the random intercept."""
    return [f"sd({INTERCEPT}|{model.groups})"]


def ols_reml_loglik(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """REML log-likelihood of the model without random effects (σ_u = 0), with the
    constants of statsmodels and :mod:`lmmsim.fit.exact`; batched over the leading axes."""
    n, p = X.shape[-2:]
    XtX = np.swapaxes(X, -1, -2) @ X
    beta = np.linalg.solve(XtX, np.swapaxes(X, -1, -2) @ y[..., None])[..., 0]
    rss = ((y - (X @ beta[..., None])[..., 0]) ** 2).sum(-1)
    sigma2 = rss / (n - p)
    return -0.5 * ((n - p) * (np.log(2 * np.pi * sigma2) + 1.0) + np.linalg.slogdet(XtX)[1])


def mixture_p(lr):
    """p-value of LR against the 50:50 mixture of χ²₀ and χ²₁: ½ P(χ²₁ ≥ LR), 1 at LR = 0."""
    lr = np.asarray(lr, dtype=float)
    return np.where(lr > 0, 0.5 * stats.chi2.sf(np.maximum(lr, 0), 1), 1.0)


def lrt_vc(data, model, coefs):
    """REML likelihood-ratio test of σ_u = 0."""
    check_random_intercept(model)
    name = f"sd({INTERCEPT}|{model.groups})"
    fit = lmm(data, model)
    status = fit_status(fit)
    if status.code == "failed":
        return frame([name], status.code, status.message)
    y, X, _ = design_matrices(data, model)
    lr = max(2.0 * (fit.loglik - float(ols_reml_loglik(y, X.to_numpy()))), 0.0)
    return frame([name], status.code, status.message, estimate=fit.estimates.loc[name, "estimate"], statistic=lr,
                 df=1.0, p_value=float(mixture_p(lr)))


def lrt_vc_batch(fits: BatchFits, coefs):
    """:func:`lrt_vc` of every replication of a batch (exact REML)."""
    b, fit = fits.batch, fits.reml
    status, message = exact_status(fit)
    X = b.X if b.X.ndim == 3 else np.broadcast_to(b.X, (b.R, *b.X.shape))
    lr = np.maximum(2.0 * (fit.loglik_reml - ols_reml_loglik(b.y, X)), 0.0)[:, None]
    nan = np.full_like(lr, np.nan)
    return BatchResult((f"sd({INTERCEPT}|{b.group_name})",), fit.sigma_u[:, None], nan, nan, nan, lr, np.ones_like(lr),
                       mixture_p(lr), status, message)
