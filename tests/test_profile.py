"""Profile-likelihood intervals (lmmsim.inference.profile) against lme4's confint(method = "profile")."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from lmmsim import ModelSpec, fit_lmm, fit_ols
from lmmsim.inference.profile import profile_intervals

REFERENCE = ROOT / "tests" / "reference"
LME4 = pd.read_csv(REFERENCE / "lme4" / "profile.csv")
DYESTUFF = ModelSpec("Yield ~ 1", groups="Batch", lme4="Yield ~ 1 + (1 | Batch)")
PASTES = ModelSpec("strength ~ 1", groups="batch", vc_formula={"cask": "0 + C(cask)"},
                   lme4="strength ~ 1 + (1 | batch) + (1 | batch:cask)")


def lme4_intervals(dataset: str) -> pd.DataFrame:
    """lme4's intervals under lmmsim's names: sd_(Intercept)|batch:cask -> sd(Intercept|cask)."""
    rows = LME4[LME4["dataset"] == dataset].copy()
    rows["parameter"] = [
        "sd(residual)" if p == "sigma" else re.sub(r"sd_\((\w+)\)\|(?:\w+:)?(\w+)", r"sd(\1|\2)", p)
        for p in rows["parameter"]
    ]
    return rows.set_index("parameter")[["lower", "upper"]]


def assert_agree(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    ours = ours.loc[ref.index]
    for mine, theirs in [(ours["ci_low"], ref["lower"]), (ours["ci_high"], ref["upper"])]:
        zero = theirs == 0
        assert (mine[zero] == 0).all(), (mine, theirs)
        np.testing.assert_allclose(mine[~zero], theirs[~zero], rtol=1e-3)


@pytest.mark.parametrize("name, model", [("dyestuff", DYESTUFF), ("pastes", PASTES)])
def test_lme4_datasets(name, model):
    fit = fit_lmm(pd.read_csv(REFERENCE / f"{name}.csv"), model)
    table = profile_intervals(fit)
    assert_agree(table, lme4_intervals(name))
    assert (table["ci_low"] <= table["estimate"]).all() and (table["estimate"] <= table["ci_high"]).all()
    assert table.attrs["method"] == "profile likelihood (ML), 95%"


def test_interval_reaches_zero_where_wald_cannot():
    fit = fit_lmm(pd.read_csv(REFERENCE / "pastes.csv"), PASTES)
    assert profile_intervals(fit, parameters=["sd(Intercept|batch)"]).loc["sd(Intercept|batch)", "ci_low"] == 0
    assert fit.estimates.loc["sd(Intercept|batch)", "ci_low"] > 0  # the log-scale Wald interval


@pytest.mark.parametrize("spec_id", ["schools-01-00", "cluster_trial-22-00", "uneven_clusters-28-00"])
def test_lmmsim_datasets(spec_id):
    sys.path.insert(0, str(REFERENCE))
    import make_datasets

    spec = next(s for s in json.loads((REFERENCE / "specs.json").read_text()) if s["id"] == spec_id)
    _, model = make_datasets.design_and_model(spec["design"], spec["params"])
    assert_agree(profile_intervals(fit_lmm(make_datasets.dataset(spec), model)), lme4_intervals(spec_id))


def test_reml_profile_is_centred_on_the_reml_estimate():
    fit = fit_lmm(pd.read_csv(REFERENCE / "dyestuff.csv"), DYESTUFF)
    ml, reml = profile_intervals(fit), profile_intervals(fit, reml=True)
    assert reml.loc["sd(Intercept|Batch)", "estimate"] == pytest.approx(fit.estimates.loc["sd(Intercept|Batch)", "estimate"], rel=1e-6)
    # REML corrects ML's downward bias of the SD: the whole interval moves up.
    assert (reml["ci_high"] > ml["ci_high"]).all() and reml.loc["sd(Intercept|Batch)", "ci_low"] > ml.loc["sd(Intercept|Batch)", "ci_low"]


def test_bad_input_is_refused():
    data = pd.read_csv(REFERENCE / "dyestuff.csv")
    fit = fit_lmm(data, DYESTUFF)
    with pytest.raises(ValueError, match="level: got 95"):
        profile_intervals(fit, level=95)
    with pytest.raises(ValueError, match=r"parameters: \['sd\(x\|Batch\)'\]"):
        profile_intervals(fit, parameters=["sd(x|Batch)"])
    with pytest.raises(ValueError, match="fit: got a OLS fit"):
        profile_intervals(fit_ols(data, DYESTUFF))
