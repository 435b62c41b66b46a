"""From a Design and its data to the inputs of :func:`lmmsim.fit.exact.block.fit_block`.

A design is block-diagonal when all its random effects belong to one top-level
grouping factor or to factors nested in it (patients; schools and classrooms
within them).  Then each top-level unit is one block of ``Z``: the top factor's
terms once, and each nested factor's terms once per nested unit, numbered within
the top unit.  Crossed factors (subjects and items) are not block-diagonal;
:func:`block_reason` says why, in words, for the fast path to report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lmmsim.design import INTERCEPT, Design
from lmmsim.model import ModelSpec, variance_names

__all__ = ["BlockLayout", "block_layout", "block_reason", "model_block_reason", "model_layout", "nested_columns"]


@dataclass(frozen=True)
class BlockLayout:
    """``Z``, groups and terms of a block-diagonal design, for ``fit_block``.

    Attributes
    ----------
    Z : ndarray, shape (n, q)
        Random-effects design within each group.
    groups : ndarray, shape (n,)
        Labels of the top-level factor.
    terms : tuple of (k, m)
        Structure of ``Lambda`` (see ``lmmsim.fit.exact.block_criterion.theta_template``).
    factors : tuple of str
        The grouping factor of each term, top level first.
    names : tuple of str
        Names of the variance parameters, as ``variance_names`` gives them
        (from :func:`model_layout`; empty from ``block_layout``).
    """

    Z: np.ndarray
    groups: np.ndarray
    terms: tuple[tuple[int, int], ...]
    factors: tuple[str, ...]
    names: tuple[str, ...] = ()


def nested_columns(groups, inner) -> np.ndarray:
    """Indicators of the inner units within each group, numbered within their group.

    Column ``i`` is 1 for the observations of the ``i``-th inner unit (in
    sorted order) of their group, so ``Z = [1, nested_columns(school,
    classroom)]`` with ``terms = [(1, 1), (1, c)]`` is
    ``(1 | school) + (1 | school:classroom)``.  Groups with fewer inner units
    than the largest have all-zero columns, which contribute nothing.
    """
    groups, inner = np.asarray(groups), np.asarray(inner)
    if groups.shape != inner.shape or groups.ndim != 1:
        raise ValueError(f"inner: got shape {inner.shape}, expected the shape of groups {groups.shape}, 1-D")
    pairs, codes = np.unique(np.column_stack([np.unique(groups, return_inverse=True)[1],
                                              np.unique(inner, return_inverse=True)[1]]),
                             axis=0, return_inverse=True)
    first = np.concatenate(([0], np.flatnonzero(np.diff(pairs[:, 0])) + 1))
    rank = np.arange(len(pairs)) - np.repeat(first, np.diff(np.append(first, len(pairs))))
    columns = np.zeros((len(groups), rank.max() + 1))
    columns[np.arange(len(groups)), rank[codes.reshape(-1)]] = 1.0
    return columns


def _ancestors(design: Design, name: str) -> list[str]:
    parent = {f.name: f.within for f in design.factors}
    chain = []
    while parent.get(name) is not None:
        name = parent[name]
        chain.append(name)
    return chain


def _top(design: Design) -> str | None:
    """The random-effect factor all others are nested in, or None."""
    names = [r.factor for r in design.random]
    for top in names:
        if all(other == top or top in _ancestors(design, other) for other in names):
            return top
    return None


def block_reason(design: Design) -> str | None:
    """Why ``design`` is not block-diagonal, or None when it is."""
    if _top(design) is None:
        names = [r.factor for r in design.random]
        return (f"random effects of {names} are not all nested in one of them (crossed factors): "
                "the covariance is not block-diagonal")
    return None


def block_layout(design: Design, data: pd.DataFrame) -> BlockLayout:
    """``Z``, groups and terms for fitting ``data`` simulated from ``design`` with ``fit_block``.

    Raises
    ------
    ValueError
        If the design is not block-diagonal (see :func:`block_reason`) or ``data``
        lacks a factor or slope column.
    """
    reason = block_reason(design)
    if reason is not None:
        raise ValueError(f"design: {reason}")
    top = _top(design)
    order = sorted(design.random, key=lambda r: r.factor != top)  # top level first
    missing = [c for r in order for c in (r.factor, *r.terms) if c != INTERCEPT and c not in data]
    if missing:
        raise ValueError(f"data: got no column {missing[0]!r}, expected the design's factors and slope columns")
    groups = data[top].to_numpy()
    blocks, terms = [], []
    for effect in order:
        columns = np.column_stack([
            np.ones(len(data)) if term == INTERCEPT else data[term].to_numpy(float) for term in effect.terms
        ])
        units = np.ones((len(data), 1)) if effect.factor == top else nested_columns(groups, data[effect.factor])
        blocks.append((units[:, :, None] * columns[:, None, :]).reshape(len(data), -1))  # unit by unit
        terms.append((len(effect.terms), units.shape[1]))
    return BlockLayout(np.hstack(blocks), groups, tuple(terms), tuple(r.factor for r in order))


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_VC = re.compile(r"^0\s*\+\s*C\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)$")


def _re_terms(model: ModelSpec) -> list[str]:
    """The terms of ``model.re_formula``, intercept first (as ``variance_names`` reads them)."""
    terms = [t.strip() for t in model.re_formula.replace("~", "").split("+") if t.strip()]
    intercept = not any(t in ("0", "-1") for t in terms)
    return ([INTERCEPT] if intercept else []) + [t for t in terms if t not in ("0", "1", "-1")]


def model_block_reason(model: ModelSpec) -> str | None:
    """Why the random effects of ``model`` cannot be written as blocks for ``fit_block``, or None.

    They can when ``re_formula`` names plain columns (``"~week"``) and each variance
    component is ``"0 + C(unit)"`` (a random intercept per unit within the groups).
    """
    bad = [t for t in _re_terms(model) if t != INTERCEPT and not _NAME.match(t)]
    if bad or not _re_terms(model):
        return f"the random effects {model.re_formula!r} are not an intercept and plain columns"
    for name, formula in model.vc_formula.items():
        if not _VC.match(formula.strip()):
            return f"the variance component {name!r}: {formula!r} is not a random intercept '0 + C(unit)'"
    return None


def model_layout(data: pd.DataFrame, model: ModelSpec) -> BlockLayout:
    """``Z``, groups and terms of ``model``'s random effects on ``data``, as statsmodels reads
    them: ``re_formula`` per group, each variance component an intercept per unit within it.

    Raises
    ------
    ValueError
        If :func:`model_block_reason` gives a reason or ``data`` lacks a column.
    """
    reason = model_block_reason(model)
    if reason is not None:
        raise ValueError(f"model: {reason}")
    units = [_VC.match(f.strip()).group(1) for f in model.vc_formula.values()]
    terms = _re_terms(model)
    missing = [c for c in (model.groups, *units, *terms) if c != INTERCEPT and c not in data]
    if missing:
        raise ValueError(f"data: got no column {missing[0]!r}, expected the columns of the model's random effects")
    groups = data[model.groups].to_numpy()
    blocks = [np.column_stack([np.ones(len(data)) if t == INTERCEPT else data[t].to_numpy(float) for t in terms])]
    layout = [(len(terms), 1)]
    for unit in units:
        blocks.append(nested_columns(groups, data[unit].to_numpy()))
        layout.append((1, blocks[-1].shape[1]))
    return BlockLayout(np.hstack(blocks), groups, tuple(layout), (model.groups, *model.vc_formula),
                       tuple(variance_names(model)))
