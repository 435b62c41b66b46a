"""Compare a fit with the truth: did the estimates land on the parameters?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmmsim.fit import Fit
from lmmsim.truth import Truth


def recovery(fit: Fit, truth: Truth) -> pd.DataFrame:
    """One row per true parameter: truth, estimate, SE, 95 % CI and whether it covers.

    Parameters
    ----------
    fit : Fit
        From :func:`~lmmsim.fit.fit_lmm` or :func:`~lmmsim.fit.fit_ols`.
    truth : Truth
        The simulation's truth.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``parameter``; columns ``truth``, ``estimate``, ``se``, ``ci_low``,
        ``ci_high`` and ``covered`` (a nullable boolean: missing where the fit has no
        interval). Parameters the fit does not estimate (the variance components, for
        OLS) have missing estimates. ``attrs["status"]`` holds the fit's status.
    """
    if not isinstance(fit, Fit):
        raise ValueError(f"fit: got {type(fit).__name__}, expected an lmmsim Fit")
    if not isinstance(truth, Truth):
        raise ValueError(f"truth: got {type(truth).__name__}, expected an lmmsim Truth")
    true = pd.Series(truth.parameters(), name="truth", dtype=float)
    table = pd.DataFrame(true).join(fit.estimates, how="left")
    table.index.name = "parameter"
    has_ci = table["ci_low"].notna() & table["ci_high"].notna()
    covers = (table["ci_low"] <= table["truth"]) & (table["truth"] <= table["ci_high"])
    table["covered"] = pd.array(np.where(has_ci, covers, pd.NA), dtype="boolean")
    table.attrs["status"] = str(fit.status)
    return table
