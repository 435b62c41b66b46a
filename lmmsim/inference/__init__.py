"""Inference for fitted models: denominator degrees of freedom, robust variances, intervals."""
