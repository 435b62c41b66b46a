"""lmmsim.fit: estimates, an honest FitStatus, and calibrated standard errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import Z, one_way_design

from lmmsim import (
    Design,
    Factor,
    ModelSpec,
    Normal,
    RandomEffect,
    fit_lmm,
    fit_ols,
    recovery,
    scenarios,
    simulate,
)
from lmmsim.fit import verify
from lmmsim.fit.statsmodels import BOUNDARY_TOL, Z95, _status
from lmmsim.inference.deviance import Term

ONE_WAY = ModelSpec("y ~ 1", groups="g")


def anova(data: pd.DataFrame, m: int) -> tuple[float, float, float]:
    """Balanced one-way ANOVA: (σ̂_u², σ̂_ε², Var(σ̂_u²)).

    σ̂_u² = (MSB − MSW)/m and σ̂_ε² = MSW, which are the REML estimates when σ̂_u² > 0.
    MSB and MSW are independent with Var(MS) = 2 E(MS)²/df, so
    Var(σ̂_u²) = 2/m² [(mσ_u² + σ_ε²)²/(J − 1) + σ_ε⁴/(N − J)]  (the textbook formula),
    here evaluated at the estimates.
    """
    J, N = data["g"].nunique(), len(data)
    means = data.groupby("g")["y"].transform("mean")
    msb = m * ((data.groupby("g")["y"].mean() - data["y"].mean()) ** 2).sum() / (J - 1)
    msw = ((data["y"] - means) ** 2).sum() / (N - J)
    return (msb - msw) / m, msw, 2 / m**2 * (msb**2 / (J - 1) + msw**2 / (N - J))


# ---------------------------------------------------------------- estimates


def test_estimates_table():
    sim = simulate(scenarios.plant_growth(n_plots=30), seed=1)
    fit = fit_lmm(sim.data, scenarios.plant_growth.model)
    assert fit.status.ok and fit.status.converged and not fit.status.boundary, fit.status
    assert fit.method == "REML" and fit.nobs == 180 and np.isfinite(fit.loglik)
    est = fit.estimates
    assert list(est.columns) == ["estimate", "se", "ci_low", "ci_high"]
    assert set(est.index) == set(sim.truth.parameters())
    beta = list(sim.truth.beta)
    np.testing.assert_allclose(est.loc[beta, "ci_low"], est.loc[beta, "estimate"] - Z95 * est.loc[beta, "se"])
    np.testing.assert_allclose(est.loc[beta, "ci_high"], est.loc[beta, "estimate"] + Z95 * est.loc[beta, "se"])
    # SD intervals are Wald intervals on the log scale: positive, estimate at the geometric centre.
    for name in ("sd(Intercept|plot)", "sd(week|plot)"):
        row = est.loc[name]
        assert 0 < row.ci_low < row.estimate < row.ci_high
        assert row.ci_low * row.ci_high == pytest.approx(row.estimate**2)
    # No SE for the residual SD and the correlation.
    assert est.loc[["sd(residual)", "cor(Intercept,week|plot)"], "se"].isna().all()
    ml = fit_lmm(sim.data, scenarios.plant_growth.model, reml=False)
    assert ml.method == "ML" and ml.status.ok
    # ML shrinks the between-plot variances relative to REML (it ignores the df used by the
    # plot-level β's). The residual SD is a within-plot quantity: in this balanced design the
    # two agree (to the optimizers' precision), as they must.
    for name in ("sd(Intercept|plot)", "sd(week|plot)"):
        assert ml.estimates.loc[name, "estimate"] < est.loc[name, "estimate"]
    assert ml.estimates.loc["sd(residual)", "estimate"] == pytest.approx(est.loc["sd(residual)", "estimate"], rel=1e-6)


def test_fit_raises_no_warnings():
    # statsmodels' warnings are caught into the status, never printed (the book fails on
    # any stderr output).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(3):
            data = simulate(one_way_design(n_groups=12, m=3, sigma_u=0.3), seed=seed).data
            fit_lmm(data, ONE_WAY)
        constant = data.assign(y=5.0)
        fit = fit_lmm(constant, ONE_WAY)
    assert not fit.status.ok


def test_bad_data_input():
    with pytest.raises(ValueError, match=r"data: columns \['school'\] are missing; the data have"):
        fit_lmm(pd.DataFrame({"y": [1.0, 2.0], "g": ["a", "b"]}), ModelSpec("y ~ 1", groups="school"))
    with pytest.raises(ValueError, match="data: got list, expected a pandas DataFrame"):
        fit_ols([1, 2, 3], ONE_WAY)  # type: ignore[arg-type]


def test_results_do_not_depend_on_the_unit_of_the_outcome():
    # Heights in metres instead of centimetres: every estimate and SE scales by 1/100
    # (to a tiny fraction of its SE) and the status is the same. (statsmodels' own
    # "boundary" warning uses an absolute threshold; the status must not.)
    sim = simulate(scenarios.plant_growth(n_plots=60), seed=5)
    cm = fit_lmm(sim.data, scenarios.plant_growth.model)
    m = fit_lmm(sim.data.assign(height=sim.data["height"] / 100), scenarios.plant_growth.model)
    assert cm.status.ok and m.status.ok, (cm.status, m.status)
    assert (cm.status.converged, cm.status.boundary) == (m.status.converged, m.status.boundary)
    rows = cm.estimates.index.drop("cor(Intercept,week|plot)")
    scaled = m.estimates.loc[rows] * 100
    se = cm.estimates.loc[rows, "se"].fillna(cm.estimates.loc[rows, "estimate"])
    assert ((scaled["estimate"] - cm.estimates.loc[rows, "estimate"]).abs() < 1e-3 * se).all()
    ratio = (scaled["se"] / cm.estimates.loc[rows, "se"]).dropna()
    assert ((ratio - 1).abs() < 1e-3).all()


# ---------------------------------------------------------------- FitStatus is honest


def centred(data: pd.DataFrame) -> pd.DataFrame:
    """The same data with every group mean moved to the grand mean: the between-group
    mean square is 0, so the (RE)ML estimate of σ_u is exactly 0 — a boundary fit."""
    y = data["y"] - data.groupby("g")["y"].transform("mean") + data["y"].mean()
    return data.assign(y=y)


def test_true_sd_zero_is_a_boundary_fit():
    design = Design(
        factors=(Factor("g", 40), Factor("obs", 5, within="g")),
        covariates=(Normal("x"),),
        formula="x",
        beta={"Intercept": 10.0, "x": 1.0},
        random=(RandomEffect("g", {"Intercept": 0.0}),),
        sigma_e=2.0,
    )
    model = ModelSpec("y ~ x", groups="g")
    for seed in range(3):
        data = centred(simulate(design, seed=seed).data)
        fit = fit_lmm(data, model)
        status = fit.status
        assert status.converged and status.boundary and not status.ok, status
        assert str(status).startswith("boundary (singular fit): sd(Intercept|g)")
        est = fit.estimates
        assert est.loc["sd(Intercept|g)", "estimate"] < BOUNDARY_TOL * est.loc["sd(residual)", "estimate"]
        # Variance-component inference is withheld on the boundary ...
        assert est.loc[["sd(Intercept|g)"], ["se", "ci_low", "ci_high"]].isna().all().all()
        # ... while β at σ_u = 0 is the OLS estimate (GLS with V = σ²I), to a tiny
        # fraction of its SE.
        ols = fit_ols(data, model)
        for name in ("Intercept", "x"):
            assert abs(est.loc[name, "estimate"] - ols.estimates.loc[name, "estimate"]) < 1e-3 * ols.estimates.loc[name, "se"]
        table = recovery(fit, simulate(design, seed=seed).truth)
        assert table.attrs["status"] == str(status)
        assert table.loc["sd(Intercept|g)", "covered"] is pd.NA


def test_degenerate_optimum_is_not_accepted():
    # A dataset on which statsmodels' L-BFGS stops at a variance of exactly 0, where
    # statsmodels computes β as if that variance were infinite (an intercept of exactly
    # 0) and a wrong likelihood. For a balanced intercept-only model the GLS estimate of
    # β0 is the grand mean whatever the variances, so an ok fit must give ȳ.
    design = one_way_design(n_groups=30, m=5, sigma_u=2.0, sigma_e=3.0)
    seeds = np.random.SeedSequence(7).spawn(300)
    for index in (188, 0, 1):
        data = simulate(design, seeds[index]).data
        fit = fit_lmm(data, ONE_WAY)
        assert fit.status.ok, (index, fit.status)
        assert fit.estimates.loc["Intercept", "estimate"] == pytest.approx(data["y"].mean(), abs=1e-6 * fit.estimates.loc["Intercept", "se"])
        # Whatever one optimizer does alone, a fit that says ok has the right β.
        alone = fit_lmm(data, ONE_WAY, optimizers=("lbfgs",))
        if alone.status.ok:
            assert alone.estimates.loc["Intercept", "estimate"] == pytest.approx(data["y"].mean())
        else:
            assert not alone.status.converged or alone.status.boundary
            assert np.isnan(alone.loglik) or alone.loglik <= fit.loglik + 1e-8


@pytest.mark.parametrize("n_patients, seed", [(40, 17), (80, 58)])
def test_a_fit_reported_ok_is_a_maximum(n_patients, seed):
    # On these datasets statsmodels' L-BFGS reports convergence at a point that is not a
    # maximum: (40, 17) where the Hessian is not negative definite, (80, 58) with no
    # warning at all, 7.7 log-likelihood units below the maximum. A fit whose status is
    # ok must be (within optimizer precision, 0.01) the best any optimizer reaches, and
    # the default fit must be ok.
    sim = simulate(scenarios.blood_pressure(n_patients=n_patients), seed=seed)
    model = scenarios.blood_pressure.model
    alone = {opt: fit_lmm(sim.data, model, optimizers=(opt,)) for opt in ("lbfgs", "bfgs", "powell", "nm", "cg")}
    best = max(f.loglik for f in alone.values() if np.isfinite(f.loglik))
    for opt, fit in alone.items():
        if fit.status.ok:
            assert fit.loglik > best - 0.01, (opt, fit.status, fit.loglik, best)
        elif fit.status.converged:
            assert fit.status.boundary, (opt, fit.status)
    default = fit_lmm(sim.data, model)
    assert default.status.ok and default.loglik > best - 0.01, default.status


def test_failed_fit_is_reported():
    # Two identical columns in X: the model is not identified and every optimizer fails.
    data = simulate(one_way_design(n_groups=20, m=4), seed=1).data
    data["x"] = np.arange(len(data)) % 7
    data["x2"] = 2 * data["x"]
    fit = fit_lmm(data, ModelSpec("y ~ x + x2", groups="g"))
    assert not fit.status.converged and not fit.status.ok
    assert str(fit.status).startswith("failed: X is rank deficient")
    assert fit.estimates.empty and np.isnan(fit.loglik)
    truth = simulate(one_way_design(n_groups=20, m=4), seed=1).truth
    table = recovery(fit, truth)
    assert table["estimate"].isna().all() and table["covered"].isna().all()


def settled(theta, converged: bool = True, message: str = "converged") -> verify.Settled:
    """What _status reads from the verification: the verdict, its message and θ."""
    return verify.Settled(None, "lbfgs", (), converged, message, np.asarray(theta, dtype=float))


class Terms:
    """What _status reads of the deviance: its terms (here a random intercept and slope)."""

    terms = (Term("g", ("Intercept", "week"), True),)


def test_status_logic_on_constructed_cases():
    # The verdict of the verification is passed on, with its message.
    status = _status(settled([1.0, 0.0, 1.0], False, "not converged (nm): the Hessian is not definite"), Terms)
    assert (status.converged, status.ok) == (False, False) and "Hessian" in str(status)
    assert str(_status(settled([1.0, 0.0, 1.0]), Terms)) == "converged"
    # lme4's rule on θ: a diagonal element below 1e-4 is a boundary fit, named by its term.
    tiny = _status(settled([1e-5, 0.0, 1.0]), Terms)
    assert tiny.converged and tiny.boundary and str(tiny) == "boundary (singular fit): sd(Intercept|g)"
    edge = _status(settled([1.0, -0.007, 0.9e-4]), Terms)  # cor -0.9999, sd(week) 0.7 % of σ_ε
    assert edge.boundary and str(edge) == "boundary (singular fit): cor(Intercept,week|g)"
    # θ is relative to σ_ε: an SD of 0.05 with σ_ε = 0.08 is interior, whatever statsmodels'
    # absolute threshold says; so is a slope diagonal of 2e-4.
    assert _status(settled([0.05 / 0.08, 0.0, 1.0]), Terms).ok
    assert _status(settled([1.0, -0.007, 2e-4]), Terms).ok
    # Not converged on the boundary: the verdict's message, not "boundary".
    lost = _status(settled([1e-5, 0.0, 1.0], False, "not converged (nm): x"), Terms)
    assert lost.boundary and not lost.converged and str(lost) == "not converged (nm): x"


# ---------------------------------------------------------------- OLS vs LMM


def test_ols_understates_the_se_of_a_cluster_level_covariate():
    sim = simulate(scenarios.schools(n_schools=30, n_classrooms=3, n_students=15), seed=12)
    lmm = fit_lmm(sim.data, scenarios.schools.model)
    ols = fit_ols(sim.data, scenarios.schools.model)
    robust = fit_ols(sim.data, scenarios.schools.model, cluster=True)
    assert lmm.status.ok, lmm.status
    assert ols.method == "OLS" and robust.method == "OLS (cluster-robust CR2)" and ols.status.ok
    se = {name: f.estimates.loc["method", "se"] for name, f in (("lmm", lmm), ("ols", ols), ("robust", robust))}
    # `method` is constant within schools: 45 students per school carry about one
    # school's worth of information on it. OLS pretends they are independent.
    assert se["ols"] < se["lmm"]
    assert se["ols"] < se["robust"]
    # Same point estimate for OLS with and without robust SEs; OLS has only sd(residual).
    assert np.isclose(ols.estimates.loc["method", "estimate"], robust.estimates.loc["method", "estimate"], rtol=1e-10)
    assert [i for i in ols.estimates.index if i.startswith("sd(")] == ["sd(residual)"]


def test_cluster_robust_ols_is_cr2_by_default_and_cr1_by_name():
    import statsmodels.formula.api as smf
    from scipy import stats

    from lmmsim.inference.cluster_robust import cluster_robust

    sim = simulate(scenarios.schools(n_schools=9, n_classrooms=2, n_students=6), seed=3)
    data = sim.data[sim.data.index % 7 != 0]  # unequal cluster sizes: CR2's df differ from J - 1
    model = scenarios.schools.model
    cr2, cr1 = fit_ols(data, model, cluster=True), fit_ols(data, model, cluster="CR1")
    assert cr2.method == "OLS (cluster-robust CR2)" and cr1.method == "OLS (cluster-robust CR1)"
    assert fit_ols(data, model, cluster="CR2").estimates.equals(cr2.estimates)
    # CR2 is cluster_robust's (tested against clubSandwich), with t intervals on its df.
    ols = smf.ols(model.formula, data)
    test = cluster_robust(ols.endog, ols.exog, data[model.groups].to_numpy(), type="CR2")
    fixed = cr2.estimates.drop("sd(residual)")
    assert np.allclose(fixed["se"], test.se[0], rtol=1e-12) and np.allclose(fixed["df"], test.df[0], rtol=1e-12)
    assert fixed.loc["method", "df"] < 9 - 1  # a school-level effect: below J - 1
    half = stats.t.ppf(0.975, fixed["df"]) * fixed["se"]
    assert np.allclose(fixed["ci_high"] - fixed["estimate"], half) and np.allclose(fixed["estimate"] - fixed["ci_low"], half)
    # CR1 is statsmodels' cluster-robust SE, with t intervals on J - 1 df.
    sm = ols.fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(data[model.groups])[0]})
    fixed1 = cr1.estimates.drop("sd(residual)")
    assert np.allclose(fixed1["se"], sm.bse, rtol=1e-10) and (fixed1["df"] == 9 - 1).all()
    assert np.allclose(fixed1["ci_high"] - fixed1["estimate"], stats.t.ppf(0.975, 8) * fixed1["se"])
    # recovery keeps the fit's own interval and its df.
    rec = recovery(cr2, sim.truth)
    assert np.allclose(rec.loc["method", ["ci_low", "df"]].astype(float), fixed.loc["method", ["ci_low", "df"]].astype(float))
    assert rec.loc["method", "method"] == "as fitted (OLS (cluster-robust CR2))"
    # The ols_cluster analysis is CR1 with J - 1 df.
    from lmmsim.analyses import ANALYSES

    row = ANALYSES["ols_cluster"](data, model, ["method"]).iloc[0]
    assert np.isclose(row["se"], fixed1.loc["method", "se"], rtol=1e-12) and row["df"] == 9 - 1


@pytest.mark.parametrize("cluster", ["cr2", "CR0", 1, None])
def test_fit_ols_rejects_unknown_cluster_types(cluster):
    sim = simulate(scenarios.schools(n_schools=4, n_classrooms=2, n_students=3), seed=1)
    with pytest.raises(ValueError, match=r"cluster: got .*expected False, True or one of \['CR2', 'CR1'\]"):
        fit_ols(sim.data, scenarios.schools.model, cluster=cluster)


# ---------------------------------------------------------------- SE calibration


def test_sd_se_matches_the_textbook_formula():
    # For a balanced one-way design the REML estimate is the ANOVA estimate, whose
    # variance is known exactly (see `anova`); the fit's delta-method SE of sd(Intercept|g)
    # must agree with it, evaluated at the same estimates. (A formula error, e.g.
    # scaling statsmodels' SE of σ_u²/σ_ε² by σ̂_ε² alone, is off by √(1 + 1/(m−1)) here.)
    m = 2
    design = one_way_design(n_groups=50, m=m, sigma_u=2.0, sigma_e=1.0)
    for seed in range(3):
        data = simulate(design, seed=seed).data
        fit = fit_lmm(data, ONE_WAY)
        assert fit.status.ok, fit.status
        su2, se2, var_su2 = anova(data, m)
        assert su2 > 0
        row = fit.estimates.loc["sd(Intercept|g)"]
        textbook_se = np.sqrt(var_su2) / (2 * np.sqrt(su2))  # delta method: SE(σ²)/(2σ)
        # Same estimate, to a small fraction of its SE (optimizer precision) ...
        assert abs(row.estimate - np.sqrt(su2)) < 0.01 * textbook_se
        assert abs(fit.estimates.loc["sd(residual)", "estimate"] - np.sqrt(se2)) < 0.01 * textbook_se
        # ... and the same SE, to 1 %.
        assert row.se == pytest.approx(textbook_se, rel=0.01)


def test_variance_component_se_is_calibrated_monte_carlo():
    # 200 seeded replications of a small random-intercept design. The mean reported SE of
    # sd(Intercept|g) must match the empirical SD of the estimates within Monte Carlo
    # error: |ratio − 1| < 4 MCSE, with MCSE(ratio) by the delta method from the MCSE of
    # the mean SE (sd(se)/√R) and of the sample SD of the estimates,
    # Var(s) ≈ (μ4 − s⁴)/(4 s² R). σ_ε = 1 and m = 2 make the ICC large and the groups
    # small, where a mis-scaled SE is far off (by ~1.4). BFGS first: the fastest here.
    R, m = 200, 2
    design = one_way_design(n_groups=30, m=m, sigma_u=2.0, sigma_e=1.0, beta0=3.0)
    est, se, beta, beta_se = [], [], [], []
    for seed in np.random.SeedSequence(20240924).spawn(R):
        fit = fit_lmm(simulate(design, seed).data, ONE_WAY, optimizers=("bfgs", "powell", "nm"))
        assert fit.status.ok, fit.status  # σ_u = 2σ_ε: no boundary fits expected
        est.append(fit.estimates.loc["sd(Intercept|g)", "estimate"])
        se.append(fit.estimates.loc["sd(Intercept|g)", "se"])
        beta.append(fit.estimates.loc["Intercept", "estimate"])
        beta_se.append(fit.estimates.loc["Intercept", "se"])
    for name, e, s in (("sd(Intercept|g)", np.array(est), np.array(se)), ("Intercept", np.array(beta), np.array(beta_se))):
        sd_emp = e.std(ddof=1)
        mu4 = np.mean((e - e.mean()) ** 4)
        var_sd = (mu4 - e.var() ** 2) / (4 * e.var() * R)
        ratio = s.mean() / sd_emp
        mcse = ratio * np.sqrt(s.var(ddof=1) / R / s.mean() ** 2 + var_sd / sd_emp**2)
        assert abs(ratio - 1) < Z * mcse, (name, ratio, mcse)
    # The estimates centre on the truth too (within 4 MC standard errors).
    assert abs(np.mean(beta) - 3.0) < Z * np.std(beta, ddof=1) / np.sqrt(R)


def test_status_codes_are_one_rule_for_both_paths():
    from lmmsim import FitStatus
    from lmmsim.fit.status import status_codes

    cases = [(FitStatus(True), "ok"), (FitStatus(True, boundary=True), "boundary"), (FitStatus(False), "not_converged"),
             (FitStatus(False, boundary=True), "not_converged"), (FitStatus(True, failed=True), "failed")]
    for status, code in cases:
        assert status.code == code, status
    codes = status_codes([s.converged for s, _ in cases], [s.boundary for s, _ in cases], [s.failed for s, _ in cases])
    assert list(codes) == [code for _, code in cases]
    assert not FitStatus(True, failed=True).ok



def test_public_accessors_give_what_the_statsmodels_result_holds():
    sim = simulate(scenarios.plant_growth(n_plots=6), seed=3)
    lmm = fit_lmm(sim.data, scenarios.plant_growth.model)
    pd.testing.assert_frame_equal(lmm.random_effects, pd.DataFrame(lmm.result.random_effects).T)
    pd.testing.assert_series_equal(lmm.fixed_effects, lmm.result.fe_params)
    pd.testing.assert_series_equal(lmm.residuals, sim.data["height"] - lmm.fitted, check_names=False)
    ols = fit_ols(sim.data, scenarios.plant_growth.model)
    pd.testing.assert_series_equal(ols.fixed_effects, ols.result.params)
    with pytest.raises(ValueError, match="OLS fit has no random effects"):
        _ = ols.random_effects


@pytest.fixture(scope="module")
def rank_deficient():
    """A constant column beside the intercept (as when dropout empties a level): X has rank 2 < 3."""
    sims = [simulate(one_way_design(n_groups=10, m=4), seed=s) for s in range(3)]
    for sim in sims:
        sim.data["x"] = np.arange(len(sim.data)) % 5
        sim.data["c"] = 3.0
    return [sim.data for sim in sims], ModelSpec("y ~ x + c", groups="g")


def test_rank_deficient_x_fails_never_ok(rank_deficient):
    from lmmsim import analyses as an

    datasets, model = rank_deficient
    for fit in (fit_lmm(datasets[0], model), fit_ols(datasets[0], model), fit_ols(datasets[0], model, cluster=True)):
        assert fit.status.code == "failed" and fit.status.message.startswith("failed: X is rank deficient (rank 2 < 3")
        assert fit.estimates.empty
    for name in ("ols", "ols_cluster", "ols_cr2", "lmm_wald", "lmm_t", "cluster_means"):
        table = an.ANALYSES[name](datasets[0], model, ["x", "c"])
        assert list(table["status"]) == ["failed", "failed"], name
        assert table["message"].str.contains("rank").all(), name
    batch = an.batch_from_data(datasets, model)
    for need in ("ols", "reml", "ml"):
        with pytest.raises(ValueError, match="rank"):
            an.fit_batch(batch, [need])
