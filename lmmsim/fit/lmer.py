"""Fit a linear mixed model written as lme4 writes it, crossed factors and correlated
slopes included: ``fit_lmer(data, "rt ~ cond + (1 + cond | subject) + (1 | item)")``.

statsmodels' MixedLM gives correlated random slopes only to its one grouping factor,
whose levels must split the data into independent clusters, so it cannot fit correlated
by-subject slopes when items are crossed with subjects. This fitter does what lme4 does
(Bates et al. 2015): it minimises the profiled REML criterion (or ML deviance) d(θ) of
:mod:`lmmsim.inference.deviance` over the relative covariance factor θ, here with
L-BFGS-B on d's analytic gradient from lme4's start and a small one, with Powell's method
where that stalls, and Newton polishing on d's analytic Hessian
(``lmmsim.fit.verify.minimise``). The status is verified as for
:func:`~lmmsim.fit.fit_lmm`: converged means a verified local minimum of d (negligible
Newton decrement, positive definite Hessian off the bounds, no descent off a bound), and
the fit is on the boundary (singular) by lme4's ``isSingular`` rule: a diagonal element of
θ below 1e-4 (``lmmsim.fit.status.singular_mask``). Dense linear algebra: for book-sized
data (a few hundred random effects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lmmsim.fit.ols import rank_deficiency
from lmmsim.fit.result import Fit
from lmmsim.fit.statsmodels import Z95
from lmmsim.fit.status import FitStatus, singular_terms
from lmmsim.model import ModelSpec, prepare

if TYPE_CHECKING:  # scipy, via these, is imported when something is fitted (quick start-up)
    from lmmsim.fit.bars import Matrices
    from lmmsim.inference.deviance import Deviance

COLUMNS = ["estimate", "se", "ci_low", "ci_high"]
# A diagonal element of θ below this (an SD or a conditional SD under 1 % of σ_ε) is tried
# on its bound, 0, when L-BFGS-B's point is not a verified minimum.
SNAP = 1e-2


@dataclass(frozen=True)
class LmerResult:
    """What :attr:`Fit.result` holds for :func:`fit_lmer`: the pieces the properties of
    :class:`~lmmsim.fit.Fit` read, named as statsmodels names them."""

    fe_params: pd.Series
    fittedvalues: pd.Series
    resid: pd.Series
    nobs: int
    llf: float
    modes: dict[str, pd.DataFrame] = field(repr=False)  # conditional modes b̂, per term

    @property
    def random_effects(self) -> dict[str, pd.Series]:
        """The conditional modes b̂, one Series per (term, level), keyed ``factor=level``."""
        return {f"{name}={level}": row for name, frame in self.modes.items() for level, row in frame.iterrows()}


def fit_lmer(data: pd.DataFrame, model: str | ModelSpec, *, reml: bool = True) -> Fit:
    """Fit an lme4-style model by minimising lme4's profiled deviance.

    Parameters
    ----------
    data : pandas.DataFrame
        The data, e.g. ``Simulation.data``.
    model : str or ModelSpec
        An lme4 formula, e.g. ``"rt ~ cond + (1 + cond | subject) + (1 | item)"``, or a
        ModelSpec whose ``lme4`` field holds one (its ``levels`` are applied first).
    reml : bool
        REML (default) or maximum likelihood.

    Returns
    -------
    Fit
        Estimates named as :func:`~lmmsim.fit.fit_lmm` names them (``sd(cond|subject)``,
        ``cor(Intercept,cond|subject)``, ``sd(residual)``); SEs of β are
        √diag(σ̂²(X'V̂⁻¹X)⁻¹), those of the variance parameters are not computed (NaN).
        ``Fit.satterthwaite()`` gives t tests with Satterthwaite df.
    """
    if isinstance(model, ModelSpec):
        if not model.lme4:
            raise ValueError("model: got a ModelSpec without an lme4 formula; set its lme4 field")
        data = prepare(data, model) if model.levels else data
        model = model.lme4
    if not isinstance(model, str):
        raise ValueError(f"model: got {type(model).__name__}, expected an lme4 formula string or a ModelSpec")
    from lmmsim.fit.bars import matrices

    mats = matrices(data, model)
    method = "REML" if reml else "ML"
    deficient = rank_deficiency(mats.X.to_numpy(), mats.X.columns)
    if deficient:
        empty = pd.DataFrame(columns=COLUMNS, dtype=float).rename_axis("parameter")
        return Fit(method, empty, FitStatus(False, message=f"failed: {deficient}", failed=True), np.nan, len(mats.y))
    dev = mats.deviance(reml)
    theta, verdict = _minimum(dev)
    estimates = _estimates(dev, theta)
    status = _status(verdict, dev, theta)
    loglik = -dev(theta) / 2
    return Fit(method, estimates, status, float(loglik), len(mats.y), _result(mats, dev, theta, loglik), dev, theta)


def _minimum(dev: Deviance):
    """The minimum of d from lme4's start, and the verdict on it.

    L-BFGS-B often stops on or just inside a bound, where d is flat (it is even in each
    diagonal element of T, so its gradient vanishes at 0): then the search restarts twice,
    with the small diagonal elements on the bound and moved inwards, and keeps the lower
    verified point. Where neither is verified, the fuller search of
    ``lmmsim.fit.verify.minimise`` (two starts, Powell's method) takes over.
    """
    from lmmsim.fit import verify  # scipy: imported when something is fitted

    start = verify.default_start(dev)
    theta, verdict = _descend(dev, start)
    small = (dev.lower == 0) & (theta < SNAP)
    if verdict.ok or not small.any():
        return theta, verdict
    restarts = [_descend(dev, np.where(small, value, theta)) for value in (0.0, 0.1)]
    verified = [r for r in restarts if r[1].ok]
    if verified:
        return min(verified, key=lambda r: r[1].deviance)
    theta = verify.minimise(dev, [start, 0.1 * start])
    return theta, verify.check(dev, theta)


def _descend(dev: Deviance, start: np.ndarray):
    """Bounded L-BFGS-B from ``start``, one Newton step, and the verdict on the point."""
    from lmmsim.fit import verify

    # The Newton step: L-BFGS-B stops where d is flat to ~1e-8, which can leave a weakly
    # determined correlation off in its fourth digit.
    theta = verify.newton_polish(dev, verify.lbfgsb(dev, start), steps=1)
    return theta, verify.check(dev, theta)


def _status(verdict, dev: Deviance, theta: np.ndarray) -> FitStatus:
    if not verdict.ok:
        return FitStatus(False, message=f"not converged: {verdict.reason}")
    singular = singular_terms(dev.terms, theta)
    if singular:
        return FitStatus(True, True, f"boundary (singular fit): {', '.join(singular)}")
    return FitStatus(True)


def _estimates(dev: Deviance, theta: np.ndarray) -> pd.DataFrame:
    """β with Wald SEs and 95 % intervals; SDs and correlations of each term; σ_ε."""
    from lmmsim.inference.deviance import sd_corr

    beta = dev.solve(theta)["beta"]
    se = np.sqrt(np.diag(dev.vcov(theta)))
    rows = {name: (b, s, b - Z95 * s, b + Z95 * s) for name, b, s in zip(dev.fixed_names, beta, se)}
    sigma = dev.sigma(theta)
    rows |= {name: (value, np.nan, np.nan, np.nan) for name, value in sd_corr(dev.terms, theta, sigma).items()}
    rows["sd(residual)"] = (sigma, np.nan, np.nan, np.nan)
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS).rename_axis("parameter")


def _result(mats: Matrices, dev: Deviance, theta: np.ndarray, loglik: float) -> LmerResult:
    """Fixed effects, conditional modes b̂ = Λû with (Λ'Z'ZΛ + I)û = Λ'Z'(y − Xβ̂), fitted values."""
    beta = dev.solve(theta)["beta"]
    lam = dev.relative_factor(theta)
    M = lam.T @ dev.ZtZ @ lam + np.eye(lam.shape[0])
    b = lam @ np.linalg.solve(M, lam.T @ (dev.Zty - dev.ZtX @ beta))
    fitted = mats.X.to_numpy() @ beta + mats.Z @ b
    modes = {}
    for term, (first, levels, k), labels in zip(mats.terms, mats.blocks, mats.levels):
        block = b[first:first + levels * k].reshape(levels, k)
        modes[f"{term.name}:{'+'.join(term.columns)}"] = pd.DataFrame(
            block, index=pd.Index(labels, name=term.name), columns=list(term.columns))
    index = mats.X.index
    return LmerResult(pd.Series(beta, index=list(dev.fixed_names)), pd.Series(fitted, index=index),
                      pd.Series(mats.y - fitted, index=index), len(mats.y), float(loglik), modes)
