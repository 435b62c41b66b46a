"""X built from a plan is patsy's X, bit for bit, or there is no plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest

from lmmsim.simulate.columns import plan_columns

LEVELS = ("a", "b", "c")


def frame(rng) -> pd.DataFrame:
    codes = rng.integers(0, 3, 40)
    return pd.DataFrame({"x": rng.standard_normal(40), "t": rng.integers(0, 2, 40), "week": np.tile(np.arange(4), 10),
                         "arm": pd.Categorical.from_codes(codes, categories=list(LEVELS))}), codes


@pytest.mark.parametrize("formula", ["t + x", "week * t", "week * arm", "arm + x:t + week:x:arm", "0 + arm + x"])
@pytest.mark.parametrize("order", [LEVELS, ("c", "a", "b")])
def test_plan_builds_patsys_x(formula, order):
    data, codes = frame(np.random.default_rng(3))
    data["arm"] = pd.Categorical(data["arm"].astype(str), categories=list(order))
    plan = plan_columns(formula, data, {"arm": LEVELS})
    expected = patsy.dmatrix(formula, data, return_type="dataframe")
    variables = {"x": data["x"].to_numpy(), "t": data["t"].to_numpy(), "week": data["week"].to_numpy(float),
                 "arm": codes}
    got = plan.build({k: v.reshape(2, 20) for k, v in variables.items()}, (2, 20))
    assert plan.names == tuple(expected.columns)
    np.testing.assert_array_equal(got.reshape(40, -1), expected.to_numpy())


@pytest.mark.parametrize("formula", ["np.log(1 + t) + x", "C(t) + x", "center(x)"])
def test_no_plan_for_transforms(formula):
    data, _ = frame(np.random.default_rng(4))
    assert plan_columns(formula, data, {"arm": LEVELS}) is None
