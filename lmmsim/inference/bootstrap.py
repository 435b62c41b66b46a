"""Parametric bootstrap percentile intervals for the fixed effects and the SDs of an LMM.

The bootstrap holds the design fixed (X, Z and the grouping of the data) and redraws
the outcome from the fitted model, ``y* = Xβ̂ + Zu* + ε*`` with ``u*`` and ``ε*`` normal
with the fitted variances, as lme4's ``bootMer`` does; it refits every ``y*`` and takes
the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of each estimate. Unlike a Wald
interval on the log scale, the interval of an SD reaches 0 when refits often end on
the boundary. Intervals are reproducible: the same ``seed`` gives the same interval.

Random-intercept models are refitted all at once with the exact batched fitter
(:func:`lmmsim.fit.exact.fit_random_intercept`), so thousands of replicates are cheap.
Other models are refitted one by one with statsmodels (:func:`lmmsim.fit.fit_lmm`),
one full fit per replicate: keep ``B`` modest.

The lmmsim simulator (:func:`lmmsim.simulate.simulate`) draws covariates anew from a
:class:`~lmmsim.design.Design`, which is the right model for a study but not for a
bootstrap of one dataset, whose covariates are fixed; hence the draws here.

Limits: percentile intervals of a parametric bootstrap are only as good as the
fitted model (normal effects, the variance structure as specified), and their
coverage for an SD near 0 or with few groups is approximate; refits that fail are
left out and counted.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lmmsim.validate import check_count

__all__ = ["BootstrapIntervals", "bootstrap_random_intercept", "parametric_bootstrap"]

METHOD = "parametric bootstrap, percentile"


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals from a parametric bootstrap.

    Attributes
    ----------
    table : pandas.DataFrame
        Indexed by parameter (fixed effects by column name of X, then ``sd(...)``);
        columns ``estimate`` (of the original fit), ``ci_low``, ``ci_high`` and
        ``method``.
    replicates : pandas.DataFrame
        One row per bootstrap sample, one column per parameter; NaN where the refit
        failed or did not converge.
    level : float
        Confidence level.
    n_failed : int
        Refits left out (failed or not converged).
    """

    table: pd.DataFrame
    replicates: pd.DataFrame
    level: float
    n_failed: int


def bootstrap_random_intercept(y, X, groups, *, B: int = 1000, seed, level: float = 0.95, reml: bool = True,
                               names=None, group_name: str = "group") -> BootstrapIntervals:
    """Parametric bootstrap of a random-intercept model, refitted with the exact batched fitter.

    Parameters
    ----------
    y : array_like, shape (n,)
        Outcome.
    X : array_like, shape (n, p)
        Fixed-effects design.
    groups : array_like, shape (n,)
        Group labels.
    B : int
        Bootstrap samples (at least 10).
    seed : int or numpy.random.SeedSequence
        The only source of randomness.
    level : float
        Confidence level, in (0, 1).
    reml : bool
        REML (default) or ML, for the fit and every refit.
    names : sequence of str, optional
        Names of the columns of X; default ``x0, x1, ...``.
    group_name : str
        Name of the grouping factor, for ``sd(Intercept|<group_name>)``.

    Returns
    -------
    BootstrapIntervals
        Parameters: the columns of X, ``sd(Intercept|<group_name>)``, ``sd(residual)``.
    """
    from lmmsim.fit.exact import fit_random_intercept

    B, rng, level = _check(B, seed, level)
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y: got shape {y.shape}, expected (n,): one dataset")
    fit = fit_random_intercept(y, X, groups, reml=reml)
    X = np.asarray(X, dtype=float)
    names = [f"x{k}" for k in range(X.shape[1])] if names is None else [str(n) for n in names]
    if len(names) != X.shape[1]:
        raise ValueError(f"names: got {len(names)} names for {X.shape[1]} columns of X")
    codes = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(len(y))
    u = rng.standard_normal((B, codes.max() + 1))
    eps = rng.standard_normal((B, len(y)))
    y_star = X @ fit.beta[0] + fit.sigma_u[0] * u[:, codes] + fit.sigma_e[0] * eps
    refit = fit_random_intercept(y_star, X, groups, reml=reml)
    columns = [*names, f"sd(Intercept|{group_name})", "sd(residual)"]
    values = np.column_stack([refit.beta, refit.sigma_u, refit.sigma_e])
    values[~refit.converged] = np.nan
    estimate = np.r_[fit.beta[0], fit.sigma_u[0], fit.sigma_e[0]]
    return _intervals(columns, estimate, values, level)


def parametric_bootstrap(data: pd.DataFrame, model, *, B: int = 1000, seed, level: float = 0.95,
                         reml: bool = True) -> BootstrapIntervals:
    """Parametric bootstrap intervals for ``model`` fitted to ``data``.

    Random-intercept models use :func:`bootstrap_random_intercept` (fast); other
    models are fitted and refitted with :func:`lmmsim.fit.fit_lmm` (slow: keep ``B``
    modest), and the intervals cover every parameter ``fit_lmm`` reports (fixed
    effects, ``sd(...)``, ``cor(...)``, ``sd(residual)``).

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    model : ModelSpec
        The model.
    B, seed, level, reml
        As in :func:`bootstrap_random_intercept`.

    Returns
    -------
    BootstrapIntervals
    """
    from lmmsim.analyses import design_matrices, is_random_intercept

    if is_random_intercept(model):
        y, X, codes = design_matrices(data, model)
        return bootstrap_random_intercept(y, X.to_numpy(), codes, B=B, seed=seed, level=level, reml=reml,
                                          names=X.columns, group_name=model.groups)
    return _bootstrap_statsmodels(data, model, B, seed, level, reml)


def _bootstrap_statsmodels(data, model, B, seed, level, reml) -> BootstrapIntervals:
    """Draw from a statsmodels MixedLM fit and refit each draw with ``fit_lmm``."""
    from lmmsim.analyses import LMM_OPTIMIZERS
    from lmmsim.fit import fit_lmm
    from lmmsim.model import prepare

    B, rng, level = _check(B, seed, level)
    fit = fit_lmm(data, model, reml=reml, optimizers=LMM_OPTIMIZERS)
    if fit.result is None or not np.isfinite(fit.loglik):
        raise ValueError(f"data: the model cannot be fitted to these data ({fit.status.message})")
    frame = prepare(data, model)
    columns = list(fit.estimates.index)
    values = np.full((B, len(columns)), np.nan)
    for b in range(B):
        frame[model.outcome] = _draw(fit.result, rng)
        refit = fit_lmm(frame, model, reml=reml, optimizers=LMM_OPTIMIZERS)
        if refit.status.converged:
            values[b] = refit.estimates["estimate"].reindex(columns).to_numpy()
    return _intervals(columns, fit.estimates["estimate"].to_numpy(), values, level)


def _draw(result, rng: np.random.Generator) -> np.ndarray:
    """One outcome vector from a statsmodels MixedLM fit, its design held fixed."""
    m = result.model
    y = m.exog @ np.asarray(result.fe_params) + np.sqrt(result.scale) * rng.standard_normal(m.nobs)
    cov_re = np.asarray(result.cov_re, dtype=float)
    root = _psd_root(cov_re) if cov_re.size else None
    for j, label in enumerate(m.group_labels):
        rows = m.row_indices[label]
        if root is not None:
            y[rows] += m.exog_re_li[j] @ (root @ rng.standard_normal(len(root)))
        for k, variance in enumerate(np.asarray(result.vcomp, dtype=float)):
            mat = m.exog_vc.mats[k][j]
            y[rows] += mat @ (np.sqrt(max(variance, 0.0)) * rng.standard_normal(mat.shape[1]))
    return y


def _psd_root(cov: np.ndarray) -> np.ndarray:
    """A square root of a covariance matrix that may be singular (a correlation of ±1)."""
    values, vectors = np.linalg.eigh(cov)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def _intervals(columns, estimate, values, level) -> BootstrapIntervals:
    ok = np.isfinite(values).all(axis=1)
    if ok.sum() < 2:
        raise ValueError(f"B: only {ok.sum()} of {len(values)} refits converged; no interval can be formed")
    low, high = np.quantile(values[ok], [(1 - level) / 2, (1 + level) / 2], axis=0)
    table = pd.DataFrame({"estimate": estimate, "ci_low": low, "ci_high": high, "method": METHOD},
                         index=pd.Index(columns, name="parameter"))
    replicates = pd.DataFrame(values, columns=columns)
    return BootstrapIntervals(table, replicates, level, int((~ok).sum()))


def _check(B, seed, level) -> tuple[int, np.random.Generator, float]:
    B = check_count("B", B, minimum=10)
    if isinstance(seed, np.random.SeedSequence):
        sequence = seed
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        sequence = np.random.SeedSequence(int(seed))
    else:
        raise ValueError(f"seed: got {seed!r}, expected a non-negative integer or a numpy SeedSequence")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level: got {level!r}, expected a confidence level in (0, 1)")
    return B, np.random.default_rng(sequence), float(level)
