"""lmmsim.truth: parameter names, ICC, and a lossless JSON round trip."""

from __future__ import annotations

import json
import math

import pytest

from lmmsim import Truth, scenarios, simulate


def test_parameters_use_the_fit_names():
    truth = simulate(scenarios.plant_growth(), seed=1).truth
    assert truth.parameters() == {
        "Intercept": 10.0,
        "treatment[T.FertA]": 0.0,
        "treatment[T.FertB]": 0.0,
        "week": 2.0,
        "week:treatment[T.FertA]": 0.8,
        "week:treatment[T.FertB]": 1.6,
        "sd(Intercept|plot)": 1.0,
        "sd(week|plot)": 0.4,
        "cor(Intercept,week|plot)": 0.2,
        "sd(residual)": 0.8,
    }
    nested = simulate(scenarios.schools(n_schools=4), seed=1).truth.parameters()
    assert nested == {
        "Intercept": 50.0,
        "method": 5.0,
        "ses": 3.0,
        "sd(Intercept|school)": 6.0,
        "sd(Intercept|classroom)": 4.0,
        "sd(residual)": 10.0,
    }


def test_icc_is_each_factors_share_of_the_variance():
    truth = simulate(scenarios.schools(n_schools=4), seed=1).truth
    total = 6.0**2 + 4.0**2 + 10.0**2
    assert truth.icc == pytest.approx({"school": 36 / total, "classroom": 16 / total})
    # Random slopes: the intercept variance only (slope covariates at zero).
    bp = simulate(scenarios.blood_pressure(n_patients=4), seed=1).truth
    assert bp.icc == pytest.approx({"patient": 144 / (144 + 36)})
    zero = Truth(beta={"Intercept": 1.0}, sd={"g": {"Intercept": 0.0}}, corr={"g": ((1.0,),)}, sigma_e=0.0)
    assert zero.icc == {"g": 0.0}


@pytest.mark.parametrize("name", ["schools", "blood_pressure", "plant_growth"])
def test_json_round_trip_is_lossless(name):
    scenario = scenarios.get(name)
    truth = simulate(scenario(), seed=3, provenance={"scenario": name, "parameters": {"sigma_e": 0.1 + 0.2}}).truth
    text = truth.to_json()
    back = Truth.from_json(text)
    assert back == truth
    assert back.parameters() == truth.parameters()
    assert back.to_json() == text  # and the text is stable
    assert json.loads(text)["icc"] == pytest.approx(truth.icc)


def test_awkward_floats_survive_exactly():
    x = 0.1 + 0.2  # 0.30000000000000004
    tiny, big = 5e-324, 1.7976931348623157e308
    truth = Truth(
        beta={"Intercept": x, "week": -tiny, "drug": big},
        sd={"g": {"Intercept": x, "week": 1 / 3}},
        corr={"g": ((1.0, -x), (-x, 1.0))},
        sigma_e=2 / 3,
        provenance={"seed": 2**63 + 1, "parameters": {"rho": -x}, "tags": ["a", "b"]},
    )
    back = Truth.from_json(truth.to_json())
    assert back == truth
    assert back.beta["Intercept"] == x and back.beta["Intercept"] != 0.3
    assert back.beta["week"] == -tiny and back.beta["drug"] == big
    assert back.sd["g"]["week"] == 1 / 3
    assert back.corr["g"][0][1] == -x
    assert back.sigma_e == 2 / 3
    assert back.provenance["seed"] == 2**63 + 1
    assert back.provenance["tags"] == ("a", "b")


def test_truth_is_immutable():
    truth = simulate(scenarios.plant_growth(), seed=1).truth
    with pytest.raises(TypeError):
        truth.beta["week"] = 0.0  # type: ignore[index]
    with pytest.raises(TypeError):
        truth.sd["plot"]["week"] = 0.0  # type: ignore[index]


def test_bad_truth_input():
    with pytest.raises(ValueError, match=r"truth: missing keys \['corr', 'sigma_e'\]"):
        Truth.from_dict({"beta": {}, "sd": {}})
    nan = Truth(beta={"Intercept": math.nan}, sd={}, corr={}, sigma_e=1.0)
    with pytest.raises(ValueError):  # JSON has no NaN; refuse rather than write invalid JSON
        nan.to_json()
