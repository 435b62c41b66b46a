"""lmmsim.simulate: layout of the rows, reproducibility, and that the draws follow the
design (statistical checks with tolerances derived from standard errors)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
from conftest import Z, corr_se, crossed_design, one_way_design, sd_se

from lmmsim import AR1, Categorical, Design, Dropout, Factor, Indicator, Normal, RandomEffect, simulate
from lmmsim.io import csv_text

# ---------------------------------------------------------------- layout


def nested_design(**overrides) -> Design:
    fields = dict(
        factors=(Factor("school", 12), Factor("classroom", 3, within="school"), Factor("student", 4, within="classroom")),
        covariates=(Indicator("method", level="school"), Normal("ses")),
        formula="method + ses",
        beta={"Intercept": 50.0, "method": 5.0, "ses": 3.0},
        random=(RandomEffect("school", {"Intercept": 6.0}), RandomEffect("classroom", {"Intercept": 4.0})),
        sigma_e=10.0,
        outcome="score",
    )
    fields.update(overrides)
    return Design(**fields)


def test_nested_labels_are_unique_per_parent():
    sim = simulate(nested_design(), seed=1)
    data = sim.data
    assert list(data.columns) == ["school", "classroom", "student", "method", "ses", "score"]
    assert len(data) == 12 * 3 * 4
    assert data["school"].nunique() == 12
    # Every classroom label is unique across schools, belongs to exactly one school and
    # carries that school's label as prefix ("school03/classroom2").
    assert data["classroom"].nunique() == 12 * 3
    assert (data.groupby("classroom")["school"].nunique() == 1).all()
    assert all(c.startswith(s + "/") for s, c in zip(data["school"], data["classroom"]))
    assert (data.groupby("school")["classroom"].nunique() == 3).all()
    assert data["student"].nunique() == len(data)
    assert (data.groupby("classroom").size() == 4).all()
    # Zero-padded labels sort in unit order.
    assert sorted(data["school"].unique()) == [f"school{k:02d}" for k in range(1, 13)]
    # The realised random effects are indexed by these same labels.
    assert set(sim.random_effects["classroom"].index) == set(data["classroom"])
    assert set(sim.random_effects["school"].index) == set(data["school"])


def test_occasions_hold_their_values():
    design = Design(
        factors=(Factor("plot", 4), Factor("week", 5, within="plot", values=range(5)), ),
        formula="week",
        beta={"Intercept": 0.0, "week": 1.0},
        random=(RandomEffect("plot", {"Intercept": 1.0}),),
        sigma_e=1.0,
    )
    data = simulate(design, seed=2).data
    assert data["week"].dtype.kind == "i"
    assert (data.groupby("plot")["week"].apply(list) == [[0, 1, 2, 3, 4]] * 4).all()
    halves = Design(
        factors=(Factor("plot", 4), Factor("t", 2, within="plot", values=(0.5, 1.5))),
        formula="t",
        beta={"Intercept": 0.0, "t": 1.0},
        random=(RandomEffect("plot", {"Intercept": 1.0}),),
        sigma_e=1.0,
    )
    assert simulate(halves, seed=2).data["t"].tolist() == [0.5, 1.5] * 4


def test_crossed_design_has_every_pair_once():
    design = crossed_design()
    data = simulate(design, seed=3).data
    assert len(data) == 600
    assert not data.duplicated(["subject", "item"]).any()
    assert data["subject"].nunique() == 30 and data["item"].nunique() == 20
    assert (data.groupby("item")["condition"].nunique() == 1).all()
    assert data.groupby("item")["condition"].first().sum() == 10


def test_outcome_is_x_beta_plus_z_u_plus_e():
    # y = Xβ + Zu + ε exactly, from the realised u and ε the simulation reports.
    design = Design(
        factors=(Factor("g", 15), Factor("week", 4, within="g", values=range(4))),
        covariates=(Categorical("arm", ("C", "T1", "T2"), level="g"),),
        formula="week * arm",
        beta={"Intercept": 3.0, "arm[T.T1]": 1.0, "arm[T.T2]": -1.0, "week": 0.5, "week:arm[T.T1]": 0.2, "week:arm[T.T2]": 0.4},
        random=(RandomEffect("g", {"Intercept": 1.5, "week": 0.3}, corr=0.4),),
        sigma_e=0.7,
    )
    sim = simulate(design, seed=4)
    data = sim.data
    X = patsy.dmatrix(design.formula, data, return_type="dataframe")
    xb = X.to_numpy() @ np.array([design.beta[c] for c in X.columns])
    u = sim.random_effects["g"].loc[data["g"]].to_numpy()
    zu = u[:, 0] + u[:, 1] * data["week"].to_numpy()
    np.testing.assert_allclose(data["y"].to_numpy(), xb + zu + sim.residuals.to_numpy(), rtol=0, atol=1e-10)
    assert list(sim.random_effects["g"].columns) == ["Intercept", "week"]


# ---------------------------------------------------------------- reproducibility


def test_same_seed_same_data_different_seed_different_data():
    design = nested_design()
    a, b, c = simulate(design, seed=11), simulate(design, seed=11), simulate(design, seed=12)
    assert csv_text(a.data) == csv_text(b.data)
    pd.testing.assert_frame_equal(a.random_effects["school"], b.random_effects["school"])
    pd.testing.assert_series_equal(a.residuals, b.residuals)
    assert csv_text(a.data) != csv_text(c.data)
    assert not np.allclose(a.data["score"], c.data["score"])
    assert a.truth.provenance["seed"] == 11


def test_seed_sequence_gives_same_data_every_time():
    # Reusing one SeedSequence object (or a spawned child) must not change the data:
    # the seed is the only source of randomness.
    design = nested_design()
    seed = np.random.SeedSequence(2024)
    first, second = simulate(design, seed), simulate(design, seed)
    pd.testing.assert_frame_equal(first.data, second.data)
    child = np.random.SeedSequence(7).spawn(3)[2]
    pd.testing.assert_frame_equal(simulate(design, child).data, simulate(design, child).data)
    # An int seed and SeedSequence(int) are the same seed.
    pd.testing.assert_frame_equal(simulate(design, 5).data, simulate(design, np.random.SeedSequence(5)).data)
    # Sibling seeds differ.
    kids = np.random.SeedSequence(7).spawn(2)
    assert not simulate(design, kids[0]).data.equals(simulate(design, kids[1]).data)


def test_stages_use_separate_streams():
    # Changing σ_ε changes only the residuals, which scale with it; the covariates and
    # the random effects stay the same draws.
    one = simulate(nested_design(sigma_e=1.0), seed=8)
    two = simulate(nested_design(sigma_e=2.0), seed=8)
    pd.testing.assert_series_equal(one.data["ses"], two.data["ses"])
    pd.testing.assert_series_equal(one.data["method"], two.data["method"])
    pd.testing.assert_frame_equal(one.random_effects["classroom"], two.random_effects["classroom"])
    np.testing.assert_allclose(two.residuals, 2 * one.residuals, rtol=1e-12)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, None])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match=r"seed: got .*expected a non-negative integer or a numpy SeedSequence"):
        simulate(nested_design(), seed=seed)


def test_bad_design_input():
    with pytest.raises(ValueError, match="design: got dict, expected an lmmsim Design"):
        simulate({"factors": []}, seed=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"formula: 'age' cannot be built"):
        simulate(nested_design(formula="age", beta={"Intercept": 1, "age": 1}), seed=1)
    with pytest.raises(ValueError, match=r"beta: names .* do not match .*missing \['ses'\], unknown \['sex'\]"):
        simulate(nested_design(beta={"Intercept": 1, "method": 1, "sex": 1}), seed=1)
    branching = nested_design(
        factors=(Factor("school", 4), Factor("classroom", 2, within="school"), Factor("team", 2, within="school")),
        random=(RandomEffect("school", {"Intercept": 1}),),
    )
    with pytest.raises(ValueError, match="factors: the tree under 'school' branches"):
        simulate(branching, seed=1)


# ---------------------------------------------------------------- the draws follow the design

J_BIG = 20000  # units for the distribution checks: 4 SE of an SD ≈ 2 %


def test_random_effects_and_residuals_have_the_design_sds_and_correlations():
    sds = {"Intercept": 2.0, "a": 0.7, "b": 1.3}
    corr = np.array([[1.0, -0.5, 0.3], [-0.5, 1.0, 0.2], [0.3, 0.2, 1.0]])
    design = Design(
        factors=(Factor("g", J_BIG), Factor("obs", 3, within="g")),
        covariates=(Normal("a", mean=1.0, sd=2.0), Normal("b", level="g")),
        formula="a + b",
        beta={"Intercept": 0.0, "a": 1.0, "b": 1.0},
        random=(RandomEffect("g", sds, corr=corr),),
        sigma_e=1.5,
    )
    sim = simulate(design, seed=20240601)
    u = sim.random_effects["g"]
    assert u.shape == (J_BIG, 3)
    for term, sigma in sds.items():
        # Sample SD of J draws: SE ≈ σ/√(2(J−1)); sample mean: SE = σ/√J.
        assert abs(u[term].std(ddof=1) - sigma) < Z * sd_se(sigma, J_BIG), term
        assert abs(u[term].mean()) < Z * sigma / np.sqrt(J_BIG), term
    empirical = np.corrcoef(u.to_numpy(), rowvar=False)
    for i in range(3):
        for j in range(i + 1, 3):
            # Sample correlation: SE ≈ (1 − ρ²)/√(J − 1).
            assert abs(empirical[i, j] - corr[i, j]) < Z * corr_se(corr[i, j], J_BIG), (i, j)
    n = len(sim.residuals)
    assert abs(sim.residuals.std(ddof=1) - 1.5) < Z * sd_se(1.5, n)
    assert abs(sim.residuals.mean()) < Z * 1.5 / np.sqrt(n)
    # Covariates: observation-level N(1, 2²); unit-level N(0, 1), constant within unit.
    a = sim.data["a"]
    assert abs(a.mean() - 1.0) < Z * 2.0 / np.sqrt(n) and abs(a.std(ddof=1) - 2.0) < Z * sd_se(2.0, n)
    assert (sim.data.groupby("g")["b"].nunique() == 1).all()
    b_units = sim.data.groupby("g")["b"].first()
    assert abs(b_units.std(ddof=1) - 1.0) < Z * sd_se(1.0, J_BIG)


def test_perfect_correlation_gives_proportional_effects():
    design = Design(
        factors=(Factor("g", 50), Factor("w", 2, within="g", values=(0, 1))),
        formula="1",
        beta={"Intercept": 0.0},
        random=(RandomEffect("g", {"Intercept": 2.0, "w": 0.5}, corr=-1.0),),
        sigma_e=1.0,
    )
    u = simulate(design, seed=5).random_effects["g"]
    np.testing.assert_allclose(u["w"], -0.25 * u["Intercept"], atol=1e-12)
    assert u["Intercept"].std() > 0


def test_zero_sds_give_zero_effects():
    sim = simulate(one_way_design(sigma_u=0.0, sigma_e=0.0, beta0=7.0), seed=1)
    assert (sim.random_effects["g"]["Intercept"] == 0).all()
    assert (sim.data["y"] == 7.0).all()


def test_indicator_is_balanced_and_randomised():
    n_units, share = 2001, 0.3
    design = Design(
        factors=(Factor("g", n_units), Factor("obs", 2, within="g")),
        covariates=(Indicator("t", share=share, level="g"), Indicator("p", share=0.5)),
        formula="t + p",
        beta={"Intercept": 0.0, "t": 1.0, "p": 1.0},
        random=(RandomEffect("g", {"Intercept": 1.0}),),
        sigma_e=1.0,
    )
    data = simulate(design, seed=9).data
    per_unit = data.groupby("g", sort=True)["t"].agg(["first", "nunique"])
    assert (per_unit["nunique"] == 1).all()  # one arm per unit
    treated = per_unit["first"].to_numpy()
    assert set(np.unique(treated)) == {0, 1}
    assert treated.sum() == round(share * n_units)  # exactly as balanced as the count allows
    # Randomised, not "the first k units": the treated count among the first half of
    # the units is hypergeometric with mean k·h/N and SD √(h·p(1−p)(N−h)/(N−1)).
    h, k = n_units // 2, treated.sum()
    p = k / n_units
    sd = np.sqrt(h * p * (1 - p) * (n_units - h) / (n_units - 1))
    assert abs(treated[:h].sum() - k * h / n_units) < Z * sd
    # Per observation: exactly half of the 4002 rows.
    assert data["p"].sum() == len(data) // 2


def test_recoded_indicator_draws_the_same_arms_with_other_values():
    """values=(-0.5, 0.5) (sum coding) recodes the arms of the default 0/1 draw, and a
    random slope on it varies as the design says."""

    def design(values):
        return Design(
            factors=(Factor("subject", 40), Factor("item", 10)),
            covariates=(Indicator("cond", values=values),),
            formula="cond",
            beta={"Intercept": 0.0, "cond": 0.0},
            random=(RandomEffect("subject", {"Intercept": 1.0, "cond": 2.0}, corr=0.5),),
            sigma_e=1.0,
        )

    treatment, summed = simulate(design((0, 1)), seed=4), simulate(design((-0.5, 0.5)), seed=4)
    assert treatment.data["cond"].dtype.kind == "i" and summed.data["cond"].dtype.kind == "f"
    assert np.array_equal(summed.data["cond"], treatment.data["cond"] - 0.5)
    assert Indicator("c", values=(0.0, 1.0)).values == (0, 1)
    u = summed.random_effects["subject"].to_numpy()
    eta = u[:, 0].repeat(10) + u[:, 1].repeat(10) * summed.data["cond"].to_numpy()
    assert np.allclose(summed.data["y"] - summed.residuals, eta)


def test_categorical_is_balanced_and_randomised():
    levels = ("Control", "A", "B")
    n_units = 1000
    design = Design(
        factors=(Factor("plot", n_units), Factor("week", 2, within="plot", values=(0, 1))),
        covariates=(Categorical("treatment", levels, level="plot"),),
        formula="treatment",
        beta={"Intercept": 0.0, "treatment[T.A]": 1.0, "treatment[T.B]": 2.0},
        random=(RandomEffect("plot", {"Intercept": 1.0}),),
        sigma_e=1.0,
    )
    data = simulate(design, seed=10).data
    assert list(data["treatment"].cat.categories) == list(levels)  # reference level first
    per_plot = data.groupby("plot", sort=True)["treatment"].agg(["first", "nunique"])
    assert (per_plot["nunique"] == 1).all()
    counts = per_plot["first"].value_counts()
    assert set(counts.index) == set(levels)
    assert counts.max() - counts.min() <= 1
    # Randomised: each level's count among the first half of plots is hypergeometric.
    h = n_units // 2
    first_half = per_plot["first"].iloc[:h].value_counts()
    for level in levels:
        k = counts[level]
        p = k / n_units
        sd = np.sqrt(h * p * (1 - p) * (n_units - h) / (n_units - 1))
        assert abs(first_half[level] - k * h / n_units) < Z * sd, level


def dropout_design(rate: float | None, slope: float = 1.0, n_units: int = 3000, n_occasions: int = 6) -> Design:
    return Design(
        factors=(Factor("patient", n_units), Factor("week", n_occasions, within="patient", values=range(n_occasions))),
        covariates=(Indicator("drug", level="patient"),),
        formula="week * drug",
        beta={"Intercept": 150.0, "week": -0.3, "drug": 0.0, "week:drug": -1.5},
        random=(RandomEffect("patient", {"Intercept": 12.0, "week": 1.0}, corr=-0.3),),
        sigma_e=6.0,
        outcome="bp",
        dropout=None if rate is None else Dropout("patient", "week", rate=rate, slope=slope),
    )


def test_dropout_is_monotone_and_leaves_other_draws_unchanged():
    full = simulate(dropout_design(None), seed=31).data
    kept = simulate(dropout_design(0.15), seed=31).data
    assert 0 < len(kept) < len(full)
    # Monotone: each patient's weeks are 0, 1, ..., k − 1 (the baseline is always kept).
    weeks = kept.groupby("patient")["week"].agg(["min", "max", "count"])
    assert (weeks["min"] == 0).all()
    assert (weeks["max"] == weeks["count"] - 1).all()
    assert kept["patient"].nunique() == full["patient"].nunique()
    # The kept rows are exactly the rows of the complete data (dropout has its own stream).
    merged = kept.merge(full, on=["patient", "week"], suffixes=("", "_full"))
    assert len(merged) == len(kept)
    assert (merged["bp"] == merged["bp_full"]).all() and (merged["drug"] == merged["drug_full"]).all()
    # rate 0 drops nothing.
    assert len(simulate(dropout_design(0.0), seed=31).data) == len(full)


def test_dropout_is_missing_at_random():
    # P(leave after week t) = logistic(logit(rate) + slope · z_t), z_t the standardised
    # reading at week t (what was observed). Logistic regression of "left after t" on
    # z_t and on z_{t+1} (the next, unobserved reading) must give back logit(rate) and
    # slope, and 0 for z_{t+1}: dropout depends on the observed value only (MAR), and a
    # higher last value means more dropout.
    rate, slope = 0.12, 1.0
    full = simulate(dropout_design(None), seed=32).data
    kept = simulate(dropout_design(rate, slope), seed=32).data
    y = full["bp"]
    full = full.assign(z=(y - y.mean()) / y.std(ddof=0))
    full["z_next"] = full.groupby("patient")["z"].shift(-1)
    observed = set(zip(kept["patient"], kept["week"]))
    rows = full[full["week"] < full["week"].max()].copy()
    rows = rows[[(p, w) in observed for p, w in zip(rows["patient"], rows["week"])]]
    rows["left"] = [int((p, w + 1) not in observed) for p, w in zip(rows["patient"], rows["week"])]
    X = sm.add_constant(rows[["z", "z_next"]].to_numpy())
    fit = sm.Logit(rows["left"].to_numpy(), X).fit(disp=0)
    est, se = fit.params, fit.bse
    assert abs(est[0] - np.log(rate / (1 - rate))) < Z * se[0]
    assert abs(est[1] - slope) < Z * se[1]
    assert est[1] > Z * se[1]  # higher last value → more dropout
    assert abs(est[2]) < Z * se[2]  # the unobserved next value plays no part


# ---------------------------------------------------------------- AR(1) residuals


def ar1_series(phi: float, n_units: int = 3000, m: int = 6) -> np.ndarray:
    """The simulated residuals ε of an AR(1) design as an (n_units, m) array, in week order."""
    design = Design(
        factors=(Factor("plot", n_units), Factor("week", m, within="plot", values=range(m))),
        formula="1",
        beta={"Intercept": 0.0},
        random=(RandomEffect("plot", {"Intercept": 0.5}),),
        sigma_e=2.0,
        residual=AR1(phi, "plot", "week"),
    )
    sim = simulate(design, seed=11)
    frame = sim.data.assign(e=sim.residuals)
    return frame.pivot(index="plot", columns="week", values="e").to_numpy()


@pytest.mark.parametrize("phi", [0.0, 0.5, -0.6, 0.9])
def test_ar1_residuals_have_the_lag_correlations_of_phi(phi):
    # Per plot, the mean of e_t e_{t+k} / σ_ε² has expectation φ^k (σ_ε is known, the
    # series stationary); plots are independent, so the SE of the mean over plots is
    # their SD / √J.
    e = ar1_series(phi) / 2.0
    for lag in (0, 1, 2):
        per_plot = (e[:, lag:] * e[:, : e.shape[1] - lag]).mean(axis=1)
        se = per_plot.std(ddof=1) / np.sqrt(len(per_plot))
        assert abs(per_plot.mean() - phi**lag) < Z * se, (lag, per_plot.mean(), phi**lag, se)


def test_zero_phi_scenarios_keep_their_data():
    # phi = 0 is the independent design itself, so existing data are unchanged.
    from lmmsim import scenarios

    for scenario in (scenarios.plant_growth, scenarios.blood_pressure):
        assert scenario(phi=0.0) == scenario()
        with_ar1 = simulate(scenario(phi=0.5), seed=4)
        plain = simulate(scenario(), seed=4)
        assert with_ar1.truth.phi == 0.5 and plain.truth.phi == 0.0
        # Covariates and random effects come from their own streams: only ε changes.
        pd.testing.assert_frame_equal(with_ar1.random_effects[scenario.model.groups],
                                      plain.random_effects[scenario.model.groups])
        assert not np.allclose(with_ar1.residuals, plain.residuals)
