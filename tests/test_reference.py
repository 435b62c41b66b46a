"""lmmsim against lme4 1.1.31 and lmerTest 3.1.3 on the committed reference set.

The datasets are regenerated from their specs (tests/reference/specs.json) and must hash
as when lme4 fitted them. Every dataset is fitted (about 70 s of CPU for all 304);
LMMSIM_REFERENCE=quick fits every fourth one (76, every design).

Agreement demanded (issue 8): no fit with status "converged" has a REML criterion more
than 1e-4 below lme4's best; where both converge inside the parameter space, β, SE(β),
σ_ε and the random-effect SDs agree to 1e-4 relative (β: relative to max(|β|, SE)), and
Satterthwaite df to 1e-3 relative and p-values to 1e-4 absolute, for every fixed effect
and two contrasts per dataset.
"""

from __future__ import annotations

import json
import os
import re
import sys
from functools import cache

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from lmmsim import fit_lmm

REFERENCE = ROOT / "tests" / "reference"
sys.path.insert(0, str(REFERENCE))
import make_datasets  # noqa: E402 - the reference set's own module

SPECS = json.loads((REFERENCE / "specs.json").read_text())
LME4 = {name: pd.read_csv(REFERENCE / "lme4" / f"{name}.csv") for name in ("fits", "fixed", "varcor", "contrasts")}
FITS = LME4["fits"].set_index("id")
STEP = 4 if os.environ.get("LMMSIM_REFERENCE") == "quick" else 1
CHECKED = SPECS[::STEP]


def r_name(name: str) -> str:
    """A fixed effect's name as R writes it: ``treatment[T.FertA]`` -> ``treatmentFertA``."""
    return re.sub(r"\[T\.|\]|[()]", "", name)


@cache
def fitted(spec_id: str):
    spec = next(s for s in SPECS if s["id"] == spec_id)
    _, model = make_datasets.design_and_model(spec["design"], spec["params"])
    return fit_lmm(make_datasets.dataset(spec), model)


def interior(spec_id: str) -> bool:
    """Both fits converged inside the parameter space."""
    fit = fitted(spec_id)
    return fit.status.ok and not FITS.loc[spec_id, "singular"] and pd.isna(FITS.loc[spec_id, "messages"])


def test_reference_set_covers_the_brief():
    designs = {s["design"] for s in SPECS}
    assert len(SPECS) >= 300
    assert {"schools", "blood_pressure", "plant_growth", "cluster_trial", "crossed", "uneven_clusters"} <= designs
    assert any(s["params"].get("dropout", 0) > 0 for s in SPECS if s["design"] == "blood_pressure")
    assert any(s["params"].get("n_clusters", 30) <= 6 for s in SPECS)
    assert FITS["singular"].sum() >= 30 and (~FITS["singular"]).sum() >= 150
    assert set(FITS.index) == {s["id"] for s in SPECS}


def test_datasets_are_regenerated_exactly():
    changed = [s["id"] for s in SPECS if make_datasets.sha256(make_datasets.dataset(s)) != s["sha256"]]
    assert not changed, f"lmmsim.simulate now draws different data for {len(changed)} specs, e.g. {changed[:3]}"


@pytest.mark.parametrize("spec", CHECKED, ids=lambda s: s["id"])
def test_converged_fits_reach_lme4s_maximum(spec):
    fit = fitted(spec["id"])
    shortfall = -2 * fit.loglik - FITS.loc[spec["id"], "reml_crit"]
    assert fit.status.converged or fit.status.message.startswith("not converged"), fit.status
    if fit.status.converged:
        assert shortfall < 1e-4, (fit.status, shortfall)
        # ... and call it singular exactly when lme4's isSingular() does (83 of the 304)
        assert fit.status.boundary == FITS.loc[spec["id"], "singular"], fit.status


def _sds(spec_id: str, fit) -> pd.Series:
    """lme4's SDs and correlations under lmmsim's names."""
    vc = LME4["varcor"][LME4["varcor"]["id"] == spec_id]
    out = {}
    for row in vc.itertuples():
        if row.grp == "Residual":
            out["sd(residual)"] = row.sdcor
            continue
        group = row.grp.split(":")[-1]
        v1 = r_name(row.var1)
        if isinstance(row.var2, str):
            out[f"cor({v1},{r_name(row.var2)}|{group})"] = row.sdcor
        else:
            out[f"sd({v1}|{group})"] = row.sdcor
    return pd.Series(out)


@pytest.mark.parametrize("spec", CHECKED, ids=lambda s: s["id"])
def test_estimates_agree_with_lme4(spec):
    if not interior(spec["id"]):
        pytest.skip("not both converged inside the parameter space")
    fit = fitted(spec["id"])
    ref = LME4["fixed"][LME4["fixed"]["id"] == spec["id"]].set_index("term")
    ref.index = [r_name(n) for n in ref.index]
    fe = fit.estimates.loc[list(fit.deviance.fixed_names)]
    fe.index = [r_name(n) for n in fe.index]
    ref = ref.loc[fe.index]
    assert np.all(np.abs(fe["estimate"] - ref["estimate"]) <= 1e-4 * np.maximum(np.abs(ref["estimate"]), ref["se"]))
    np.testing.assert_allclose(fe["se"], ref["se"], rtol=1e-4)
    sds = _sds(spec["id"], fit)
    ours = fit.estimates.loc[sds.index, "estimate"]
    is_sd = sds.index.str.startswith("sd(")
    np.testing.assert_allclose(ours[is_sd], sds[is_sd], rtol=1e-4)
    np.testing.assert_allclose(ours[~is_sd], sds[~is_sd], atol=1e-4)


@pytest.mark.parametrize("spec", CHECKED, ids=lambda s: s["id"])
def test_satterthwaite_agrees_with_lmertest(spec):
    if not interior(spec["id"]):
        pytest.skip("not both converged inside the parameter space")
    fit = fitted(spec["id"])
    ours = fit.satterthwaite()
    ours.index = [r_name(n) for n in ours.index]
    ref = LME4["fixed"][LME4["fixed"]["id"] == spec["id"]].set_index("term")
    ref.index = [r_name(n) for n in ref.index]
    ref = ref.loc[ours.index]
    np.testing.assert_allclose(ours["df"], ref["df"], rtol=1e-3)
    np.testing.assert_allclose(ours["p_value"], ref["p"], atol=1e-4)
    contrasts = LME4["contrasts"][LME4["contrasts"]["id"] == spec["id"]]
    L = pd.DataFrame([_weights(text, fit) for text in contrasts["L"]])
    mine = fit.satterthwaite(L)
    np.testing.assert_allclose(mine["estimate"], contrasts["estimate"], rtol=1e-4, atol=1e-4 * contrasts["se"].max())
    np.testing.assert_allclose(mine["df"], contrasts["df"], rtol=1e-3)
    np.testing.assert_allclose(mine["p_value"], contrasts["p"], atol=1e-4)


def _weights(text: str, fit) -> dict[str, float]:
    """An R contrast ``week=1;week:drug=1`` under lmmsim's fixed-effect names."""
    by_r = {r_name(n): n for n in fit.deviance.fixed_names}
    return {by_r[r_name(k)]: float(v) for k, v in (item.rsplit("=", 1) for item in text.split(";"))}
