"""Fit simulated data with a linear mixed model (statsmodels MixedLM) or naive OLS.

Every fit carries a :class:`FitStatus`: whether the optimizer converged, whether the
estimate lies on the boundary of the parameter space (a variance estimated as zero, a
correlation of ±1), and the warnings statsmodels raised, which would otherwise scroll
past unseen.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from lmmsim import verify
from lmmsim.design import INTERCEPT
from lmmsim.inference.deviance import deviance
from lmmsim.inference.satterthwaite import satterthwaite
from lmmsim.model import ModelSpec

Z95 = stats.norm.ppf(0.975)
# An SD below this fraction of the residual SD is reported as a boundary (singular) fit.
BOUNDARY_TOL = 1e-3
OPTIMIZERS = ("lbfgs", "powell", "nm")


@dataclass(frozen=True)
class FitStatus:
    """How a fit ended.

    Attributes
    ----------
    converged : bool
        The fit is at a verified local maximum of the criterion (see
        ``lmmsim.verify``): gradient negligible, Hessian of the profiled criterion
        negative definite off the bounds, and no better point found from the other
        optimizers' points and several starts.
    boundary : bool
        A variance component is (numerically) zero or a correlation is ±1: the fit is
        singular and its variance-component inference is unreliable.
    message : str
        One line for people: ``"converged"``; ``"converged (powell; lbfgs fell short by 2.1
        log-likelihood units)"`` when the first optimizer's point was not the maximum;
        ``"boundary (singular fit): ..."``; or what went wrong.
    warnings : tuple of str
        Every distinct warning raised while fitting.
    """

    converged: bool
    boundary: bool = False
    message: str = "converged"
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Converged and not on the boundary."""
        return self.converged and not self.boundary

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Fit:
    """One fitted model.

    Attributes
    ----------
    method : str
        ``"REML"``, ``"ML"``, ``"OLS"`` or ``"OLS (cluster-robust)"``.
    estimates : pandas.DataFrame
        Indexed by parameter name; columns ``estimate``, ``se``, ``ci_low``, ``ci_high``
        (95 %, Wald). Fixed effects use the names of X's columns; variance parameters
        are ``sd(term|factor)``, ``cor(term1,term2|factor)`` and ``sd(residual)``. SE and
        CI are NaN where statsmodels gives no standard error (residual SD,
        correlations) or where the fit is on the boundary.
    status : FitStatus
        Convergence and boundary status.
    loglik : float
        Maximised (restricted, for REML) log-likelihood.
    nobs : int
        Observations used.
    result : object
        The underlying statsmodels results object.
    deviance : object or None
        For mixed models, lme4's profiled deviance of the model and data
        (``lmmsim.inference.deviance``); None for OLS.
    theta : numpy.ndarray or None
        The estimate in lme4's parameterisation θ (relative covariance factor).
    """

    method: str
    estimates: pd.DataFrame
    status: FitStatus
    loglik: float
    nobs: int
    result: Any = field(default=None, repr=False, compare=False)
    deviance: Any = field(default=None, repr=False, compare=False)
    theta: Any = field(default=None, repr=False, compare=False)

    def satterthwaite(self, L: Any = None) -> pd.DataFrame:
        """t tests of the fixed effects, or of contrasts ``L``, with Satterthwaite df.

        See ``lmmsim.inference.satterthwaite.satterthwaite``: columns ``estimate``,
        ``se``, ``df``, ``t``, ``p_value``.
        """
        return satterthwaite(self, L)


def prepare(data: pd.DataFrame, model: ModelSpec) -> pd.DataFrame:
    """Apply the model's level order to categorical columns (reference level first)."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data: got {type(data).__name__}, expected a pandas DataFrame")
    missing = [c for c in (model.outcome, model.groups, *model.vc_formula) if c not in data.columns]
    if missing:
        raise ValueError(f"data: columns {missing} are missing; the data have {list(data.columns)}")
    data = data.copy()
    for column, levels in model.levels.items():
        data[column] = pd.Categorical(data[column], categories=list(levels))
    return data


def fit_lmm(data: pd.DataFrame, model: ModelSpec, *, reml: bool = True, optimizers=OPTIMIZERS) -> Fit:
    """Fit a linear mixed model with statsmodels MixedLM.

    Optimizers are tried in order until one stops at a verified maximum (see
    ``lmmsim.verify``); if none does, the profiled deviance is searched from several
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
    """
    data = prepare(data, model)
    method = "REML" if reml else "ML"
    lmm = smf.mixedlm(
        model.formula,
        data,
        groups=model.groups,
        re_formula=model.re_formula,
        vc_formula=dict(model.vc_formula) or None,
    )
    dev = deviance(data, model, reml=reml)
    attempts = []
    for optimizer in optimizers:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = lmm.fit(reml=reml, method=optimizer)
                _ = result.llf  # computed lazily: compute it here, so its warnings are caught too
            except (np.linalg.LinAlgError, ValueError) as err:
                attempts.append(verify.Attempt(optimizer, None, (f"{type(err).__name__}: {err}",)))
                continue
        messages = tuple(dict.fromkeys(str(w.message).strip() for w in caught))
        attempts.append(verify.attempt(dev, optimizer, result, messages))
        if attempts[-1].verified:
            break
    if not any(a.polished is not None for a in attempts):
        why = attempts[-1].messages[0] if attempts[-1].messages else "the criterion is not finite at the estimate"
        status = FitStatus(False, False, f"failed: {why}", attempts[-1].messages)
        return Fit(method, _empty_estimates(), status, float("nan"), len(data))
    settled = verify.settle(lmm, dev, attempts, reml)
    result = settled.result
    estimates = _lmm_estimates(result, model, np.sqrt(np.diag(dev.vcov(settled.theta))))
    status = _status(settled, estimates)
    if status.boundary:
        variance_rows = ~estimates.index.isin(result.fe_params.index)
        estimates.loc[variance_rows, ["se", "ci_low", "ci_high"]] = np.nan
    return Fit(method, estimates, status, float(result.llf), int(result.nobs), result, dev, settled.theta)


def _status(settled: verify.Settled, estimates: pd.DataFrame) -> FitStatus:
    """Convergence as verified on the profiled deviance; the boundary judged on the estimates
    relative to σ_ε (statsmodels' own "may be on the boundary" warning uses an absolute
    threshold, so it depends on the unit of the outcome)."""
    sd_rows = estimates.index.str.startswith("sd(") & (estimates.index != "sd(residual)")
    sigma = estimates.loc["sd(residual)", "estimate"]
    small = estimates.index[sd_rows & (estimates["estimate"] < BOUNDARY_TOL * sigma)]
    cor_rows = estimates.index.str.startswith("cor(")
    extreme = estimates.index[cor_rows & (estimates["estimate"].abs() > 1 - 1e-6)]
    boundary = bool(len(small) or len(extreme))
    message = settled.message
    if boundary and settled.converged:
        message = f"boundary (singular fit): {', '.join(list(small) + list(extreme))}"
        message += f" ({settled.note})" if settled.note else ""
    return FitStatus(settled.converged, boundary, message, settled.messages)


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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


def fit_ols(data: pd.DataFrame, model: ModelSpec, *, cluster: bool = False) -> Fit:
    """Fit the fixed effects by ordinary least squares, ignoring the grouping.

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    model : ModelSpec
        Its formula gives the fixed effects; the random effects are ignored.
    cluster : bool
        Use cluster-robust (sandwich) standard errors with ``model.groups`` as clusters.

    Returns
    -------
    Fit
        With ``sd(residual)`` as the only variance parameter.
    """
    data = prepare(data, model)
    ols = smf.ols(model.formula, data)
    if cluster:
        codes = pd.factorize(data[model.groups])[0]
        result = ols.fit(cov_type="cluster", cov_kwds={"groups": codes})
    else:
        result = ols.fit()
    ci = result.conf_int(alpha=0.05)
    estimates = pd.DataFrame(
        {"estimate": result.params, "se": result.bse, "ci_low": ci[0], "ci_high": ci[1]}
    )
    estimates.loc["sd(residual)"] = (np.sqrt(result.scale), np.nan, np.nan, np.nan)
    estimates.index.name = "parameter"
    return Fit(
        "OLS (cluster-robust)" if cluster else "OLS",
        estimates,
        FitStatus(True),
        float(result.llf),
        int(result.nobs),
        result,
    )


def _empty_estimates() -> pd.DataFrame:
    frame = pd.DataFrame(columns=["estimate", "se", "ci_low", "ci_high"], dtype=float)
    frame.index.name = "parameter"
    return frame
