"""Inference for fitted models: denominator df (``lmmsim.inference.df``: between-within),
Wald tests and intervals (``wald``), lme4's profiled deviance (``deviance``), Satterthwaite
df for statsmodels fits (``satterthwaite``) and for the batched random-intercept fits
(``satterthwaite_ri``), profile-likelihood intervals (``profile``), cluster-robust tests
with CR2 (``cluster_robust``) and parametric-bootstrap intervals (``bootstrap``)."""

from lmmsim.inference.df import between_within_df, cluster_level, denominator_df
from lmmsim.inference.wald import LEVEL, t_or_z

__all__ = ["LEVEL", "between_within_df", "cluster_level", "denominator_df", "t_or_z"]
