"""Fit simulated data with a linear mixed model (statsmodels MixedLM).

Every fit carries a :class:`~lmmsim.fit.status.FitStatus`: whether the optimizer
converged, whether the estimate lies on the boundary of the parameter space (a variance
estimated as zero, a correlation of ±1), and the warnings statsmodels raised, which would
otherwise scroll past unseen.
"""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np
import pandas as pd

from lmmsim.design import INTERCEPT
from lmmsim.fit.result import Fit
from lmmsim.fit.status import FitStatus, captured_warnings, warning_messages, warns_convergence, warns_hessian
from lmmsim.model import ModelSpec, formula_error, prepare

Z95 = NormalDist().inv_cdf(0.975)  # stdlib, not scipy: importing lmmsim stays quick
# An SD below this fraction of the residual SD is reported as a boundary (singular) fit.
BOUNDARY_TOL = 1e-3
OPTIMIZERS = ("lbfgs", "powell", "nm")


def fit_lmm(data: pd.DataFrame, model: ModelSpec, *, reml: bool = True, optimizers=OPTIMIZERS) -> Fit:
    """Fit a linear mixed model with statsmodels MixedLM.

    Optimizers are tried in order until one converges, without warnings, at a verified
    maximum (see :class:`FitStatus`); if none does, the attempt with the highest
    log-likelihood among those that converged (or else among all) is returned, with a
    status that says what went wrong.

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
    lmm = _mixedlm(data, model)
    attempts = []
    for optimizer in optimizers:
        with captured_warnings() as caught:
            try:
                result = lmm.fit(reml=reml, method=optimizer)
                _ = result.llf  # computed lazily: compute it here, so its warnings are caught too
            except (np.linalg.LinAlgError, ValueError) as err:
                attempts.append((None, optimizer, (f"{type(err).__name__}: {err}",)))
                continue
        messages = warning_messages(caught)
        attempts.append((result, optimizer, messages))
        if _converged(attempts[-1]) and _at_maximum(result, messages):
            break
    fitted = [a for a in attempts if a[0] is not None]
    if not fitted:
        status = FitStatus(False, False, f"failed: {attempts[-1][2][0]}", attempts[-1][2], failed=True)
        return Fit(method, _empty_estimates(), status, float("nan"), len(data))
    # No optimizer stopped at a verified interior maximum (e.g. on the boundary, where the
    # Hessian is singular): take the highest likelihood among the usable attempts.
    result, optimizer, messages = max(
        fitted, key=lambda a: (_converged(a) and not _degenerate(a[0]), _converged(a), a[0].llf)
    )
    estimates = _lmm_estimates(result, model)
    status = _status(result, optimizer, messages, estimates)
    if status.boundary:
        variance_rows = ~estimates.index.isin(result.fe_params.index)
        estimates.loc[variance_rows, ["se", "ci_low", "ci_high"]] = np.nan
    return Fit(method, estimates, status, float(result.llf), int(result.nobs), result)


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


def _converged(attempt) -> bool:
    result, _, messages = attempt
    return bool(result.converged) and not warns_convergence(messages)


def _hessian_ok(messages: tuple[str, ...]) -> bool:
    """The point is a strict local maximum, as far as statsmodels' warnings tell."""
    return not warns_hessian(messages)


# A converged fit is a stationary point: the Newton decrement ½ g'(−H)⁻¹g, by how much a
# Newton step from the estimate would raise the log-likelihood, is below this many units.
# (statsmodels' L-BFGS can stop on a plateau of its per-observation objective, tens of
# units below the maximum, and still report convergence.)
NEWTON_TOL = 1.0


def _newton_decrement(result) -> float:
    """½ g' Cov(ψ̂) g, with g the score of the variance parameters ψ at the estimate."""
    k_fe = len(result.fe_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, score_re, score_vc = result.model.score_full(result.params_object, calc_fe=False)
        except (np.linalg.LinAlgError, ValueError):
            return np.inf
    g = np.concatenate([np.ravel(score_re), np.ravel(score_vc)])
    cov = np.asarray(result.cov_params())[k_fe:, k_fe:]
    decrement = 0.5 * g @ cov @ g
    return float(decrement) if np.isfinite(decrement) else np.inf


def _stationary(result) -> bool:
    return _newton_decrement(result) < NEWTON_TOL


def _at_maximum(result, messages: tuple[str, ...]) -> bool:
    """A verified interior maximum: no need to try another optimizer."""
    return not _degenerate(result) and _hessian_ok(messages) and _stationary(result)


# statsmodels treats a relative variance (variance / σ_ε²) below this as singular and
# pseudo-inverts it, which amounts to an *infinite* variance: at such a point its fixed
# effects and log-likelihood are wrong (e.g. an intercept of exactly 0).
DEGENERATE_TOL = 1e-10


def _degenerate(result) -> bool:
    """The optimizer stopped where statsmodels' own estimates are unreliable."""
    scale = float(result.scale)
    if not (np.isfinite(scale) and scale > 0):
        return True
    cov = np.asarray(result.cov_re, dtype=float) / scale
    vcomp = np.asarray(result.vcomp, dtype=float) / scale
    small_re = cov.size > 0 and np.linalg.eigvalsh(cov).min() < DEGENERATE_TOL
    small_vc = vcomp.size > 0 and vcomp.min() < DEGENERATE_TOL
    return bool(small_re or small_vc)


def _status(result, optimizer: str, messages: tuple[str, ...], estimates: pd.DataFrame) -> FitStatus:
    converged = _converged((result, optimizer, messages))
    if converged and _degenerate(result):
        return FitStatus(
            False,
            True,
            f"failed ({optimizer}): a variance is exactly zero, where statsmodels' fixed "
            "effects and likelihood are unreliable",
            messages,
            failed=True,
        )
    sd_rows = estimates.index.str.startswith("sd(") & (estimates.index != "sd(residual)")
    sigma = np.sqrt(result.scale)
    small = estimates.index[sd_rows & (estimates["estimate"] < BOUNDARY_TOL * sigma)]
    cor_rows = estimates.index.str.startswith("cor(")
    extreme = estimates.index[cor_rows & (estimates["estimate"].abs() > 1 - 1e-6)]
    # Judged on the estimates only: statsmodels' own "may be on the boundary" warning uses
    # an absolute threshold (variance < 0.01), so it depends on the unit of the outcome.
    boundary = bool(len(small) or len(extreme))
    if converged and not boundary and not _hessian_ok(messages):
        # An interior point where the likelihood does not curve down in every direction:
        # the optimizer stopped short of a maximum (seen with L-BFGS, far below the
        # likelihood other optimizers reach). On the boundary this is expected.
        converged = False
        message = f"not converged ({optimizer}): the Hessian is not negative definite"
    elif converged and not boundary and not _stationary(result):
        converged = False
        message = (
            f"not converged ({optimizer}): a Newton step would raise the log-likelihood "
            f"by {_newton_decrement(result):.3g}"
        )
    elif not converged:
        message = f"not converged ({optimizer})"
    elif boundary:
        which = list(small) + list(extreme)
        message = f"boundary (singular fit): {', '.join(which)}"
    else:
        message = "converged" if optimizer == OPTIMIZERS[0] else f"converged ({optimizer})"
    return FitStatus(converged, boundary, message, messages)


def _lmm_estimates(result, model: ModelSpec) -> pd.DataFrame:
    fe = pd.DataFrame({"estimate": result.fe_params, "se": result.bse_fe})
    fe["ci_low"] = fe["estimate"] - Z95 * fe["se"]
    fe["ci_high"] = fe["estimate"] + Z95 * fe["se"]

    # statsmodels orders its variance parameters as: lower triangle of cov_re, then the
    # variance components. Their SEs: see `variance_covariance` (a Monte Carlo check in
    # tests/test_fit.py confirms the calibration).
    var_var = np.diag(variance_covariance(result))
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


def _empty_estimates() -> pd.DataFrame:
    frame = pd.DataFrame(columns=["estimate", "se", "ci_low", "ci_high"], dtype=float)
    frame.index.name = "parameter"
    return frame
