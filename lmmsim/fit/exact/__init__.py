"""Exact fitters for special models, many replications at once (the Monte Carlo fast path)."""

from lmmsim.fit.exact.random_intercept import RandomInterceptFit, fit_random_intercept

__all__ = ["RandomInterceptFit", "fit_random_intercept"]
