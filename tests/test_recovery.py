"""lmmsim.recovery, and the end-to-end claim: a large simulated dataset of each scenario,
fitted with statsmodels (fit_lmm), recovers every β within 4 SE and every SD (and the
correlation) within 4 times its expected sampling error.

Expected sampling errors of the variance parameters come from textbook approximations
evaluated at the TRUE parameters (so a wrong fit cannot widen its own tolerance); the
fit's own SEs are checked as well.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from conftest import Z, crossed_design
from scipy import stats

from lmmsim import (
    Design,
    Factor,
    Fit,
    FitStatus,
    ModelSpec,
    RandomEffect,
    blups,
    fit_lmm,
    fit_ols,
    recovery,
    scenarios,
    simulate,
)


def schools_expected_se(p: dict) -> dict[str, float]:
    """Balanced nested ANOVA: J schools, c classrooms each, n students each.

    Mean squares (independent, Var(MS) = 2 E(MS)²/df):
      residual   df_e = N − Jc     E = σ_ε²
      classroom  df_c = J(c − 1)   E = σ_ε² + n σ_v²
      school     df_s = J − 2      E = σ_ε² + n σ_v² + c n σ_u²  (intercept and `method`
                                                                  use 2 school-level df)
    σ̂_v² = (MS_c − MS_e)/n and σ̂_u² = (MS_s − MS_c)/(c n), so
      Var(σ̂_v²) = 2/n² [E_c²/df_c + E_e²/df_e],  Var(σ̂_u²) = 2/(cn)² [E_s²/df_s + E_c²/df_c],
      Var(σ̂_ε²) = 2σ_ε⁴/df_e;  and SE(σ̂) = SE(σ̂²)/(2σ) (delta method).
    """
    J, c, n = p["n_schools"], p["n_classrooms"], p["n_students"]
    su, sv, se = p["sigma_school"], p["sigma_classroom"], p["sigma_e"]
    N = J * c * n
    df_e, df_c, df_s = N - J * c, J * (c - 1), J - 2
    E_e, E_c = se**2, se**2 + n * sv**2
    E_s = E_c + c * n * su**2
    var = {
        "sd(Intercept|school)": 2 / (c * n) ** 2 * (E_s**2 / df_s + E_c**2 / df_c),
        "sd(Intercept|classroom)": 2 / n**2 * (E_c**2 / df_c + E_e**2 / df_e),
        "sd(residual)": 2 * E_e**2 / df_e,
    }
    sd = {"sd(Intercept|school)": su, "sd(Intercept|classroom)": sv, "sd(residual)": se}
    return {k: np.sqrt(v) / (2 * sd[k]) for k, v in var.items()}


def slopes_expected_se(J: int, T: int, arms: int, s0: float, s1: float, rho: float, se: float, group: str, slope: str) -> dict[str, float]:
    """Random intercept and slope, J units each measured at t = 0, ..., T − 1.

    Two-stage view (exact for balanced designs in the interior): each unit's OLS line b_i
    has Cov(b_i) = Σ = G + σ_ε² W, W = (T'T)⁻¹, and Ĝ = S − σ̂_ε² W, S the covariance of the
    b_i around their arm means (df = J − arms). S is Wishart: Cov(S_ij, S_kl) =
    (Σ_ik Σ_jl + Σ_il Σ_jk)/df. Hence Var(Ĝ_kk) ≈ 2Σ_kk²/df (+ W_kk² Var(σ̂_ε²)), and for
    ρ̂ = Ĝ_01/√(Ĝ_00 Ĝ_11) the delta method with gradient
    (−ρ/(2G_00), 1/√(G_00 G_11), −ρ/(2G_11)) over (S_00, S_01, S_11).
    Residual: Var(σ̂_ε²) ≈ 2σ_ε⁴/(N − 2J).
    """
    t = np.arange(T, dtype=float)
    X = np.column_stack([np.ones(T), t])
    W = np.linalg.inv(X.T @ X)
    G = np.array([[s0**2, rho * s0 * s1], [rho * s0 * s1, s1**2]])
    S = G + se**2 * W
    df, df_e = J - arms, J * T - 2 * J
    var_e2 = 2 * se**4 / df_e
    var_g00 = 2 * S[0, 0] ** 2 / df + W[0, 0] ** 2 * var_e2
    var_g11 = 2 * S[1, 1] ** 2 / df + W[1, 1] ** 2 * var_e2
    idx = [(0, 0), (0, 1), (1, 1)]
    cov = np.array([[(S[i, k] * S[j, m] + S[i, m] * S[j, k]) / df for (k, m) in idx] for (i, j) in idx])
    grad = np.array([-rho / (2 * G[0, 0]), 1 / np.sqrt(G[0, 0] * G[1, 1]), -rho / (2 * G[1, 1])])
    return {
        f"sd(Intercept|{group})": np.sqrt(var_g00) / (2 * s0),
        f"sd({slope}|{group})": np.sqrt(var_g11) / (2 * s1),
        f"cor(Intercept,{slope}|{group})": float(np.sqrt(grad @ cov @ grad)),
        "sd(residual)": np.sqrt(var_e2) / (2 * se),
    }


# Seeds: for blood_pressure, one where L-BFGS (tried first) converges, so the test does
# not spend seconds in Powell's method; that choice is about run time only (the checks
# pass on the seeds next to it as well).
CASES = {
    "schools": (dict(n_schools=200, n_classrooms=4, n_students=10), 2024),
    "blood_pressure": (dict(n_patients=300, n_weeks=8), 2020),
    "plant_growth": (dict(n_plots=300, n_weeks=6), 2026),
    "cluster_trial": (dict(n_clusters=300, cluster_size=10), 2027),
}


def test_every_scenario_has_a_recovery_case():
    assert set(CASES) == set(scenarios.SCENARIOS)


def one_way_expected_se(J: int, m: int, su: float, se: float) -> dict[str, float]:
    """Balanced one-way design with one cluster-level and one individual-level covariate:
    MS_between (df J − 2: intercept and treatment) with E = σ_ε² + m σ_u², MS_within
    (df N − J − 1: x) with E = σ_ε². σ̂_u² = (MS_b − MS_w)/m, so
    Var(σ̂_u²) ≈ 2/m² [(mσ_u² + σ_ε²)²/(J − 2) + σ_ε⁴/(N − J − 1)], Var(σ̂_ε²) ≈ 2σ_ε⁴/(N − J − 1).
    """
    N = J * m
    df_b, df_w = J - 2, N - J - 1
    var_u = 2 / m**2 * ((m * su**2 + se**2) ** 2 / df_b + se**4 / df_w)
    var_e = 2 * se**4 / df_w
    return {"sd(Intercept|cluster)": np.sqrt(var_u) / (2 * su), "sd(residual)": np.sqrt(var_e) / (2 * se)}


def expected_se(name: str, design_params: dict) -> dict[str, float]:
    scenario = scenarios.get(name)
    p = {**scenario.parameters, **design_params}
    if name == "schools":
        return schools_expected_se(p)
    if name == "cluster_trial":
        return one_way_expected_se(p["n_clusters"], p["cluster_size"], p["sigma_u"], p["sigma_e"])
    if name == "blood_pressure":
        return slopes_expected_se(p["n_patients"], p["n_weeks"], 2, p["sigma_u0"], p["sigma_u1"], p["rho"], p["sigma_e"], "patient", "week")
    return slopes_expected_se(p["n_plots"], p["n_weeks"], 3, p["sigma_u0"], p["sigma_u1"], p["rho"], p["sigma_e"], "plot", "week")


@functools.cache
def fitted(name: str):
    """The large simulated dataset of a scenario and its REML fit (shared by tests)."""
    params, seed = CASES[name]
    scenario = scenarios.get(name)
    sim = simulate(scenario(**params), seed=seed)
    return sim, fit_lmm(sim.data, scenario.model)


@pytest.mark.parametrize("name", list(CASES))
def test_large_dataset_recovers_every_parameter(name):
    sim, fit = fitted(name)
    assert fit.status.ok, fit.status
    table = recovery(fit, sim.truth)
    assert set(table.index) == set(sim.truth.parameters())
    assert table["estimate"].notna().all()
    error = (table["estimate"] - table["truth"]).abs()
    for beta in sim.truth.beta:
        assert error[beta] < Z * table.loc[beta, "se"], (beta, table.loc[beta].to_dict())
    textbook = expected_se(name, CASES[name][0])
    for parameter, se in textbook.items():
        assert error[parameter] < Z * se, (parameter, table.loc[parameter].to_dict(), se)
        if np.isfinite(table.loc[parameter, "se"]):  # the fit's SE, where it gives one
            assert error[parameter] < Z * table.loc[parameter, "se"], parameter
    # Every variance parameter got a textbook SE (nothing went unchecked).
    assert set(textbook) | set(sim.truth.beta) == set(table.index)


@pytest.mark.parametrize("name", list(CASES))
def test_fit_se_of_sds_equals_the_textbook_se_at_the_estimates(name):
    # The textbook approximations above, evaluated at the fit's own estimates instead of
    # the truth, and the fit's delta-method SEs approximate the same quantity to first
    # order; with J >= 200 units they differ by O(1/J), well under 1 %. (Scaling
    # statsmodels' SEs of the relative variances by σ̂_ε² alone is several % off here.)
    sim, fit = fitted(name)
    est = fit.estimates["estimate"]
    params = {**scenarios.get(name).parameters, **CASES[name][0]}
    if name == "schools":
        params.update(sigma_school=est["sd(Intercept|school)"], sigma_classroom=est["sd(Intercept|classroom)"], sigma_e=est["sd(residual)"])
    elif name == "cluster_trial":
        params.update(sigma_u=est["sd(Intercept|cluster)"], sigma_e=est["sd(residual)"])
    else:
        group = "patient" if name == "blood_pressure" else "plot"
        params.update(sigma_u0=est[f"sd(Intercept|{group})"], sigma_u1=est[f"sd(week|{group})"], rho=est[f"cor(Intercept,week|{group})"], sigma_e=est["sd(residual)"])
    plug_in = expected_se(name, params)
    checked = 0
    for parameter, se in plug_in.items():
        if parameter.startswith("sd(") and parameter != "sd(residual)":
            assert fit.estimates.loc[parameter, "se"] == pytest.approx(se, rel=0.01), parameter
            checked += 1
    assert checked == (1 if name == "cluster_trial" else 2)


def test_recovery_table_and_coverage():
    sim = simulate(scenarios.plant_growth(n_plots=24), seed=3)
    fit = fit_lmm(sim.data, scenarios.plant_growth.model)
    table = recovery(fit, sim.truth)
    assert list(table.columns) == ["truth", "estimate", "se", "ci_low", "ci_high", "method", "df", "covered"]
    assert table.index.name == "parameter"
    assert str(table["covered"].dtype) == "boolean"
    assert table.attrs["status"] == str(fit.status)
    for name, row in table.iterrows():
        if pd.isna(row.ci_low):
            assert row.covered is pd.NA, name
        else:
            assert bool(row.covered) == (row.ci_low <= row.truth <= row.ci_high), name
    assert table.loc["sd(residual)", "covered"] is pd.NA  # no interval from the fit


def test_recovery_with_a_constructed_fit():
    # Coverage is decided by the interval alone: one covered, one missed, one without CI.
    sim = simulate(scenarios.schools(n_schools=4), seed=1)
    estimates = pd.DataFrame(
        {"estimate": [50.5, 9.0], "se": [1.0, 1.0], "ci_low": [49.0, 8.0], "ci_high": [52.0, 10.0]},
        index=pd.Index(["Intercept", "method"], name="parameter"),
    )
    fit = Fit("REML", estimates, FitStatus(True), 0.0, 1)
    table = recovery(fit, sim.truth)
    assert table.loc["Intercept", "covered"] == True  # noqa: E712 (pandas boolean)
    assert table.loc["method", "covered"] == False  # noqa: E712
    assert table.loc["ses", "covered"] is pd.NA and np.isnan(table.loc["ses", "estimate"])
    assert table.attrs["status"] == "converged"


def test_ols_recovery_has_no_variance_components():
    sim = simulate(scenarios.schools(n_schools=10), seed=2)
    table = recovery(fit_ols(sim.data, scenarios.schools.model), sim.truth)
    assert table.loc[["sd(Intercept|school)", "sd(Intercept|classroom)"], "estimate"].isna().all()
    assert table.loc[["Intercept", "method", "ses", "sd(residual)"], "estimate"].notna().all()


def test_recovery_bad_input():
    sim = simulate(scenarios.schools(n_schools=4), seed=1)
    fit = fit_ols(sim.data, scenarios.schools.model)
    with pytest.raises(ValueError, match="fit: got DataFrame, expected an lmmsim Fit"):
        recovery(fit.estimates, sim.truth)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="truth: got dict, expected an lmmsim Truth"):
        recovery(fit, sim.truth.parameters())  # type: ignore[arg-type]


def test_blups_of_a_random_intercept_are_the_shrunken_group_means():
    # One-way model: the BLUP is λ_i (ȳ_i − β̂0) with λ_i = σ_u²/(σ_u² + σ_ε²/n_i), at the
    # fitted variances, and its conditional SD is √(σ_u² (1 − λ_i)) (β̂0 treated as known).
    design = Design(factors=(Factor("g", 25), Factor("obs", 6, within="g")), formula="1",
                    beta={"Intercept": 10.0}, random=(RandomEffect("g", {"Intercept": 2.0}),),
                    sigma_e=3.0)
    sim = simulate(design, seed=5)
    fit = fit_lmm(sim.data, ModelSpec("y ~ 1", groups="g"))
    table = blups(fit, sim.random_effects)
    assert list(table.columns) == ["factor", "level", "term", "blup", "sd", "truth"]
    assert (table["factor"] == "g").all() and (table["term"] == "Intercept").all()
    su2 = fit.estimates.loc["sd(Intercept|g)", "estimate"] ** 2
    se2 = fit.estimates.loc["sd(residual)", "estimate"] ** 2
    lam = su2 / (su2 + se2 / 6)
    means = sim.data.groupby("g")["y"].mean().loc[table["level"]].to_numpy()
    b0 = fit.estimates.loc["Intercept", "estimate"]
    assert np.allclose(table["blup"], lam * (means - b0), rtol=1e-6, atol=1e-8)
    assert np.allclose(table["sd"], np.sqrt(su2 * (1 - lam)), rtol=1e-4)
    truth = sim.random_effects["g"]["Intercept"].loc[table["level"]].to_numpy()
    assert np.array_equal(table["truth"].to_numpy(), truth)


def test_blups_name_slopes_nested_and_crossed_effects_as_the_truth_does():
    sim = simulate(scenarios.blood_pressure(n_patients=20), seed=2)
    table = blups(fit_lmm(sim.data, scenarios.blood_pressure.model), sim.random_effects)
    assert set(table["term"]) == {"Intercept", "week"} and table["truth"].notna().all()
    assert len(table) == 2 * 20

    sim = simulate(scenarios.schools(n_schools=8), seed=3)
    table = blups(fit_lmm(sim.data, scenarios.schools.model), sim.random_effects)
    assert table.groupby("factor").size().to_dict() == {"classroom": 8 * 4, "school": 8}
    assert table["truth"].notna().all()

    sim = simulate(crossed_design(), seed=4)
    data = sim.data.assign(all=1)
    model = ModelSpec("rt ~ condition", groups="all", re_formula="0",
                      vc_formula={"subject": "0 + C(subject)", "item": "0 + C(item)"})
    table = blups(fit_lmm(data, model), sim.random_effects)
    assert table.groupby("factor").size().to_dict() == {"item": 20, "subject": 30}
    assert table["truth"].notna().all()
    # BLUPs predict: they correlate with the truth (loose, this is a naming test)
    assert np.corrcoef(table["blup"], table["truth"])[0, 1] > 0.5


def test_blups_without_truth_and_bad_input():
    sim = simulate(scenarios.schools(n_schools=6), seed=1)
    fit = fit_lmm(sim.data, scenarios.schools.model)
    assert "truth" not in blups(fit).columns
    with pytest.raises(ValueError, match="fit: got Fit \\(OLS\\), expected a mixed-model Fit"):
        blups(fit_ols(sim.data, scenarios.schools.model))
    with pytest.raises(ValueError, match="truth: got Truth, expected a mapping"):
        blups(fit, sim.truth)  # type: ignore[arg-type]


def test_fixed_effect_intervals_are_t_with_satterthwaite_df_unless_z_is_asked():
    sim = simulate(scenarios.plant_growth(n_plots=9), seed=5)
    fit = fit_lmm(sim.data, scenarios.plant_growth.model)
    t_table, z_table = recovery(fit, sim.truth), recovery(fit, sim.truth, fixed="z")
    fixed = list(fit.satterthwaite().index)
    assert (t_table.loc[fixed, "method"] == "t (Satterthwaite df)").all()
    assert (z_table.loc[fixed, "method"] == "z (Wald)").all() and z_table.loc[fixed, "df"].isna().all()
    df = fit.satterthwaite()["df"]
    np.testing.assert_allclose(t_table.loc[fixed, "df"], df)
    half = (t_table.loc[fixed, "ci_high"] - t_table.loc[fixed, "ci_low"]) / 2
    np.testing.assert_allclose(half, stats.t.ppf(0.975, df) * fit.estimates.loc[fixed, "se"])
    # 9 plots: few df, so the t interval is clearly wider than the z interval.
    assert (half > 1.05 * (z_table.loc[fixed, "ci_high"] - z_table.loc[fixed, "ci_low"]) / 2).all()


def test_profile_intervals_of_the_sds_on_request():
    sim = simulate(scenarios.cluster_trial(n_clusters=6, cluster_size=5, sigma_u=0.2), seed=2)
    fit = fit_lmm(sim.data, scenarios.cluster_trial.model)
    table = recovery(fit, sim.truth, variance="profile")
    sds = ["sd(Intercept|cluster)", "sd(residual)"]
    assert (table.loc[sds, "method"] == "profile likelihood (ML, as lme4)").all()
    assert table.loc[sds, "covered"].notna().all()
    with pytest.raises(ValueError, match="variance: got 'bootstrap'"):
        recovery(fit, sim.truth, variance="bootstrap")
    with pytest.raises(ValueError, match="fixed: got 'kr'"):
        recovery(fit, sim.truth, fixed="kr")
