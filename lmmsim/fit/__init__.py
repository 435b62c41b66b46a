"""Fitters: statsmodels MixedLM (:mod:`~lmmsim.fit.statsmodels`), OLS
(:mod:`~lmmsim.fit.ols`) and exact batched REML/ML (:mod:`~lmmsim.fit.exact`), with one
:class:`~lmmsim.fit.status.FitStatus` for all of them."""

from lmmsim.fit.ols import fit_ols
from lmmsim.fit.result import Fit
from lmmsim.fit.status import FitStatus
from lmmsim.fit.statsmodels import BOUNDARY_TOL, OPTIMIZERS, Z95, fit_lmm, variance_covariance

__all__ = ["BOUNDARY_TOL", "OPTIMIZERS", "Z95", "Fit", "FitStatus", "fit_lmm", "fit_ols", "variance_covariance"]
