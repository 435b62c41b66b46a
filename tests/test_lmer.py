"""lmmsim.fit.lmer: lme4-style fits of crossed models with correlated random slopes.

Against lme4 1.1.31 and lmerTest 3.1.3 on the committed reference
(tests/reference/lmer_lme4.csv, from lmer_datasets.py and lmer_lme4.R): the REML
criterion of every converged fit within 1e-6 of lme4's (and never above it by more);
where both fits are interior, β, SE(β), σ_ε and the SDs and correlations within 1e-4
relative, and the Satterthwaite df of the condition within 1e-3 relative.
"""

from __future__ import annotations

import sys
from functools import cache

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, crossed_design

from lmmsim import fit_lmer, fit_lmm, simulate
from lmmsim.model import ModelSpec

REFERENCE = ROOT / "tests" / "reference"
sys.path.insert(0, str(REFERENCE))
import lmer_datasets  # noqa: E402 - the reference set's own module
from block_datasets import sha256  # noqa: E402

LME4 = pd.read_csv(REFERENCE / "lmer_lme4.csv", keep_default_na=False)
CASES = {case.name: case for case in lmer_datasets.cases()}


@cache
def fitted(name: str):
    case = CASES[name]
    return fit_lmer(case.data, case.formula)


def lme4(name: str, quantity: str) -> pd.Series:
    rows = LME4[(LME4["dataset"] == name) & (LME4["quantity"] == quantity)]
    return rows.set_index("term")["value"].astype(float)


def interior(name: str) -> bool:
    return fitted(name).status.ok and not lme4(name, "singular").iloc[0]


def r_sd_name(term: str) -> str:
    """lme4's ``subject|cond|`` as lmmsim's ``sd(cond|subject)`` (and ``cor(...)``)."""
    group, a, b = term.split("|")
    if group == "Residual":
        return "sd(residual)"
    a = "Intercept" if a == "(Intercept)" else a
    if not b:
        return f"sd({a}|{group})"
    return f"cor({a},{b}|{group})"


def test_reference_covers_every_dataset_with_matching_data():
    recorded = LME4.groupby("dataset")["sha256"].first()
    assert set(recorded.index) == set(CASES)
    assert 10 <= len(CASES) <= 20
    drifted = [name for name, case in CASES.items() if sha256(case.data) != recorded[name]]
    assert not drifted
    assert (LME4[LME4["quantity"] == "singular"]["value"].astype(float) == 0).sum() >= 8  # enough interior fits


@pytest.mark.parametrize("name", sorted(CASES))
def test_criterion_matches_lme4(name):
    fit = fitted(name)
    assert fit.status.converged, fit.status
    assert -2 * fit.loglik == pytest.approx(lme4(name, "criterion").iloc[0], abs=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimates_match_lme4_where_both_are_interior(name):
    if not interior(name):
        pytest.skip("a boundary fit: its SDs are not identified to 1e-4")
    est = fitted(name).estimates["estimate"]
    beta, se = lme4(name, "beta"), lme4(name, "se")
    for r_name, value in beta.items():
        ours = est["Intercept" if r_name == "(Intercept)" else r_name]
        assert abs(ours - value) <= 1e-4 * max(abs(value), se[r_name])
    fe_se = fitted(name).estimates["se"]
    assert np.allclose(fe_se[["Intercept", "cond"]].to_numpy(), se.to_numpy(), rtol=1e-4)
    for quantity in ("sd", "corr"):
        for term, value in lme4(name, quantity).items():
            assert est[r_sd_name(term)] == pytest.approx(value, rel=1e-4, abs=1e-6), term


@pytest.mark.parametrize("name", sorted(CASES))
def test_satterthwaite_df_matches_lmertest(name):
    if not interior(name):
        pytest.skip("lmerTest's df at a boundary fit depend on its optimizer's stopping point")
    ours = fitted(name).satterthwaite()
    theirs = lme4(name, "df")
    assert ours.loc["cond", "df"] == pytest.approx(theirs["cond"], rel=1e-3)
    assert ours.loc["Intercept", "df"] == pytest.approx(theirs["(Intercept)"], rel=1e-3)


def test_boundary_fits_are_flagged_singular():
    for name in CASES:
        if lme4(name, "singular").iloc[0]:
            status = fitted(name).status
            assert status.converged and status.boundary, (name, status)


def test_random_intercepts_agree_with_fit_lmm():
    """On a crossed random-intercept model, both fitters find the same maximum."""
    data = simulate(crossed_design(), seed=3).data
    data["all"] = 1
    spec = ModelSpec("rt ~ condition", groups="all", re_formula="0",
                     vc_formula={"subject": "0 + C(subject)", "item": "0 + C(item)"},
                     lme4="rt ~ condition + (1 | subject) + (1 | item)")
    ours, theirs = fit_lmer(data, spec), fit_lmm(data, spec)
    assert ours.loglik == pytest.approx(theirs.loglik, abs=1e-6)
    shared = theirs.estimates.index
    assert np.allclose(ours.estimates.loc[shared, "estimate"], theirs.estimates["estimate"], rtol=1e-4)
    assert np.allclose(ours.estimates.loc[["Intercept", "condition"], "se"],
                       theirs.estimates.loc[["Intercept", "condition"], "se"], rtol=1e-4)


def test_ml_and_fitted_values():
    case = CASES["sum_seed1"]
    reml, ml = fit_lmer(case.data, case.formula), fit_lmer(case.data, case.formula, reml=False)
    assert reml.method == "REML" and ml.method == "ML"
    # the ML estimate maximises the likelihood: the REML estimate does no better on it
    assert ml.status.converged and ml.deviance(reml.theta) >= -2 * ml.loglik - 1e-8
    assert np.allclose(reml.fitted + reml.residuals, case.data["rt"])
    assert list(reml.fixed_effects.index) == ["Intercept", "cond"]
    modes = reml.result.modes["subject:Intercept+cond"]
    assert modes.shape == (24, 2) and abs(modes.to_numpy().mean(axis=0)).max() < 1e-6 * 600


@pytest.mark.parametrize(
    "data, model, match",
    [
        ("not a frame", "rt ~ cond + (1 | subject)", "data: got str"),
        (None, "rt ~ cond", "no random-effect term"),
        (None, "rt ~ cond + (1 | subject:item)", "must be a column name"),
        (None, "rt ~ cond + (1 | nope)", "grouping columns"),
        (None, "rt ~ dose + (1 | subject)", "cannot be built from the data"),
        (None, ModelSpec("rt ~ cond", groups="subject"), "without an lme4 formula"),
        (None, 3, "expected an lme4 formula"),
    ],
)
def test_bad_input_raises_naming_the_parameter(data, model, match):
    frame = CASES["sum_seed1"].data if data is None else data
    with pytest.raises(ValueError, match=match):
        fit_lmer(frame, model)


def test_rank_deficient_x_fails_honestly():
    data = CASES["sum_seed1"].data.assign(copy=lambda d: d["cond"] * 2)
    fit = fit_lmer(data, "rt ~ cond + copy + (1 | subject)")
    assert fit.status.failed and "rank deficient" in fit.status.message
