"""Turn vectorised t tests into the results of ``lmmsim.analyses``.

The tests of this package (:class:`~lmmsim.inference.satterthwaite_ri.SatterthwaiteTest`,
:class:`~lmmsim.inference.cluster_robust.ClusterRobustTest`) hold arrays of shape
(R, m) and a ``ci(level)`` method; these helpers give the one-dataset table (columns
``lmmsim.analyses.COLUMNS``) and the ``BatchResult`` of the Monte Carlo fast path.
``lmmsim.analyses`` is imported when called, so that it may import this package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["batch_result", "result_table", "select"]


def select(columns: Sequence[str], coefs: Sequence[str]) -> list[int]:
    """Positions of ``coefs`` among ``columns``; ValueError naming the missing ones."""
    columns = list(columns)
    missing = [c for c in coefs if c not in columns]
    if missing:
        raise ValueError(f"coefs: {missing} are not fixed effects of the model; expected some of {columns}")
    return [columns.index(c) for c in coefs]


def result_table(coefs: Sequence[str], test, status: str = "ok", message: str = "") -> pd.DataFrame:
    """One row per coefficient, from the first replication of ``test``."""
    from lmmsim.analyses import COLUMNS, LEVEL

    low, high = test.ci(LEVEL)
    frame = pd.DataFrame({
        "parameter": list(coefs), "estimate": test.estimate[0], "se": test.se[0], "ci_low": low[0],
        "ci_high": high[0], "statistic": test.statistic[0], "df": test.df[0], "p_value": test.p_value[0],
    })
    frame["status"], frame["message"] = status, " ".join(message.split())
    return frame[list(COLUMNS)]


def batch_result(coefs: Sequence[str], test, status=None, message=None):
    """A ``lmmsim.analyses.BatchResult``; status "ok" and no message unless given, shape (R,)."""
    from lmmsim.analyses import LEVEL, BatchResult

    R = test.estimate.shape[0]
    low, high = test.ci(LEVEL)
    return BatchResult(
        tuple(coefs), test.estimate, test.se, low, high, test.statistic, test.df, test.p_value,
        np.full(R, "ok", dtype=object) if status is None else status,
        np.full(R, "", dtype=object) if message is None else message,
    )
