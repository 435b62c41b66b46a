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
        ``"REML"``, ``"ML"``, ``"OLS"``, ``"OLS (cluster-robust CR2)"`` or
        ``"OLS (cluster-robust CR1)"``.
    estimates : pandas.DataFrame
        Indexed by parameter name; columns ``estimate``, ``se``, ``ci_low``, ``ci_high``
        (95 %, Wald; for a mixed model with the normal quantile, for OLS with the t quantile,
        and a cluster-robust OLS fit adds its ``df``). Fixed effects use the names of X's columns; variance parameters
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
        The underlying statsmodels results object (for what the properties below do not
        give); for ``fit_lmer``, an ``LmerResult`` with the same attributes.
    deviance : object or None
        For mixed models, lme4's profiled deviance of the model and data
        (``lmmsim.inference.deviance``); None for OLS.
    theta : numpy.ndarray or None
        The estimate in lme4's parameterisation θ (relative covariance factor).
    """

    method: str
    estimates: pd.DataFrame
    status: FitStatus
    loglik: float
    nobs: int
    result: Any = field(default=None, repr=False, compare=False)
    deviance: Any = field(default=None, repr=False, compare=False)
    theta: Any = field(default=None, repr=False, compare=False)

    def satterthwaite(self, L: Any = None) -> pd.DataFrame:
        """t tests of the fixed effects, or of contrasts ``L``, with Satterthwaite df.

        See ``lmmsim.inference.satterthwaite.satterthwaite``: columns ``estimate``,
        ``se``, ``df``, ``t``, ``p_value``.
        """
        from lmmsim.inference.satterthwaite import satterthwaite  # scipy: loaded when used

        return satterthwaite(self, L)

    def _fitted_result(self, what: str) -> Any:
        if self.result is None:
            raise ValueError(f"fit: {what} of a failed fit are not available ({self.status})")
        return self.result

    @property
    def fixed_effects(self) -> pd.Series:
        """The estimated fixed effects β̂, by column name of X."""
        result = self._fitted_result("the fixed effects")
        return result.fe_params if hasattr(result, "fe_params") else result.params

    @property
    def random_effects(self) -> pd.DataFrame:
        """The predicted random effects (BLUPs), one row per group and one column per term."""
        result = self._fitted_result("the random effects")
        if not hasattr(result, "random_effects"):
            raise ValueError(f"fit: an {self.method} fit has no random effects")
        return pd.DataFrame(result.random_effects).T

    @property
    def residuals(self) -> pd.Series:
        """Observed minus fitted values (for a mixed model, the fitted values include the BLUPs)."""
        return self._fitted_result("the residuals").resid

    @property
    def fitted(self) -> pd.Series:
        """The fitted values (for a mixed model, including the BLUPs)."""
        return self._fitted_result("the fitted values").fittedvalues
