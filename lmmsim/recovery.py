"""Compare a fit with the truth: did the estimates land on the parameters?"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lmmsim.fit import Fit
from lmmsim.truth import Truth

FIXED_INTERVALS = ("satterthwaite", "z")
VARIANCE_INTERVALS = ("wald", "profile")


def recovery(fit: Fit, truth: Truth, *, fixed: str = "satterthwaite", variance: str = "wald") -> pd.DataFrame:
    """One row per true parameter: truth, estimate, SE, 95 % CI and whether it covers.

    Parameters
    ----------
    fit : Fit
        From :func:`~lmmsim.fit.fit_lmm` or :func:`~lmmsim.fit.fit_ols`.
    truth : Truth
        The simulation's truth.
    fixed : str
        Intervals of the fixed effects of a mixed model: ``"satterthwaite"``, t with
        Satterthwaite degrees of freedom (default, as lmerTest), or ``"z"``, the normal
        (Wald) interval. OLS fits keep
        their own intervals.
    variance : str
        Intervals of the SDs: ``"wald"``, Wald on the log scale (default; it never
        reaches 0), or ``"profile"``, profile likelihood (as lme4's ``confint``; it
        reaches 0 when the data allow it, and takes seconds).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``parameter``; columns ``truth``, ``estimate``, ``se``, ``ci_low``,
        ``ci_high``, ``method`` (how the interval was made), ``df`` (Satterthwaite, for
        t intervals) and ``covered`` (a nullable boolean: missing where the fit has no
        interval). Parameters the fit does not estimate (the variance components, for
        OLS) have missing estimates. ``attrs["status"]`` holds the fit's status.
    """
    if not isinstance(fit, Fit):
        raise ValueError(f"fit: got {type(fit).__name__}, expected an lmmsim Fit")
    if not isinstance(truth, Truth):
        raise ValueError(f"truth: got {type(truth).__name__}, expected an lmmsim Truth")
    if fixed not in FIXED_INTERVALS:
        raise ValueError(f"fixed: got {fixed!r}, expected one of {FIXED_INTERVALS}")
    if variance not in VARIANCE_INTERVALS:
        raise ValueError(f"variance: got {variance!r}, expected one of {VARIANCE_INTERVALS}")
    estimates = _intervals(fit, fixed, variance)
    true = pd.Series(truth.parameters(), name="truth", dtype=float)
    table = pd.DataFrame(true).join(estimates, how="left")
    table.index.name = "parameter"
    has_ci = table["ci_low"].notna() & table["ci_high"].notna()
    covers = (table["ci_low"] <= table["truth"]) & (table["truth"] <= table["ci_high"])
    table["covered"] = pd.array(np.where(has_ci, covers, pd.NA), dtype="boolean")
    table.attrs["status"] = str(fit.status)
    return table


def _intervals(fit: Fit, fixed: str, variance: str) -> pd.DataFrame:
    """The fit's estimates with the intervals asked for and a ``method`` column."""
    from scipy import stats  # scipy loads when intervals are made, not when lmmsim is imported

    from lmmsim.inference.profile import profile_intervals

    table = fit.estimates.copy()
    table["method"] = pd.Series(dtype=object)
    if "df" not in table:  # a cluster-robust OLS fit brings its own
        table["df"] = np.nan
    if table.empty:  # a failed fit
        return table
    is_variance = table.index.str.startswith(("sd(", "cor("))
    if fit.deviance is None:  # OLS: the fit's own intervals
        table.loc[~is_variance, "method"] = f"as fitted ({fit.method})"
        return table
    fe = table.index[~is_variance]
    if fixed == "satterthwaite":
        df = fit.satterthwaite()["df"].to_numpy()
        half = stats.t.ppf(0.975, df) * table.loc[fe, "se"].to_numpy()
        table.loc[fe, "df"] = df
        table.loc[fe, "ci_low"] = table.loc[fe, "estimate"] - half
        table.loc[fe, "ci_high"] = table.loc[fe, "estimate"] + half
        table.loc[fe, "method"] = "t (Satterthwaite df)"
    else:
        table.loc[fe, "method"] = "z (Wald)"
    sds = table.index[table.index.str.startswith("sd(")]
    if variance == "profile":
        profile = profile_intervals(fit, parameters=list(sds))
        table.loc[sds, ["ci_low", "ci_high"]] = profile[["ci_low", "ci_high"]].to_numpy()
        table.loc[sds, "method"] = "profile likelihood (ML, as lme4)"
    else:
        has = table.loc[sds, "ci_low"].notna()
        table.loc[sds[has.to_numpy()], "method"] = "Wald (log scale)"
    return table


# statsmodels names a variance-component effect "key[C(column)[level]]", or
# "key[C(column)[level]:term]" when the component multiplies a covariate.
_VC_NAME = re.compile(r"^(?P<factor>[^\[]+)\[C\([^)]*\)\[(?P<level>.*)\](?::(?P<term>[^\]]+))?\]$")
_SD_ROW = re.compile(r"^sd\((?P<term>.+)\|(?P<factor>.+)\)$")


def blups(fit: Fit, truth: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The predicted random effects (BLUPs) of a mixed-model fit, one row per effect.

    Parameters
    ----------
    fit : Fit
        From :func:`~lmmsim.fit.fit_lmm`.
    truth : mapping of str to pandas.DataFrame, optional
        The realised random effects, as in ``Simulation.random_effects``: for each factor a
        DataFrame indexed by level with one column per term.

    Returns
    -------
    pandas.DataFrame
        Columns ``factor``, ``level``, ``term`` (``"Intercept"`` or the covariate's name),
        ``blup`` (the predicted effect, statsmodels' ``random_effects``) and ``sd`` (its
        conditional SD given the data, at the estimated parameters and treating β̂ as known, from
        ``random_effects_cov``); with ``truth``, also ``truth`` (missing where the truth
        has no such factor, level or term).
    """
    if not isinstance(fit, Fit) or not hasattr(fit.result, "random_effects"):
        raise ValueError(f"fit: got {type(fit).__name__} ({getattr(fit, 'method', '?')}), "
                         "expected a mixed-model Fit from fit_lmm")
    if truth is not None and not isinstance(truth, Mapping):
        raise ValueError(f"truth: got {type(truth).__name__}, expected a mapping of factor "
                         "to DataFrame such as Simulation.random_effects")
    group_factor = _group_factor(fit)
    rows = []
    for group, effects in fit.result.random_effects.items():
        sd = np.sqrt(np.clip(np.diag(fit.result.random_effects_cov[group]), 0, None))
        for name, value, s in zip(effects.index, effects.to_numpy(), sd):
            rows.append({**_parse_name(str(name), str(group), group_factor), "blup": value, "sd": s})
    table = pd.DataFrame(rows, columns=["factor", "level", "term", "blup", "sd"])
    if truth is not None:
        table["truth"] = [_true_value(truth, *key) for key in
                          zip(table["factor"], table["level"], table["term"])]
    return table


def _group_factor(fit: Fit) -> str | None:
    """The grouping column of the fit: the factor of an sd row that is not a variance component."""
    vc = set(getattr(fit.result.model.exog_vc, "names", None) or [])
    factors = {m["factor"] for m in map(_SD_ROW.match, fit.estimates.index) if m}
    rest = factors - vc - {"residual"}
    return rest.pop() if len(rest) == 1 else None


def _parse_name(name: str, group: str, group_factor: str | None) -> dict[str, str]:
    """Factor, level and term of one statsmodels random-effect name."""
    match = _VC_NAME.match(name)
    if match:
        return {"factor": match["factor"], "level": match["level"], "term": match["term"] or "Intercept"}
    # statsmodels calls the group's random intercept after the grouping column
    term = "Intercept" if name in (group_factor, "Group", "Intercept") else name
    return {"factor": group_factor or "group", "level": group, "term": term}


def _true_value(truth: Mapping[str, pd.DataFrame], factor: str, level: str, term: str) -> float:
    """The realised effect, or NaN where the truth does not have it."""
    effects = truth.get(factor)
    if effects is None or level not in effects.index or term not in effects.columns:
        return np.nan
    return float(effects.loc[level, term])
