"""lmmsim.fit.bars: lme4 formulas split into fixed part and random-effect terms, and Z."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmmsim.fit.bars import Bar, matrices, parse


def test_parse_fixed_part_and_terms():
    parsed = parse("rt ~ cond + (1 + cond | subject) + (1 | item)")
    assert parsed.fixed == "rt ~ cond"
    assert parsed.bars == (Bar("1 + cond", "subject"), Bar("1", "item"))
    assert parse("y ~ (1 | g)").fixed == "y ~ 1"
    assert parse("y ~ x + (0 + x || g)").bars == (Bar("0 + x", "g"),)
    assert parse("y ~ x + (x || g)").bars == (Bar("1", "g"), Bar("0 + x", "g"))


@pytest.mark.parametrize(
    "formula, match",
    [("y = x + (1 | g)", "expected an lme4 formula"), ("y ~ x", "no random-effect term"),
     ("y ~ x + (1 | g:h)", "must be a column name"), (None, "expected an lme4 formula")],
)
def test_parse_refuses_what_it_cannot_read(formula, match):
    with pytest.raises(ValueError, match=match):
        parse(formula)


def test_z_is_level_major_with_one_block_per_term():
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0], "x": [-0.5, 0.5, -0.5, 0.5],
                         "s": ["a", "a", "b", "b"], "i": ["p", "q", "p", "q"]})
    mats = matrices(data, "y ~ x + (1 + x | s) + (1 | i)")
    Z = mats.Z.toarray()
    # subject a: columns 0 (intercept), 1 (x); subject b: 2, 3; items: 4, 5
    expected = np.array([[1, -0.5, 0, 0, 1, 0], [1, 0.5, 0, 0, 0, 1],
                         [0, 0, 1, -0.5, 1, 0], [0, 0, 1, 0.5, 0, 1]])
    assert np.array_equal(Z, expected)
    assert mats.blocks == ((0, 2, 2), (4, 2, 1))
    assert [t.columns for t in mats.terms] == [("Intercept", "x"), ("Intercept",)]
    assert mats.levels == (("a", "b"), ("p", "q"))
    assert list(mats.X.columns) == ["Intercept", "x"]


def test_missing_factor_values_are_refused():
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0], "g": ["a", None, "b"]})
    with pytest.raises(ValueError, match="missing values"):
        matrices(data, "y ~ 1 + (1 | g)")
