"""Many replications of a design as arrays, for the batch analyses.

:func:`simulate_batch` makes replication ``r`` from the draws that
:func:`lmmsim.simulate.simulate` makes from ``seeds[r]`` (both call
:func:`lmmsim.simulate.draws.draw`), so the two paths analyse the same datasets.
:func:`batch_from_data` stacks datasets you already have.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy

from lmmsim.design import INTERCEPT, Categorical, Design
from lmmsim.fit.exact.block_layout import BlockLayout, model_layout
from lmmsim.model import ModelSpec, formula_error, is_random_intercept, prepare
from lmmsim.simulate import draws, seeds
from lmmsim.simulate.columns import Columns, plan_columns
from lmmsim.simulate.layout import layout


@dataclass(frozen=True)
class Batch:
    """R replications of one design, for the batch form of the analyses.

    Attributes
    ----------
    y : ndarray, shape (R, n)
        Outcomes, one replication per row.
    X : ndarray, shape (n, p) or (R, n, p)
        Fixed-effects design, shared or per replication.
    groups : ndarray of int, shape (n,)
        Cluster codes 0..J-1 of ``model.groups``.
    columns : tuple of str
        Names of the columns of X.
    group_name : str
        Name of the grouping factor (``model.groups``).
    layout : BlockLayout or None
        ``Z`` and the terms of a block-diagonal model (random slopes, nested
        intercepts) for :func:`~lmmsim.fit.exact.fit_block`; ``None`` for a
        random-intercept model.
    """

    y: np.ndarray
    X: np.ndarray
    groups: np.ndarray
    columns: tuple[str, ...]
    group_name: str = "group"
    layout: BlockLayout | None = None

    @property
    def R(self) -> int:
        """Number of replications."""
        return self.y.shape[0]

    @property
    def J(self) -> int:
        """Number of clusters."""
        return int(self.groups.max()) + 1

    def take(self, rows: slice | Sequence[int]) -> Batch:
        """The replications ``rows`` as a new batch."""
        X = self.X if self.X.ndim == 2 else self.X[rows]
        return Batch(self.y[rows], X, self.groups, self.columns, self.group_name, self.layout)

    def with_X(self, X: np.ndarray, columns: Sequence[str] | None = None) -> Batch:
        """The same outcomes and clusters with another fixed-effects design."""
        return Batch(self.y, X, self.groups, self.columns if columns is None else tuple(columns), self.group_name,
                     self.layout)


def design_matrices(data: pd.DataFrame, model: ModelSpec) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """``y``, ``X`` (a DataFrame named by column) and cluster codes of ``model.groups``."""
    data = prepare(data, model)
    try:
        X = patsy.dmatrix(model.fixed, data, return_type="dataframe", NA_action="raise")
    except patsy.PatsyError as err:
        raise formula_error("model", model.formula, err) from None
    y = data[model.outcome].to_numpy(dtype=float)
    codes = pd.factorize(data[model.groups], sort=True)[0]
    return y, X, codes


def batch_from_data(datasets: Sequence[pd.DataFrame], model: ModelSpec) -> Batch:
    """Stack datasets with the same clusters (in the same row order) into a :class:`Batch`.

    X is shared when it is the same in every dataset, else one per replication.
    """
    mats = [design_matrices(d, model) for d in datasets]
    if not mats:
        raise ValueError("datasets: got none, expected at least one DataFrame")
    groups = mats[0][2]
    if any(len(m[2]) != len(groups) or (m[2] != groups).any() for m in mats):
        raise ValueError("datasets: the clusters of model.groups differ between datasets; expected the same rows")
    X = np.stack([m[1].to_numpy() for m in mats])
    X = X[0] if (X == X[:1]).all() else X
    return Batch(np.stack([m[0] for m in mats]), X, groups, tuple(mats[0][1].columns), model.groups)


def simulate_batch(design: Design, model: ModelSpec, seeds: Sequence[np.random.SeedSequence]) -> Batch:
    """Simulate ``design`` once per seed, as arrays for the batch analyses of ``model``.

    Replication ``r`` uses the draws of ``simulate(design, seeds[r])`` (a design without
    dropout); a model with more than one random intercept gets its block layout
    (:func:`~lmmsim.fit.exact.block_layout.model_layout`).
    """
    states = {name: np.array([draws.child(s, i).generate_state(4, np.uint64) for s in seeds]).reshape(-1, 4)
              for i, name in enumerate(draws.STREAMS) if name != "dropout"}
    return _simulate(design, model, states)


def simulate_replications(design: Design, model: ModelSpec, seed: int, cell: int, reps: Sequence[int]) -> Batch:
    """:func:`simulate_batch` with the seeds of :func:`~lmmsim.montecarlo.run`:
    ``SeedSequence(seed, spawn_key=(cell, rep))`` for each ``rep``, seeded all at once
    (:func:`~lmmsim.simulate.seeds.stream_states`)."""
    reps = np.asarray(reps, dtype=np.int64)
    states = {name: seeds.stream_states(seed, cell, reps, i) for i, name in enumerate(draws.STREAMS)
              if name != "dropout"}
    return _simulate(design, model, states)


@dataclass(frozen=True)
class _Cell:
    """What every chunk of one design and model shares: rows, clusters, Z, and how to build X."""

    rows: pd.DataFrame
    units: dict
    groups: np.ndarray
    layout: BlockLayout | None
    design_columns: Columns | None
    model_columns: Columns | None
    factor_values: dict[str, np.ndarray]


_CELLS: dict[tuple[str, str], _Cell] = {}


def _cell(design: Design, model: ModelSpec) -> _Cell:
    """The :class:`_Cell` of a design and model, made once per process (a few kept)."""
    key = (repr(design), repr(model))
    if key not in _CELLS:
        if len(_CELLS) >= 8:
            _CELLS.pop(next(iter(_CELLS)))
        rows, units = layout(design)
        pilot = draws.draw_batch(design, units, len(rows), {name: seeds.stream_states(0, 0, [0, 1], i)
                                                            for i, name in enumerate(draws.STREAMS)})
        frame = _stacked_frame(design, model, rows, pilot.covariates, 2)
        levels = {c.name: tuple(c.levels) for c in design.covariates if isinstance(c, Categorical)}
        numeric = {f.name: rows[f.name].to_numpy(dtype=float) for f in design.factors if f.values is not None}
        design_columns = _checked(plan_columns(design.formula, frame, levels), design.formula, frame, pilot, numeric)
        for column, values in model.levels.items():
            frame[column] = pd.Categorical(frame[column], categories=list(values))
        model_columns = _checked(plan_columns(model.fixed, frame, levels), model.fixed, frame, pilot, numeric)
        groups = pd.factorize(rows[model.groups], sort=True)[0]
        block = None if is_random_intercept(model) else model_layout(rows, model)
        _CELLS[key] = _Cell(rows, units, groups, block, design_columns, model_columns, numeric)
    return _CELLS[key]


def _checked(columns: Columns | None, formula: str, frame: pd.DataFrame, pilot: draws.Draws,
             numeric: dict[str, np.ndarray]) -> Columns | None:
    """``columns`` if they build patsy's X of the pilot frame bit for bit, else ``None``."""
    if columns is None:
        return None
    expected = patsy.dmatrix(formula, frame, return_type="dataframe", NA_action="raise")
    got = columns.build({**numeric, **pilot.covariates}, pilot.residuals.shape)
    same = list(expected.columns) == list(columns.names) and np.array_equal(
        got.reshape(-1, len(columns.names)), expected.to_numpy())
    return columns if same else None


def _simulate(design: Design, model: ModelSpec, states: dict[str, np.ndarray]) -> Batch:
    """The batch of the replications whose stream seeds are ``states`` (see :func:`draws.draw_batch`)."""
    cell = _cell(design, model)
    rows, units = cell.rows, cell.units
    n, R = len(rows), len(states["residuals"])
    drawn = draws.draw_batch(design, units, n, states)
    covariates = drawn.covariates
    Xs, names = _X(cell.design_columns, design.formula, design, model, cell, covariates, {}, R)
    y = Xs @ np.array([design.beta[c] for c in names])
    for effect in design.random:  # in the order of simulate(), for the same floating-point sums
        codes = units[effect.factor][1]
        m = draws.run_length(codes)
        for k, term in enumerate(effect.terms):
            u = drawn.random_effects[effect.factor][:, :, k]
            if term != INTERCEPT:
                y += draws.spread(u, codes) * _term_column(term, rows, covariates)
            elif m:  # an intercept's column is 1 (u times 1 is u): added unit by unit, no (R, n) copy
                y.reshape(R, -1, m)[...] += u[:, :, None]
            else:
                y += draws.spread(u, codes)
    y += drawn.residuals
    if model.fixed.replace(" ", "") == design.formula.replace(" ", "") and not model.levels:
        X, columns = Xs, names  # the model's X is the design's
    else:
        X, columns = _X(cell.model_columns, model.fixed, design, model, cell, covariates, model.levels, R)
    if R == 1 or np.array_equal(X[0], X[1]) and (X == X[:1]).all():  # most designs differ by the second
        X = X[0]
    return Batch(y, X, cell.groups, columns, model.groups, cell.layout)


def _X(plan: Columns | None, formula: str, design: Design, model: ModelSpec, cell: _Cell,
       covariates: dict[str, np.ndarray], levels, R: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """X of ``formula``, shape (R, n, p), and its column names: from the cell's plan, or by
    patsy on the stacked rows where there is none."""
    n = len(cell.rows)
    if plan is not None:
        return plan.build({**cell.factor_values, **covariates}, (R, n)), plan.names
    frame = _stacked_frame(design, model, cell.rows, covariates, R)
    for column, values in levels.items():
        frame[column] = pd.Categorical(frame[column], categories=list(values))
    X = patsy.dmatrix(formula, frame, return_type="dataframe", NA_action="raise")
    return X.to_numpy().reshape(R, n, -1), tuple(X.columns)


def _term_column(term: str, rows: pd.DataFrame, covariates: dict[str, np.ndarray]):
    """The values a random slope multiplies: a factor's values, or a covariate (R, n)."""
    if term in covariates:
        return covariates[term].astype(float)
    return rows[term].to_numpy(dtype=float)


def _stacked_frame(design: Design, model: ModelSpec, rows: pd.DataFrame, covariates: dict[str, np.ndarray],
                   R: int) -> pd.DataFrame:
    """The R replications' factor and covariate columns, one replication after the other."""
    used = design.formula + " " + model.fixed  # patsy needs only the columns the formulas name
    frame = {f.name: np.tile(rows[f.name].to_numpy(), R) for f in design.factors if re.search(rf"\b{f.name}\b", used)}
    for c in design.covariates:
        values = covariates[c.name].ravel()
        frame[c.name] = _categorical(c, values)
    return pd.DataFrame(frame)


def _categorical(covariate, values: np.ndarray):
    """A categorical covariate's codes as a pandas Categorical; other covariates as they are."""
    if isinstance(covariate, Categorical):
        return pd.Categorical.from_codes(values, categories=list(covariate.levels))
    return values
