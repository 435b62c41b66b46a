"""Random-effect terms as lme4 writes them: ``rt ~ cond + (1 + cond | subject) + (1 | item)``.

Each term ``(expr | factor)`` gives every level of ``factor`` its own effects on the
columns of ``expr`` (patsy reads ``expr``: ``1 + cond`` and ``cond`` both mean intercept
and slope, ``0 + cond`` the slope alone), correlated with each other and independent of
every other term; ``(expr || factor)`` makes them uncorrelated (one term per column).
Factors may be crossed or nested: unlike statsmodels' ``groups``, no term needs to split
the data into independent clusters.

>>> parsed = parse("rt ~ cond + (1 + cond | subject) + (1 | item)")
>>> parsed.fixed, [(b.expr, b.factor, b.correlated) for b in parsed.bars]
('rt ~ cond', [('1 + cond', 'subject', True), ('1', 'item', True)])
>>> [(b.expr, b.correlated) for b in parse("y ~ 1 + (1 + x || g)").bars]
[('1', True), ('0 + x', True)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
from scipy import sparse

from lmmsim.design import INTERCEPT
from lmmsim.inference.deviance import Deviance, Term, assemble
from lmmsim.model import formula_error

_BAR = re.compile(r"\(([^()|]*)(\|\|?)([^()|]*)\)")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Bar:
    """One random-effect term: the columns ``expr`` (patsy) varying over ``factor``."""

    expr: str
    factor: str
    correlated: bool = True


@dataclass(frozen=True)
class Parsed:
    """An lme4 formula split into its fixed part (patsy) and its random-effect terms."""

    fixed: str
    bars: tuple[Bar, ...]


def parse(formula: str) -> Parsed:
    """Split an lme4 formula into the fixed-effects formula and the ``(expr | factor)`` terms.

    Raises
    ------
    ValueError
        If ``formula`` has no ``~``, no random-effect term, or a term whose factor is not
        a plain column name.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula: got {formula!r}, expected an lme4 formula such as 'y ~ x + (1 | g)'")
    bars = []
    for expr, bar, factor in _BAR.findall(formula):
        factor, expr = factor.strip(), expr.strip() or "1"
        if not _NAME.match(factor):
            raise ValueError(f"formula: grouping factor {factor!r} in {formula!r} must be a column name")
        if bar == "|":
            bars.append(Bar(expr, factor))
        else:  # (1 + x || g): one term per column, as lme4 expands it
            bars.extend(Bar(part, factor) for part in _split(expr))
    if not bars:
        raise ValueError(f"formula: got {formula!r}, which has no random-effect term such as (1 | g)")
    rest = _BAR.sub("", formula)
    outcome, rhs = rest.split("~", 1)
    terms = [t.strip() for t in rhs.split("+") if t.strip()]
    return Parsed(f"{outcome.strip()} ~ {' + '.join(terms) or '1'}", tuple(bars))


def _split(expr: str) -> list[str]:
    """The terms of ``(expr || g)``, one column each: the intercept alone, then each slope
    without an intercept."""
    parts = [p.strip() for p in expr.split("+") if p.strip()]
    intercept = not any(p in ("0", "-1") for p in parts)
    slopes = [p for p in parts if p not in ("0", "1", "-1")]
    return (["1"] if intercept else []) + [f"0 + {p}" for p in slopes]


@dataclass(frozen=True)
class Matrices:
    """y, X and Z of an lme4 model on one dataset, and where each term sits in Z."""

    y: np.ndarray
    X: pd.DataFrame
    Z: sparse.csr_matrix
    terms: tuple[Term, ...]
    blocks: tuple[tuple[int, int, int], ...]  # first column, levels, columns per level
    levels: tuple[tuple[str, ...], ...]  # the level labels of each term's factor

    def deviance(self, reml: bool = True) -> Deviance:
        """lme4's profiled deviance d(θ) of the model (:mod:`lmmsim.inference.deviance`)."""
        return assemble(self.y, self.X, self.Z, list(self.terms), list(self.blocks), reml)


def matrices(data: pd.DataFrame, formula: str) -> Matrices:
    """Build y, X and Z of the lme4 formula ``formula`` from ``data``.

    Raises
    ------
    ValueError
        If ``data`` is not a DataFrame, lacks a column the formula names, or has missing
        values in the columns used.
    """
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data: got {type(data).__name__}, expected a pandas DataFrame")
    parsed = parse(formula)
    missing = sorted({b.factor for b in parsed.bars} - set(data.columns))
    if missing:
        raise ValueError(f"data: grouping columns {missing} are missing; the data have {list(data.columns)}")
    try:
        y, X = patsy.dmatrices(parsed.fixed, data, return_type="dataframe", NA_action="raise")
        Zs, terms, blocks, levels, first = [], [], [], [], 0
        for bar in parsed.bars:
            V = patsy.dmatrix(bar.expr, data, return_type="dataframe", NA_action="raise")
            codes, labels = pd.factorize(data[bar.factor], sort=True)
            if (codes < 0).any():
                raise ValueError(f"data: grouping column {bar.factor!r} has missing values")
            k, J = V.shape[1], len(labels)
            rows = np.repeat(np.arange(len(data)), k)
            cols = (codes[:, None] * k + np.arange(k)).ravel()  # level-major: a level's k effects adjacent
            Zs.append(sparse.csr_matrix((V.to_numpy().ravel(), (rows, cols)), shape=(len(data), J * k)))
            names = tuple(INTERCEPT if c == "Intercept" else str(c) for c in V.columns)
            terms.append(Term(bar.factor, names, True))
            blocks.append((first, J, k))
            levels.append(tuple(str(v) for v in labels))
            first += J * k
    except patsy.PatsyError as err:
        raise formula_error("formula", formula, err) from None
    Z = sparse.hstack(Zs, format="csr")
    return Matrices(y.to_numpy()[:, 0], X, Z, tuple(terms), tuple(blocks), tuple(levels))
