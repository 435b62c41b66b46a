"""The fixed-effects design of many replications from arrays, as patsy builds it.

patsy evaluates a formula on a DataFrame; on the stacked rows of a chunk of replications
that costs more than fitting them. :func:`plan_columns` asks patsy once, on a pilot
frame, what each column of X is — a product of variables and of categorical contrast
columns, multiplied in patsy's order (``patsy.build._build_subterm``) — and
:meth:`Columns.build` computes the products on arrays of any number of replications.
Formulas with anything else (functions of variables, ``C(...)``, categorical
variables other than categorical covariates) get ``None``: the caller uses patsy. The
plan is checked against patsy's X on the pilot, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
from patsy.build import _subterm_column_combinations


@dataclass(frozen=True)
class Columns:
    """What each column of X is: per column, its factors as ``(variable, contrast)``,
    ``contrast`` ``None`` for a numeric variable, else the column's contrast value per
    level code of a categorical covariate."""

    names: tuple[str, ...]
    factors: tuple[tuple[tuple[str, np.ndarray | None], ...], ...]

    def build(self, variables: Mapping[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
        """X of shape ``shape + (p,)`` from ``variables`` (each broadcastable to ``shape``;
        categorical covariates as level codes).

        Each column is contiguous, as in the DataFrame patsy returns: the fitters' sums
        run in an order that depends on the layout, and the bits of their results with it.
        """
        X = np.empty((len(self.names), *shape))
        for j, factors in enumerate(self.factors):
            column = X[j]
            column[...] = 1.0 if not factors else _values(factors[0], variables)  # patsy: 1 times the first,
            for factor in factors[1:]:  # then times each further factor in turn (1 * v is v exactly)
                column *= _values(factor, variables)
        return np.moveaxis(X, 0, -1)


def _values(factor: tuple[str, np.ndarray | None], variables: Mapping[str, np.ndarray]) -> np.ndarray:
    """A numeric variable's values, or a categorical one's contrast column per level code."""
    name, contrast = factor
    return variables[name] if contrast is None else contrast[variables[name]]


def plan_columns(formula: str, pilot: pd.DataFrame, levels: Mapping[str, tuple]) -> Columns | None:
    """The :class:`Columns` of ``formula``, or ``None`` where patsy must build X.

    ``pilot`` is a frame of the variables (categorical covariates as pandas
    Categoricals); ``levels`` gives each categorical covariate's levels in the order of
    its codes.
    """
    info = patsy.dmatrix(formula, pilot, NA_action="raise").design_info
    columns = []
    for term in info.terms:
        for sub in info.term_codings[term]:
            for combo in _subterm_column_combinations(info.factor_infos, sub):
                factors = []
                for factor, index in zip(sub.factors, combo):
                    name = getattr(factor, "code", None)
                    kind = info.factor_infos[factor]
                    if name not in pilot.columns:
                        return None
                    if kind.type == "numerical" and kind.num_columns == 1:
                        factors.append((name, None))
                    elif kind.type == "categorical" and set(levels.get(name, ())) <= set(kind.categories or ()) \
                            and name in levels:
                        order = [list(kind.categories).index(level) for level in levels[name]]
                        factors.append((name, sub.contrast_matrices[factor].matrix[order, index]))
                    else:
                        return None
                columns.append(tuple(factors))
    return Columns(tuple(info.column_names), tuple(columns))
