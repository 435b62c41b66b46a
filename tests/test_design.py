"""lmmsim.design: the Design building blocks and their validation.

Every bad input raises ValueError whose message names the parameter, shows the value
and says what is allowed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import crossed_design

from lmmsim import AR1, Categorical, Design, Dropout, Factor, Indicator, Normal, RandomEffect
from lmmsim.validate import check_count, check_finite, check_name, check_sd


def simple(**overrides) -> Design:
    """A small valid design; keyword arguments replace its fields."""
    fields = dict(
        factors=(Factor("g", 5), Factor("obs", 3, within="g", values=range(3))),
        covariates=(Normal("x"),),
        formula="x",
        beta={"Intercept": 1.0, "x": 2.0},
        random=(RandomEffect("g", {"Intercept": 1.0, "obs": 0.5}, corr=0.3),),
        sigma_e=1.0,
    )
    fields.update(overrides)
    return Design(**fields)


# ---------------------------------------------------------------- valid designs


def test_valid_design_counts_and_freezing():
    design = simple()
    assert design.n_obs == 15
    assert design.leaf_counts() == [15]
    assert design.random[0].terms == ("Intercept", "obs")
    assert design.factors[1].values == (0.0, 1.0, 2.0)
    # Plain data, immutable: mappings cannot be changed behind the truth's back.
    with pytest.raises(TypeError):
        design.beta["x"] = 3.0  # type: ignore[index]
    with pytest.raises(TypeError):
        design.random[0].sd["Intercept"] = 2.0  # type: ignore[index]


def test_crossed_and_nested_counts():
    crossed = crossed_design()
    assert crossed.leaf_counts() == [30, 20]
    assert crossed.n_obs == 600
    nested = Design(
        factors=(Factor("school", 4), Factor("classroom", 3, within="school"), Factor("student", 5, within="classroom")),
        formula="1",
        beta={"Intercept": 0},
        random=(RandomEffect("school", {"Intercept": 1}), RandomEffect("classroom", {"Intercept": 1})),
        sigma_e=1,
    )
    assert nested.leaf_counts() == [60]


def test_covariance_matrix_from_sd_and_corr():
    effect = RandomEffect("g", {"Intercept": 2.0, "week": 0.5}, corr=-0.4)
    expected = np.array([[4.0, -0.4 * 2.0 * 0.5], [-0.4 * 2.0 * 0.5, 0.25]])
    np.testing.assert_allclose(effect.covariance(), expected)
    # A full matrix gives the same; uncorrelated by default.
    same = RandomEffect("g", {"Intercept": 2.0, "week": 0.5}, corr=[[1, -0.4], [-0.4, 1]])
    assert same.corr == effect.corr
    assert RandomEffect("g", {"Intercept": 1.0, "week": 1.0}).corr == ((1.0, 0.0), (0.0, 1.0))


@pytest.mark.parametrize("rho", [-1.0, 1.0, 0.0])
def test_correlation_at_the_bounds_is_allowed(rho):
    # ρ = ±1 is positive semi-definite (singular): allowed, for boundary experiments.
    effect = RandomEffect("g", {"Intercept": 1.0, "week": 1.0}, corr=rho)
    assert effect.corr[0][1] == rho


def test_zero_sd_is_allowed():
    # σ = 0 is a valid standard deviation (no random effect): the boundary case.
    assert RandomEffect("g", {"Intercept": 0.0}).sd["Intercept"] == 0.0
    assert simple(sigma_e=0.0).sigma_e == 0.0


def test_whole_float_counts_are_accepted():
    assert Factor("g", 3.0).n == 3
    assert isinstance(Factor("g", np.int64(4)).n, int)


# ---------------------------------------------------------------- bad input

BAD_INPUTS = {
    # class of bad input: (callable, words the message must contain)
    "negative SD": (lambda: RandomEffect("g", {"Intercept": -1.0}), ["sd['Intercept'] of random effect 'g'", "-1.0", ">= 0"]),
    "infinite SD": (lambda: RandomEffect("g", {"Intercept": math.inf}), ["sd['Intercept']", "inf", "finite"]),
    "NaN SD": (lambda: RandomEffect("g", {"Intercept": math.nan}), ["sd['Intercept']", "nan", "finite"]),
    "non-numeric SD": (lambda: RandomEffect("g", {"Intercept": "big"}), ["sd['Intercept']", "'big'", "finite number"]),
    "empty random effect": (lambda: RandomEffect("g", {}), ["sd of random effect 'g'", "empty", "at least one term"]),
    "negative sigma_e": (lambda: simple(sigma_e=-0.5), ["sigma_e", "-0.5", ">= 0"]),
    "NaN sigma_e": (lambda: simple(sigma_e=math.nan), ["sigma_e", "nan", "finite"]),
    "negative covariate SD": (lambda: Normal("x", sd=-2), ["sd of covariate 'x'", "-2", ">= 0"]),
    "infinite covariate mean": (lambda: Normal("x", mean=math.inf), ["mean of covariate 'x'", "inf", "finite"]),
    "correlation above 1": (
        lambda: RandomEffect("g", {"Intercept": 1, "w": 1}, corr=1.5),
        ["corr of random effect 'g'", "1.5", "[-1, 1]"],
    ),
    "correlation below -1": (
        lambda: RandomEffect("g", {"Intercept": 1, "w": 1}, corr=[[1, -1.2], [-1.2, 1]]),
        ["corr of random effect 'g'", "-1.2", "[-1, 1]"],
    ),
    "NaN correlation": (lambda: RandomEffect("g", {"Intercept": 1, "w": 1}, corr=math.nan), ["corr", "nan", "finite"]),
    "correlation not PSD": (
        # Each pair is a valid correlation, the matrix is not: x, y and z cannot be
        # pairwise correlated 0.9, 0.9 and -0.9.
        lambda: RandomEffect("g", {"Intercept": 1, "a": 1, "b": 1}, corr=[[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]),
        ["corr of random effect 'g'", "0.9", "not positive semi-definite"],
    ),
    "correlation matrix wrong shape": (
        lambda: RandomEffect("g", {"Intercept": 1}, corr=[[1, 0.5], [0.5, 1]]),
        ["corr of random effect 'g'", "(2, 2)", "(1, 1)"],
    ),
    "correlation matrix not symmetric": (
        lambda: RandomEffect("g", {"Intercept": 1, "w": 1}, corr=[[1, 0.5], [0.2, 1]]),
        ["corr of random effect 'g'", "0.5", "symmetric"],
    ),
    "one number for three terms": (
        lambda: RandomEffect("g", {"Intercept": 1, "a": 1, "b": 1}, corr=0.3),
        ["corr of random effect 'g'", "0.3", "3x3"],
    ),
    "fewer than 2 groups": (lambda: Factor("g", 1), ["n of factor 'g'", "1", ">= 2"]),
    "zero groups": (lambda: Factor("g", 0), ["n of factor 'g'", "0", ">= 2"]),
    "zero observations per group": (lambda: Factor("obs", 0, within="g"), ["n of factor 'obs'", "0", ">= 1"]),
    "negative observations per group": (lambda: Factor("obs", -3, within="g"), ["n of factor 'obs'", "-3", ">= 1"]),
    "non-integer count": (lambda: Factor("g", 2.5), ["n of factor 'g'", "2.5", "whole number"]),
    "string count": (lambda: Factor("g", "10"), ["n of factor 'g'", "'10'", "whole number"]),
    "boolean count": (lambda: Factor("g", True), ["n of factor 'g'", "True", "whole number"]),
    "infinite count": (lambda: Factor("g", math.inf), ["n of factor 'g'", "inf", "whole number"]),
    "values of wrong length": (lambda: Factor("w", 3, within="g", values=[0, 1]), ["values of factor 'w'", "2 values", "n=3"]),
    "non-finite values": (lambda: Factor("w", 2, within="g", values=[0, math.nan]), ["values of factor 'w'", "nan", "finite"]),
    "bad factor name": (lambda: Factor("my school", 3), ["name", "'my school'", "letters, digits and underscores"]),
    "share out of range": (lambda: Indicator("t", share=1.0), ["share of covariate 't'", "1.0", "(0, 1)"]),
    "equal arm values": (lambda: Indicator("t", values=(0.5, 0.5)), ["values of covariate 't'", "[0.5, 0.5]", "two distinct"]),
    "three arm values": (lambda: Indicator("t", values=(0, 1, 2)), ["values of covariate 't'", "[0.0, 1.0, 2.0]", "two distinct"]),
    "text arm values": (lambda: Indicator("t", values="ab"), ["values of covariate 't'", "'a'", "finite number"]),
    "one category": (lambda: Categorical("t", ("A",)), ["levels of covariate 't'", "['A']", "at least two distinct"]),
    "repeated categories": (lambda: Categorical("t", ("A", "A")), ["levels of covariate 't'", "['A', 'A']", "distinct"]),
    "dropout rate 1": (lambda: Dropout("g", "obs", rate=1.0), ["rate", "1.0", "[0, 1)"]),
    "dropout rate negative": (lambda: Dropout("g", "obs", rate=-0.1), ["rate", "-0.1", "[0, 1)"]),
    "dropout slope infinite": (lambda: Dropout("g", "obs", rate=0.1, slope=math.inf), ["slope", "inf", "finite"]),
    "non-finite beta": (lambda: simple(beta={"Intercept": math.nan, "x": 1.0}), ["beta['Intercept']", "nan", "finite"]),
    "duplicate factor names": (
        lambda: simple(factors=(Factor("g", 5), Factor("g", 3, within="g"))),
        ["factors", "['g']", "own name"],
    ),
    "parent listed after child": (
        lambda: simple(factors=(Factor("obs", 3, within="g", values=range(3)), Factor("g", 5))),
        ["within of factor 'obs'", "'g'", "listed before it"],
    ),
    "random effect on unknown factor": (
        lambda: simple(random=(RandomEffect("school", {"Intercept": 1.0}),)),
        ["factor of random effect", "'school'", "['g', 'obs']"],
    ),
    "slope on unknown column": (
        lambda: simple(random=(RandomEffect("g", {"Intercept": 1.0, "age": 1.0}),)),
        ["sd of random effect 'g'", "'age'", "is not a column", "numeric column"],
    ),
    "slope on a categorical column": (
        lambda: simple(
            covariates=(Categorical("t", ("A", "B")),),
            formula="t",
            beta={"Intercept": 0, "t[T.B]": 1},
            random=(RandomEffect("g", {"Intercept": 1.0, "t": 1.0}),),
        ),
        ["sd of random effect 'g'", "'t'", "not numeric", "numeric column"],
    ),
    "slope on a label factor": (
        lambda: simple(factors=(Factor("g", 5), Factor("obs", 3, within="g")), random=(RandomEffect("g", {"Intercept": 1, "obs": 1}),)),
        ["sd of random effect 'g'", "'obs'", "not numeric"],
    ),
    "same factor twice in random": (
        lambda: simple(random=(RandomEffect("g", {"Intercept": 1.0}), RandomEffect("g", {"Intercept": 2.0}))),
        ["random", "only once"],
    ),
    "covariate level unknown": (
        lambda: simple(covariates=(Normal("x", level="school"),)),
        ["level of covariate 'x'", "'school'", "['g', 'obs']"],
    ),
    "covariate named like a factor": (lambda: simple(covariates=(Normal("g"),)), ["covariates", "['g']", "distinct"]),
    "outcome named like a column": (lambda: simple(outcome="x"), ["outcome", "'x'", "already"]),
    "dropout occasion not nested": (
        lambda: simple(dropout=Dropout("obs", "g", rate=0.2)),
        ["dropout", "'g'", "nested within unit 'obs'"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_value_error_naming_parameter_value_and_rule(case):
    build, words = BAD_INPUTS[case]
    with pytest.raises(ValueError) as info:
        build()
    message = str(info.value)
    for word in words:
        assert word in message, (case, message)


# ---------------------------------------------------------------- validate helpers


def test_validate_helpers():
    assert check_finite("a", 2) == 2.0 and isinstance(check_finite("a", 2), float)
    assert check_sd("s", 0) == 0.0
    assert check_count("n", 3.0) == 3
    assert check_count("n", 0, minimum=0) == 0
    assert check_name("col", "ses_2") == "ses_2"
    for bad in (True, "1", None, math.nan, -math.inf):
        with pytest.raises(ValueError, match="expected a finite number"):
            check_finite("a", bad)
    for bad in ("", "1abc", "a-b", 3):
        with pytest.raises(ValueError, match="letters, digits and underscores"):
            check_name("col", bad)


# ---------------------------------------------------------------- AR(1) residuals


def ar1_design(residual, **factors) -> Design:
    """Plots with weekly occasions and the given residual structure."""
    week = factors.get("week", Factor("week", 4, within="plot", values=range(4)))
    return Design(
        factors=(Factor("plot", 5), week, *factors.get("extra", ())),
        formula="week",
        beta={"Intercept": 0.0, "week": 1.0},
        random=(RandomEffect("plot", {"Intercept": 1.0}),),
        sigma_e=1.0,
        residual=residual,
    )


@pytest.mark.parametrize("phi", [1.0, -1.0, 1.5, math.nan, math.inf, "0.5", True])
def test_ar1_refuses_phi_outside_the_open_interval(phi):
    with pytest.raises(ValueError, match=r"^phi: got .*, expected a") as err:
        AR1(phi, "plot", "week")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("residual", "extra", "words"), [
    (AR1(0.5, "field", "week"), {}, ["unit 'field'", "not a factor"]),
    (AR1(0.5, "plot", "day"), {}, ["occasion 'day'", "nested within unit 'plot'"]),
    (AR1(0.5, "plot", "week"), {"week": Factor("week", 4, within="plot")}, ["occasion 'week'", "with values"]),
    (AR1(0.5, "plot", "week"), {"week": Factor("week", 3, within="plot", values=(0, 2, 1))},
     ["values of factor 'week'", "[0.0, 2.0, 1.0]", "increasing"]),
    (AR1(0.5, "plot", "week"), {"extra": (Factor("rater", 2),)}, ["deepest factor of the only grouping tree"]),
    (AR1(0.5, "plot", "week"), {"extra": (Factor("leaf", 2, within="week"),)}, ["deepest factor"]),
])
def test_ar1_needs_one_ordered_series_per_unit(residual, extra, words):
    with pytest.raises(ValueError) as err:
        ar1_design(residual, **extra)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_ar1_design_is_valid_and_truth_records_phi():
    from lmmsim import Truth, simulate

    design = ar1_design(AR1(-0.4, "plot", "week"))
    truth = simulate(design, seed=1).truth
    assert truth.phi == -0.4
    assert Truth.from_json(truth.to_json()).phi == -0.4
    assert "phi" not in simulate(ar1_design(None), seed=1).truth.to_dict()
