"""Fit simulated data with a linear mixed model (statsmodels MixedLM).

Every fit carries a :class:`~lmmsim.fit.status.FitStatus`: whether the optimizer
converged, whether the estimate lies on the boundary of the parameter space (a variance
estimated as zero, a correlation of ±1), and the warnings statsmodels raised, which would
otherwise scroll past unseen.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from lmmsim.design import INTERCEPT
from lmmsim.fit.ols import rank_deficiency
from lmmsim.fit.result import Fit
from lmmsim.fit.status import (
    SINGULAR_TOL,
    FitStatus,
    captured_warnings,
    exclusive,
    ignored_warnings,
    singular_terms,
    warning_messages,
)
from lmmsim.model import ModelSpec, formula_error, prepare

Z95 = NormalDist().inv_cdf(0.975)  # stdlib, not scipy: importing lmmsim stays quick
# A diagonal element of θ (for a random intercept alone: its SD over σ_ε) below this makes
# the fit a boundary (singular) one: lme4's isSingular tolerance, the rule of every fitter.
BOUNDARY_TOL = SINGULAR_TOL
OPTIMIZERS = ("lbfgs", "powell", "nm")
# Largest gap, in deviance units, between statsmodels' -2 log-likelihood at the reported θ
# and the criterion d(θ) it was verified on (see ``_unfaithful``).
FAITHFUL_TOL = 1e-3


def fit_lmm(data: pd.DataFrame, model: ModelSpec, *, reml: bool = True, optimizers=OPTIMIZERS) -> Fit:
    """Fit a linear mixed model with statsmodels MixedLM.

    Optimizers are tried in order until one stops at a verified maximum (see
    ``lmmsim.fit.verify``); if none does, the profiled deviance is searched from several
    starts too. The fit reported is statsmodels' model evaluated at the best point found,
    with a status that says which optimizer won and what went wrong.

    Parameters
    ----------
    data : pandas.DataFrame
        The data, e.g. ``Simulation.data``.
    model : ModelSpec
        Formula, grouping factor, random effects and variance components.
    reml : bool
        REML (default) or maximum likelihood.
    optimizers : sequence of str
        statsmodels ``method`` names to try, in order.

    Returns
    -------
    Fit

    Notes
    -----
    A rank-deficient X (a constant column beside the intercept, a level that dropout
    emptied) does not identify the fixed effects: the fit is ``failed``, with a message
    saying so, and has no estimates.

    Thread-safe: statsmodels' warnings choose the optimizer and the status, so fits in
    different threads of one process take turns (see ``lmmsim.fit.status.exclusive``).
    """
    with exclusive():
        return _fit_lmm(data, model, reml, optimizers)


def _fit_lmm(data: pd.DataFrame, model: ModelSpec, reml: bool, optimizers) -> Fit:
    from lmmsim.fit import verify  # with scipy, imported when something is fitted (quick start-up)
    from lmmsim.inference.deviance import deviance

    data = prepare(data, model)
    method = "REML" if reml else "ML"
    lmm = _mixedlm(data, model)
    deficient = rank_deficiency(lmm.exog, lmm.exog_names)
    if deficient:
        status = FitStatus(False, message=f"failed: {deficient}", failed=True)
        return Fit(method, _empty_estimates(), status, float("nan"), len(data))
    dev = deviance(data, model, reml=reml)
    attempts = []
    for optimizer in optimizers:
        with captured_warnings() as caught:
            try:
                result = lmm.fit(reml=reml, method=optimizer)
                _ = result.llf  # computed lazily: compute it here, so its warnings are caught too
            except (np.linalg.LinAlgError, ValueError) as err:
                attempts.append(verify.Attempt(optimizer, None, (f"{type(err).__name__}: {err}",)))
                continue
        messages = warning_messages(caught)
        attempts.append(verify.attempt(dev, optimizer, result, messages))
        if attempts[-1].verified:
            break
    if not any(a.polished is not None for a in attempts):
        why = attempts[-1].messages[0] if attempts[-1].messages else "the criterion is not finite at the estimate"
        status = FitStatus(False, False, f"failed: {why}", attempts[-1].messages, failed=True)
        return Fit(method, _empty_estimates(), status, float("nan"), len(data))
    settled = verify.settle(lmm, dev, attempts, reml)
    result = settled.result
    unfaithful = _unfaithful(result, dev, settled.theta)
    if unfaithful:
        status = FitStatus(False, False, f"failed: {unfaithful}", settled.messages, failed=True)
        return Fit(method, _empty_estimates(), status, float("nan"), len(data))
    estimates = _lmm_estimates(result, model, np.sqrt(np.diag(dev.vcov(settled.theta))))
    status = _status(settled, dev)
    if status.boundary:
        _at_boundary(estimates, result.fe_params.index, dev, settled.theta)
    return Fit(method, estimates, status, float(result.llf), int(result.nobs), result, dev, settled.theta)


def _unfaithful(result, dev, theta: np.ndarray) -> str:
    """Why statsmodels' results at θ are not those of the criterion ("" if they are).

    statsmodels evaluates a diagonal θ below ``verify.SM_FLOOR`` at the floor, which moves
    its log-likelihood by ~1e-6; where the random-effect covariance is nearly singular in
    two ways (an intercept SD near 0 and a correlation of ±1) it inverts a matrix it
    cannot, and its β and SDs are meaningless. Its log-likelihood then departs from the
    criterion d(θ) by more than ``FAITHFUL_TOL``."""
    gap = abs(-2 * float(result.llf) - dev(theta))
    if gap <= FAITHFUL_TOL:
        return ""
    return (f"statsmodels cannot evaluate its model at the optimum (its -2 log-likelihood is {gap:.3g} "
            "off the criterion there: a nearly singular covariance); fit_lmer fits this model")


def _mixedlm(data: pd.DataFrame, model: ModelSpec):
    """The statsmodels model; a formula that does not fit the data is a one-line ValueError."""
    import patsy  # imported here: statsmodels takes ~1 s to import, and the CLI rarely fits
    import statsmodels.formula.api as smf

    try:
        return smf.mixedlm(
            model.formula,
            data,
            groups=model.groups,
            re_formula=model.re_formula,
            vc_formula=dict(model.vc_formula) or None,
        )
    except patsy.PatsyError as err:
        raise formula_error("model", model.formula, err) from None


def _status(settled, dev) -> FitStatus:
    """Convergence as verified on the profiled deviance; the boundary by lme4's rule on θ
    (statsmodels' own "may be on the boundary" warning uses an absolute threshold, so it
    depends on the unit of the outcome)."""
    singular = singular_terms(dev.terms, settled.theta)
    boundary = bool(singular)
    message = settled.message
    if boundary and settled.converged:
        message = f"boundary (singular fit): {', '.join(singular)}"
        message += f" ({settled.note})" if settled.note else ""
    return FitStatus(settled.converged, boundary, message, settled.messages)


def _at_boundary(estimates: pd.DataFrame, fixed: pd.Index, dev, theta: np.ndarray) -> None:
    """A boundary fit's SDs and correlations at θ itself (in place), without SEs.

    statsmodels cannot evaluate a diagonal θ below ``verify.SM_FLOOR`` (1e-4), so its
    estimates there show an SD of 1e-4 σ_ε or a correlation of ±0.9999 where θ has an
    SD of 0 or a correlation of ±1."""
    from lmmsim.inference.deviance import sd_corr

    sigma = estimates.loc["sd(residual)", "estimate"]
    for name, value in sd_corr(dev.terms, theta, sigma).items():
        estimates.loc[name, "estimate"] = value
    estimates.loc[~estimates.index.isin(fixed), ["se", "ci_low", "ci_high"]] = np.nan


def _lmm_estimates(result, model: ModelSpec, fe_se: np.ndarray) -> pd.DataFrame:
    # The SEs of β are those of every REML package, √diag(σ² (X'V⁻¹X)⁻¹) (from lme4's
    # deviance); statsmodels' bse_fe inverts the joint Hessian of β and the variance
    # parameters, which is inflated where the latter is nearly singular.
    fe = pd.DataFrame({"estimate": result.fe_params, "se": fe_se})
    fe["ci_low"] = fe["estimate"] - Z95 * fe["se"]
    fe["ci_high"] = fe["estimate"] + Z95 * fe["se"]

    # statsmodels orders its variance parameters as: lower triangle of cov_re, then the
    # variance components. Their SEs: see `variance_covariance` (a Monte Carlo check in
    # tests/test_fit.py confirms the calibration).
    try:
        var_var = np.diag(variance_covariance(result))
    except np.linalg.LinAlgError:  # a variance at (next to) 0: no Wald SEs there
        var_var = np.full(len(result.params) - len(result.fe_params), np.nan)
    var_se = np.sqrt(np.where(var_var > 0, var_var, np.nan))  # none where the Hessian is not definite
    terms = _re_terms(result.cov_re.index, model.groups)
    rows = {}
    q = len(terms)
    tril = list(zip(*np.tril_indices(q)))
    cov = result.cov_re.to_numpy()
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    for (i, j), se_var in zip(tril, var_se[: len(tril)]):
        if i == j:
            rows[f"sd({terms[i]}|{model.groups})"] = _sd_row(sd[i], se_var)
        else:
            r = cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
            rows[f"cor({terms[j]},{terms[i]}|{model.groups})"] = (r, np.nan, np.nan, np.nan)
    for name, variance, se_var in zip(result.model.exog_vc.names, result.vcomp, var_se[len(tril):]):
        rows[f"sd({INTERCEPT}|{name})"] = _sd_row(np.sqrt(max(variance, 0.0)), se_var)
    rows["sd(residual)"] = (np.sqrt(result.scale), np.nan, np.nan, np.nan)
    vc = pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "se", "ci_low", "ci_high"])
    out = pd.concat([fe, vc])
    out.index.name = "parameter"
    return out


def variance_covariance(result) -> np.ndarray:
    """Covariance matrix of the estimated variances and covariances θ (lower triangle of
    the random-effects covariance matrix, then the variance components), in the units of
    the data.

    statsmodels estimates ψ = θ / σ²_ε, with σ²_ε profiled out, and its ``cov_params``
    for these parameters is Cov(ψ̂) (the inverse Hessian of the profile likelihood). Then
    θ̂ = ŝ ψ̂ with ŝ = s(ψ̂) + e, where s(ψ) is the residual variance that maximises the
    likelihood at ψ and e, independent of ψ̂, has variance 2 s² / f (f = N − p for REML,
    N for ML). With g = ∂s/∂ψ (by central differences) and A = s I + ψ g', the delta
    method gives

        Cov(θ̂) = A Cov(ψ̂) A' + (2 s² / f) ψ ψ'.

    Scaling Cov(ψ̂) by s² alone ignores that ŝ and ψ̂ are negatively correlated and
    overstates the SEs, by √(1 + 1/(m − 1)) for a balanced random intercept with m
    observations per group and a large ICC.
    """
    model = result.model
    k_fe = len(result.fe_params)
    cov_psi = np.asarray(result.cov_params())[k_fe:, k_fe:]
    s = float(result.scale)
    cov_re = np.asarray(result.params_object.cov_re, dtype=float)
    vcomp = np.asarray(result.params_object.vcomp, dtype=float)
    q = cov_re.shape[0]
    tril = np.tril_indices(q)
    psi = np.concatenate([cov_re[tril], vcomp])

    def scale_at(values: np.ndarray) -> float:
        cov = np.zeros((q, q))
        cov[tril] = values[: len(tril[0])]
        cov = cov + np.tril(cov, -1).T
        vc = values[len(tril[0]):]
        with ignored_warnings():
            fe, _ = model.get_fe_params(cov, vc)
            return float(model.get_scale(fe, cov, vc))

    g = np.empty(len(psi))
    for j in range(len(psi)):
        h = 1e-5 * max(abs(psi[j]), 1e-3)
        step = np.zeros(len(psi))
        step[j] = h
        g[j] = (scale_at(psi + step) - scale_at(psi - step)) / (2 * h)
    f = model.n_totobs - (model.k_fe if model.reml else 0)
    A = s * np.eye(len(psi)) + np.outer(psi, g)
    return A @ cov_psi @ A.T + (2 * s**2 / f) * np.outer(psi, psi)


def _sd_row(sd: float, se_var: float) -> tuple[float, float, float, float]:
    """SD with a delta-method SE and a Wald interval on the log scale (which keeps it
    positive); undefined at zero."""
    if not (sd > 0 and np.isfinite(se_var)):
        return (sd, np.nan, np.nan, np.nan)
    se = se_var / (2 * sd)
    half = Z95 * se / sd
    with np.errstate(over="ignore"):  # an SD near zero: the interval reaches 0 and infinity
        return (sd, se, sd * np.exp(-half), sd * np.exp(half))


def _re_terms(names, groups: str) -> list[str]:
    """statsmodels calls the random intercept after the grouping column; we call it Intercept."""
    return [INTERCEPT if n in (groups, "Group", INTERCEPT) else str(n) for n in names]


def _empty_estimates() -> pd.DataFrame:
    frame = pd.DataFrame(columns=["estimate", "se", "ci_low", "ci_high"], dtype=float)
    frame.index.name = "parameter"
    return frame
