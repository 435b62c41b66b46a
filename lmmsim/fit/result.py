"""One fitted model, whatever fitted it: estimates, status, log-likelihood."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lmmsim.fit.status import FitStatus


@dataclass(frozen=True)
class Fit:
    """One fitted model.

    Attributes
    ----------
    method : str
        ``"REML"``, ``"ML"``, ``"OLS"`` or ``"OLS (cluster-robust)"``.
    estimates : pandas.DataFrame
        Indexed by parameter name; columns ``estimate``, ``se``, ``ci_low``, ``ci_high``
        (95 %, Wald). Fixed effects use the names of X's columns; variance parameters
        are ``sd(term|factor)``, ``cor(term1,term2|factor)`` and ``sd(residual)``. SE and
        CI are NaN where statsmodels gives no standard error (residual SD,
        correlations) or where the fit is on the boundary.
    status : FitStatus
        Convergence and boundary status.
    loglik : float
        Maximised (restricted, for REML) log-likelihood.
    nobs : int
        Observations used.
    result : object
        The underlying statsmodels results object.
    """

    method: str
    estimates: pd.DataFrame
    status: FitStatus
    loglik: float
    nobs: int
    result: Any = field(default=None, repr=False, compare=False)
