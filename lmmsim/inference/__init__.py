"""Inference for fixed effects: denominator df (``lmmsim.inference.df``) and Wald tests and
intervals (``lmmsim.inference.wald``)."""

from lmmsim.inference.df import between_within_df, cluster_level, denominator_df
from lmmsim.inference.wald import LEVEL, t_or_z

__all__ = ["LEVEL", "between_within_df", "cluster_level", "denominator_df", "t_or_z"]
