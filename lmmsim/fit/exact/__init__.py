"""Exact fitters for special models, many replications at once (the Monte Carlo fast path):
``random_intercept`` for one random intercept, ``block`` for every model whose random effects
are nested in one top-level grouping factor (correlated intercepts and slopes, nested intercepts)."""

from lmmsim.fit.exact.block import BlockFit, fit_block
from lmmsim.fit.exact.block_layout import BlockLayout, block_layout, block_reason
from lmmsim.fit.exact.random_intercept import RandomInterceptFit, fit_random_intercept

__all__ = ["BlockFit", "BlockLayout", "RandomInterceptFit", "block_layout", "block_reason", "fit_block",
           "fit_random_intercept"]
