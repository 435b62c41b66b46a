"""Fitters: statsmodels MixedLM (``lmmsim.fit.statsmodels``), lme4-style formulas with
crossed factors and correlated slopes (``lmmsim.fit.lmer``), OLS (``lmmsim.fit.ols``) and
exact batched REML/ML (:mod:`lmmsim.fit.exact`), with one :class:`FitStatus` for all of them
(``lmmsim.fit.status``)."""

from lmmsim.fit.lmer import fit_lmer
from lmmsim.fit.ols import fit_ols
from lmmsim.fit.result import Fit
from lmmsim.fit.statsmodels import BOUNDARY_TOL, OPTIMIZERS, Z95, fit_lmm, variance_covariance
from lmmsim.fit.status import FitStatus

__all__ = ["BOUNDARY_TOL", "OPTIMIZERS", "Z95", "Fit", "FitStatus", "fit_lmer", "fit_lmm", "fit_ols",
           "variance_covariance"]
