"""lmmsim.scenarios: the book's three studies, their defaults, validation and data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import Z, corr_se, sd_se

from lmmsim import Design, scenarios, simulate
from lmmsim.io import csv_text

NAMES = list(scenarios.SCENARIOS)


def test_registry_and_defaults():
    assert NAMES == ["schools", "blood_pressure", "plant_growth", "cluster_trial"]
    assert scenarios.schools.parameters == dict(
        n_schools=20, n_classrooms=4, n_students=20, beta0=50.0, beta1=5.0, beta2=3.0,
        sigma_school=6.0, sigma_classroom=4.0, sigma_e=10.0,
    )
    assert scenarios.blood_pressure.parameters == dict(
        n_patients=40, n_weeks=8, beta0=150.0, beta1=-0.3, beta2=0.0, beta3=-1.5,
        sigma_u0=12.0, sigma_u1=1.0, rho=-0.3, sigma_e=6.0, dropout=0.0, dropout_slope=1.0, phi=0.0,
    )
    assert scenarios.plant_growth.parameters == dict(
        n_plots=12, n_weeks=6, beta0=10.0, beta1=2.0, beta2=0.8, beta3=1.6, shift_a=0.0, shift_b=0.0,
        sigma_u0=1.0, sigma_u1=0.4, rho=0.2, sigma_e=0.8, phi=0.0,
    )
    assert scenarios.cluster_trial.parameters == dict(
        n_clusters=30, cluster_size=20, beta0=0.0, beta1=0.0, beta2=0.5, sigma_u=1.0, sigma_e=3.0,
    )
    assert scenarios.cluster_trial.model.lme4 == "y ~ treatment + x + (1 | cluster)"
    assert scenarios.plant_growth.model.lme4 == "height ~ week * treatment + (1 + week | plot)"
    assert scenarios.blood_pressure.model.lme4 == "bp ~ week * drug + (1 + week | patient)"
    assert scenarios.schools.model.lme4 == "score ~ method + ses + (1 | school) + (1 | school:classroom)"
    for name in NAMES:
        scenario = scenarios.get(name)
        assert scenario.name == name
        assert isinstance(scenario(), Design)
        assert scenario.summary and "\n" not in scenario.summary
        assert scenario.model.outcome == scenario().outcome


def test_unknown_scenario():
    with pytest.raises(ValueError, match=r"scenario: got 'school', expected one of \['schools', 'blood_pressure', 'plant_growth', 'cluster_trial'\]"):
        scenarios.get("school")


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes_different_seed_different_data(name):
    scenario = scenarios.get(name)
    a, b, c = (simulate(scenario(), seed=s) for s in (101, 101, 102))
    assert csv_text(a.data) == csv_text(b.data)
    assert a.truth.to_json() == b.truth.to_json()
    assert csv_text(a.data) != csv_text(c.data)
    outcome = scenario.model.outcome
    assert not np.any(a.data[outcome].to_numpy() == c.data[outcome].to_numpy())


def test_schools_data():
    data = simulate(scenarios.schools(n_schools=10, n_classrooms=3, n_students=5), seed=1).data
    assert list(data.columns) == ["school", "classroom", "student", "method", "ses", "score"]
    assert len(data) == 10 * 3 * 5
    assert data["classroom"].nunique() == 30 and (data.groupby("classroom")["school"].nunique() == 1).all()
    per_school = data.groupby("school")["method"].agg(["first", "nunique"])
    assert (per_school["nunique"] == 1).all() and per_school["first"].sum() == 5  # half the schools
    assert data["ses"].nunique() == len(data)  # student level


def test_blood_pressure_data():
    data = simulate(scenarios.blood_pressure(n_patients=10, n_weeks=5), seed=1).data
    assert list(data.columns) == ["patient", "week", "drug", "bp"]
    assert (data.groupby("patient")["week"].apply(list) == [[0, 1, 2, 3, 4]] * 10).all()
    per_patient = data.groupby("patient")["drug"].agg(["first", "nunique"])
    assert (per_patient["nunique"] == 1).all() and per_patient["first"].sum() == 5


def test_blood_pressure_dropout():
    design = scenarios.blood_pressure(n_patients=200, dropout=0.2)
    assert design.dropout is not None and design.dropout.rate == 0.2 and design.dropout.slope == 1.0
    assert scenarios.blood_pressure().dropout is None
    data = simulate(design, seed=4).data
    assert len(data) < 200 * 8
    weeks = data.groupby("patient")["week"].agg(["min", "max", "count"])
    assert (weeks["min"] == 0).all() and (weeks["max"] == weeks["count"] - 1).all()


def test_plant_growth_data():
    data = simulate(scenarios.plant_growth(n_plots=14), seed=1).data
    assert list(data.columns) == ["plot", "week", "treatment", "height"]
    assert list(data["treatment"].cat.categories) == ["Control", "FertA", "FertB"]
    counts = data.groupby("plot")["treatment"].first().value_counts()
    assert sorted(counts.tolist()) == [4, 5, 5]
    # The printed-equation variant: intercept shifts reach β.
    shifted = scenarios.plant_growth(shift_a=1.5, shift_b=-2.0)
    assert shifted.beta["treatment[T.FertA]"] == 1.5 and shifted.beta["treatment[T.FertB]"] == -2.0


def test_cluster_trial_data():
    data = simulate(scenarios.cluster_trial(n_clusters=10, cluster_size=4), seed=1).data
    assert list(data.columns) == ["cluster", "member", "treatment", "x", "y"]
    assert len(data) == 40 and data["member"].nunique() == 40
    per_cluster = data.groupby("cluster")["treatment"].agg(["first", "nunique"])
    assert (per_cluster["nunique"] == 1).all() and per_cluster["first"].sum() == 5  # half the clusters
    truth = simulate(scenarios.cluster_trial(), seed=1).truth
    assert truth.icc == pytest.approx({"cluster": 0.1})  # the docstring's ICC


@pytest.mark.parametrize(
    "name, params, factor, terms",
    [
        ("schools", dict(n_schools=3000, n_classrooms=2, n_students=2, sigma_school=6.0, sigma_classroom=4.0), "school", {"Intercept": 6.0}),
        ("schools", dict(n_schools=1500, n_classrooms=2, n_students=2, sigma_school=6.0, sigma_classroom=4.0), "classroom", {"Intercept": 4.0}),
        ("blood_pressure", dict(n_patients=3000, n_weeks=2), "patient", {"Intercept": 12.0, "week": 1.0}),
        ("plant_growth", dict(n_plots=3000, n_weeks=2), "plot", {"Intercept": 1.0, "week": 0.4}),
        ("cluster_trial", dict(n_clusters=3000, cluster_size=2), "cluster", {"Intercept": 1.0}),
    ],
)
def test_realised_random_effects_follow_the_scenario(name, params, factor, terms):
    scenario = scenarios.get(name)
    design = scenario(**params)
    sim = simulate(design, seed=77)
    u = sim.random_effects[factor]
    n = len(u)
    for term, sigma in terms.items():
        assert abs(u[term].std(ddof=1) - sigma) < Z * sd_se(sigma, n), term  # SE ≈ σ/√(2(n−1))
    if len(terms) == 2:
        rho = design.random[0].corr[0][1]
        r = np.corrcoef(u["Intercept"], u["week"])[0, 1]
        assert abs(r - rho) < Z * corr_se(rho, n)  # SE ≈ (1 − ρ²)/√(n − 1)
    eps = sim.residuals
    sigma_e = design.sigma_e
    assert abs(eps.std(ddof=1) - sigma_e) < Z * sd_se(sigma_e, len(eps))


BAD_PARAMETERS = [
    # (scenario, parameters, words the message must contain)
    ("schools", dict(n_school=10), ["'n_school'", "not a parameter of scenario 'schools'", "n_schools"]),
    ("schools", dict(n_schools=1), ["n_schools", "1", ">= 2"]),  # fewer than 2 groups
    ("blood_pressure", dict(n_patients=1), ["n_patients", "1", ">= 2"]),
    ("plant_growth", dict(n_plots=2), ["n_plots", "2", ">= 3"]),  # one plot per treatment at least
    ("schools", dict(n_students=0), ["n_students", "0", ">= 1"]),  # zero observations per group
    ("schools", dict(n_classrooms=0), ["n_classrooms", "0", ">= 1"]),
    ("plant_growth", dict(n_weeks=0), ["n_weeks", "0", ">= 2"]),
    ("schools", dict(n_schools=10.5), ["n_schools", "10.5", "whole number"]),  # non-integer count
    ("blood_pressure", dict(n_weeks="8"), ["n_weeks", "'8'", "whole number"]),
    ("schools", dict(n_schools=True), ["n_schools", "True", "whole number"]),
    ("schools", dict(sigma_school=-1.0), ["sigma_school", "-1.0", ">= 0"]),  # negative SD
    ("plant_growth", dict(sigma_e=math.inf), ["sigma_e", "inf", "finite"]),  # non-finite SD
    ("blood_pressure", dict(sigma_u1=math.nan), ["sigma_u1", "nan", "finite"]),
    ("blood_pressure", dict(rho=1.2), ["rho", "1.2", "[-1, 1]"]),  # correlation out of range
    ("plant_growth", dict(rho=-1.5), ["rho", "-1.5", "[-1, 1]"]),
    ("plant_growth", dict(rho=math.nan), ["rho", "nan", "finite"]),
    ("blood_pressure", dict(dropout=1.0), ["dropout", "1.0", "[0, 1)"]),
    ("blood_pressure", dict(dropout=-0.2), ["dropout", "-0.2", "[0, 1)"]),
    ("cluster_trial", dict(n_clusters=1), ["n_clusters", "1", ">= 2"]),
    ("cluster_trial", dict(cluster_size=0), ["cluster_size", "0", ">= 2"]),
    ("cluster_trial", dict(cluster_size=2.5), ["cluster_size", "2.5", "whole number"]),
    ("cluster_trial", dict(sigma_u=-0.1), ["sigma_u", "-0.1", ">= 0"]),
    ("schools", dict(beta1="big"), ["beta1", "'big'", "finite number"]),
    ("plant_growth", dict(beta0=-math.inf), ["beta0", "-inf", "finite"]),
]


@pytest.mark.parametrize("name, params, words", BAD_PARAMETERS)
def test_bad_parameters(name, params, words):
    with pytest.raises(ValueError) as info:
        scenarios.get(name)(**params)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_valid_edge_parameters():
    # The smallest allowed sizes and the boundary values are accepted.
    assert scenarios.schools(n_schools=2, n_classrooms=1, n_students=1).n_obs == 2
    assert scenarios.plant_growth(n_plots=3, n_weeks=2).n_obs == 6
    assert scenarios.blood_pressure(rho=-1.0, sigma_u1=0.0).random[0].sd["week"] == 0.0
    assert scenarios.schools(n_schools=4.0).factors[0].n == 4


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_declares_its_kind(name):
    scenario = scenarios.get(name)
    assert list(scenario.kinds) == list(scenario.parameters)
    for param, default in scenario.parameters.items():
        kind = scenario.kinds[param]
        assert kind.name in scenarios.KINDS
        assert (kind.name == "count") == isinstance(default, int), param
        assert kind.check(param, default) == default  # the defaults are allowed


def test_kinds_check_their_ranges():
    assert scenarios.SD.check("s", 0) == 0.0
    for kind, value, words in [(scenarios.SD, -1, "standard deviation"), (scenarios.CORRELATION, 1.5, "[-1, 1]"),
                               (scenarios.PROPORTION, 1.0, "[0, 1)"), (scenarios.count(2), 1, ">= 2"),
                               (scenarios.REAL, float("nan"), "finite")]:
        with pytest.raises(ValueError, match=r"^v: got") as err:
            kind.check("v", value)
        assert words in str(err.value)
    with pytest.raises(ValueError, match="kind: got 'size'"):
        scenarios.Kind("size")
    with pytest.raises(ValueError, match="kinds: got"):
        scenarios.Scenario("x", scenarios.cluster_trial.build, scenarios.cluster_trial.model, {"n_clusters": scenarios.count(2)})
