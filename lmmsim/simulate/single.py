"""Draw one dataset from a :class:`~lmmsim.design.Design`: ``y = Xβ + Zu + ε``.

The random numbers come from :func:`lmmsim.simulate.draws.draw`; this module puts them
together as a DataFrame.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy

from lmmsim.design import INTERCEPT, Categorical, Design, Dropout
from lmmsim.model import formula_error
from lmmsim.simulate import draws
from lmmsim.simulate.layout import layout
from lmmsim.truth import Truth
from lmmsim.validate import check_memory


@dataclass(frozen=True)
class Simulation:
    """One simulated dataset with everything that produced it.

    Attributes
    ----------
    data : pandas.DataFrame
        Tidy data: one row per observation; factor, covariate and outcome columns.
    random_effects : dict of str to pandas.DataFrame
        The realised random effects u of each grouping factor: one row per unit
        (indexed by its label), one column per term.
    residuals : pandas.Series
        The realised residuals ε, aligned with ``data``.
    truth : Truth
        The parameters the data were drawn from.
    design : Design
        The design that was simulated.
    """

    data: pd.DataFrame
    random_effects: dict[str, pd.DataFrame]
    residuals: pd.Series
    truth: Truth
    design: Design


def seed_sequence(seed: Any) -> np.random.SeedSequence:
    """Turn ``seed`` (a non-negative int or a SeedSequence) into a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: got {seed!r}, expected a non-negative integer or a numpy SeedSequence")
    return np.random.SeedSequence(int(seed))


def simulate(design: Design, seed: Any, provenance: dict[str, Any] | None = None) -> Simulation:
    """Simulate one dataset.

    Parameters
    ----------
    design : Design
        What to simulate.
    seed : int or numpy.random.SeedSequence
        The only source of randomness: the same seed gives the same data, in any process.
    provenance : dict, optional
        Recorded in ``truth.provenance`` (the seed is added to it when it is an int).

    Returns
    -------
    Simulation
    """
    if not isinstance(design, Design):
        raise ValueError(f"design: got {type(design).__name__}, expected an lmmsim Design")
    check_memory(f"design: simulating {design.n_obs:,} observations", design.memory_estimate())
    data, units = layout(design)
    drawn = draws.draw(design, units, len(data), seed_sequence(seed))
    for c in design.covariates:
        values = drawn.covariates[c.name]
        data[c.name] = _categorical(c, values)

    X = _fixed_design(design, data)
    eta = X @ np.array([design.beta[c] for c in X.columns])

    random_effects = {}
    for effect in design.random:
        labels, codes = units[effect.factor]
        u = drawn.random_effects[effect.factor]
        index = pd.Index(labels, name=effect.factor)
        random_effects[effect.factor] = pd.DataFrame(u, index=index, columns=list(effect.terms))
        for k, term in enumerate(effect.terms):
            eta = eta + u[codes, k] * (1.0 if term == INTERCEPT else data[term].to_numpy(dtype=float))

    residuals = drawn.residuals
    data[design.outcome] = eta + residuals
    residuals = pd.Series(residuals, index=data.index, name="residual")

    if design.dropout is not None:
        keep = _dropout_mask(design.dropout, data, units, design.outcome, drawn.dropout)
        data = data[keep].reset_index(drop=True)
        residuals = residuals[keep].reset_index(drop=True)

    info = dict(provenance or {})
    if not isinstance(seed, np.random.SeedSequence):
        info.setdefault("seed", int(seed))
    return Simulation(data, random_effects, residuals, Truth.from_design(design, info), design)


def _fixed_design(design: Design, data: pd.DataFrame) -> pd.DataFrame:
    """X from the formula; every column must have a β and every β a column."""
    try:
        X = patsy.dmatrix(design.formula, data, return_type="dataframe", NA_action="raise")
    except patsy.PatsyError as err:
        raise formula_error("formula", design.formula, err) from None
    columns, named = list(X.columns), set(design.beta)
    if set(columns) != named:
        raise ValueError(
            f"beta: names {sorted(named)} do not match the columns of X from formula "
            f"{design.formula!r}: {columns} (missing {sorted(set(columns) - named)}, "
            f"unknown {sorted(named - set(columns))})"
        )
    return X


def _dropout_mask(dropout: Dropout, data: pd.DataFrame, units, outcome: str, rng: np.random.Generator) -> np.ndarray:
    """Monotone MAR dropout: after each occasion, leave with a probability that depends on
    the outcome just observed."""
    y = data[outcome].to_numpy()
    z = (y - y.mean()) / y.std()
    logit = np.log(dropout.rate / (1 - dropout.rate)) if dropout.rate > 0 else -np.inf
    p_leave = 1.0 / (1.0 + np.exp(-(logit + dropout.slope * z)))
    leaves = rng.random(len(data)) < p_leave
    _, unit_codes = units[dropout.unit]
    occasion = data[dropout.occasion].to_numpy()
    order = np.lexsort((occasion, unit_codes))
    keep = np.ones(len(data), dtype=bool)
    gone_unit = -1
    for row, prev in zip(order[1:], order[:-1]):
        same_unit = unit_codes[row] == unit_codes[prev]
        if not same_unit:
            gone_unit = -1
        elif gone_unit == unit_codes[row] or leaves[prev]:
            gone_unit = unit_codes[row]
            keep[row] = False
    return keep


def _categorical(covariate, values: np.ndarray):
    """A categorical covariate's codes as a pandas Categorical; other covariates as they are."""
    if isinstance(covariate, Categorical):
        return pd.Categorical.from_codes(values, categories=list(covariate.levels))
    return values
