"""Tables for readers: human column headers, rounded numbers, no meaningless row numbers.

A DataFrame shown as the last line of a notebook cell prints its index (0, 1, 2 ... or, after a
filter, 0, 2, 4 ...), its variable names (``rejection_mcse``) and, for a Series, a
``Name: count, dtype: int64`` footer. :func:`show` turns a frame or series into a :class:`Table`
that shows only what a reader needs, in HTML (the book) and in plain text (a terminal).

>>> import pandas as pd
>>> from lmmsim.display import show
>>> show(pd.DataFrame({"method": ["OLS", "LMM"], "rejection": [0.2512, 0.0498]}))
method rejection rate
   OLS          0.251
   LMM          0.050
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["HEADERS", "Table", "header", "show"]

HEADERS: Mapping[str, str] = {
    "n": "replications",
    "n_failed": "failed fits",
    "n_boundary": "fits on the boundary",
    "n_not_converged": "fits not converged",
    "emp_se": "empirical SE",
    "model_se": "model SE",
    "rel_se_error": "relative SE error",
    "rmse": "RMSE",
    "rejection": "rejection rate",
    "coverage": "coverage",
    "p_value": "p-value",
    "se": "SE",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "df": "df",
    "mcse": "MC SE",
}
"""Column names of lmmsim's results and the headers a reader sees; other identifiers lose their
underscores, and ``<measure>_mcse`` becomes ``MC SE`` (of the measure to its left)."""


def header(name: object) -> str:
    """The reader's header for a column name, e.g. ``rejection_mcse`` -> ``MC SE``.

    Parameters
    ----------
    name : object
        A column name; non-strings are shown as they are.
    """
    if not isinstance(name, str):
        return str(name)
    if name in HEADERS:
        return HEADERS[name]
    if name.endswith("_mcse"):
        return HEADERS["mcse"]
    return name.replace("_", " ") if name.isidentifier() else name  # "cover sigma_u" is left as written


@dataclass(frozen=True)
class Table:
    """A frame ready to be shown: its index is a column or gone, its headers are final.

    Attributes
    ----------
    frame : pandas.DataFrame
        What is shown, row numbers excluded.
    digits : int
        Decimal places of the float columns.
    """

    frame: pd.DataFrame
    digits: int

    def _cell(self, value: object) -> str:
        if isinstance(value, (float, np.floating)):  # also floats in mixed (object) columns
            return "" if np.isnan(value) else f"{value:.{self.digits}f}"
        return "" if value is None else str(value)

    def _formatters(self) -> dict:
        return {column: self._cell for column in self.frame.columns}

    def _repr_html_(self) -> str:
        return self.frame.to_html(index=False, border=0, formatters=self._formatters(), na_rep="")

    def __repr__(self) -> str:
        return self.frame.to_string(index=False, formatters=self._formatters(), na_rep="")


def show(data: pd.DataFrame | pd.Series, *, index: bool | None = None, headers: Mapping[str, str] | None = None,
          digits: int = 3) -> Table:
    """A frame or series as a reader's table.

    Parameters
    ----------
    data : pandas.DataFrame or pandas.Series
        What to show; a series becomes one column (named by ``headers``, its name or "value").
    index : bool, optional
        Show the index as the first column(s). By default it is dropped when it only numbers the
        rows (unnamed integers, as after ``reset_index`` or a filter) and shown otherwise.
    headers : mapping of str to str, optional
        Headers for particular columns, over the defaults of :func:`header`.
    digits : int, default 3
        Decimal places of float columns.

    Returns
    -------
    Table
        Rendered without row numbers, in HTML and as text.
    """
    if isinstance(data, pd.Series):
        data = data.to_frame(name=data.name if data.name is not None else "value")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data: got a {type(data).__name__}; expected a pandas DataFrame or Series")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits: got {digits!r}; expected a non-negative integer")
    if index is None:
        numbers_rows = data.index.nlevels == 1 and data.index.name is None and pd.api.types.is_integer_dtype(data.index)
        index = not numbers_rows
    if index:  # unnamed index levels get blank headers, as pandas shows them
        data = data.rename_axis([" " * k if n is None else n for k, n in enumerate(data.index.names)])
    frame = data.reset_index() if index else data.reset_index(drop=True)
    given = dict(headers or {})

    def name(column: object) -> str:
        if isinstance(column, tuple):  # a pivot's (measure, analysis...) header: the measure is renamed
            return ", ".join([name(column[0]), *(str(level) for level in column[1:] if str(level))])
        return given[column] if column in given else header(column)

    frame.columns = [name(column) for column in frame.columns]
    return Table(frame=frame, digits=digits)
