"""Inference for fitted mixed models: the profiled deviance, Satterthwaite degrees of
freedom and profile-likelihood intervals."""
