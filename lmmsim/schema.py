"""The shape of results, defined once: columns, their types and the status codes.

An analysis returns one row per reported parameter with the columns :data:`COLUMNS`;
:func:`lmmsim.montecarlo.run` adds the replication's coordinates and the truth
(:data:`RESULT_COLUMNS`, after the grid parameters).

>>> from lmmsim.schema import COLUMNS, NUMBERS
>>> COLUMNS == ("parameter", *NUMBERS, "status", "message")
True
"""

from __future__ import annotations

STATUSES = ("ok", "boundary", "not_converged", "failed")
"""Status codes of a fit, from best to worst (converged in the interior, converged on the
boundary with a variance estimated as zero, not converged, failed with no usable estimates)."""
NUMBERS = ("estimate", "se", "ci_low", "ci_high", "statistic", "df", "p_value")
"""Numeric columns of an analysis result."""
COLUMNS = ("parameter", *NUMBERS, "status", "message")
"""Columns of an analysis result, one row per reported parameter."""
RESULT_COLUMNS = ("cell", "rep", "analysis", "parameter", "truth", *NUMBERS, "status", "message")
"""Columns of :func:`lmmsim.montecarlo.run`'s table after the grid parameters."""
FLOATS = ("truth", *NUMBERS)
"""The float columns of :data:`RESULT_COLUMNS`."""
RESULT_DTYPES = {"cell": "int64", "rep": "int64", "analysis": "str", "parameter": "str",
                 **dict.fromkeys(FLOATS, "float64"), "status": "str", "message": "str"}
"""The dtype of each of :data:`RESULT_COLUMNS`."""
PER_REPLICATION = ("rep", *FLOATS, "status", "message", "cell")
"""Columns that vary between replications (not grouping keys for summaries)."""
