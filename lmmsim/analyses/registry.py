"""Every built-in analysis by name, and :func:`get` to choose some."""

from __future__ import annotations

from collections.abc import Sequence

from lmmsim.analyses import cluster_means, lmm, lrt, ols, variance
from lmmsim.analyses.base import Analysis

ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis("ols", "naive OLS, t test with N - p df", ols.ols, ols.ols_batch, needs=("ols",)),
        Analysis("ols_cluster", "OLS with CR1 cluster-robust SEs, t test with J - 1 df", ols.ols_cluster,
                 ols.ols_cluster_batch, needs=("ols",)),
        Analysis("ols_cr2", "OLS with CR2 (Bell-McCaffrey) SEs, t test with their Satterthwaite df", ols.ols_cr2,
                 ols.ols_cr2_batch),
        Analysis("cluster_means", "OLS of cluster means on cluster-level columns, t with J - p_b df",
                 cluster_means.cluster_means, cluster_means.cluster_means_batch, needs=("between",)),
        Analysis("lmm_wald", "LMM by REML, model-based SE, Wald z test", lmm.lmm_wald, lmm.lmm_wald_batch,
                 needs=("reml",), block=False),
        Analysis("lmm_t", "LMM by REML, model-based SE, t test with between-within df", lmm.lmm_t, lmm.lmm_t_batch,
                 needs=("reml",)),
        Analysis("lmm_satterthwaite", "LMM by REML, model-based SE, t test with Satterthwaite df (lmerTest)",
                 lmm.lmm_satterthwaite, lmm.lmm_satterthwaite_batch, lmm.check_satterthwaite,
                 needs=("reml", "satterthwaite")),
        Analysis("lrt", "likelihood-ratio test of each coefficient (ML fits), chi2(1)", lrt.lrt, lrt.lrt_batch,
                 needs=("ml",), block=False),
        Analysis("lrt_vc", "REML likelihood-ratio test of sd(Intercept) = 0, 50:50 chi2(0):chi2(1)",
                 lrt.lrt_vc, lrt.lrt_vc_batch, lrt.check_random_intercept, lrt.lrt_vc_names, needs=("reml",),
                 block=False),
        Analysis("sd_reml", "REML estimates of the variance parameters (SDs, correlations)", variance.sd_reml,
                 variance.sd_reml_batch, reports=variance.reports, needs=("reml",)),
        Analysis("sd_ml", "ML estimates of the variance parameters (SDs, correlations)", variance.sd_ml,
                 variance.sd_ml_batch, reports=variance.reports, needs=("ml",)),
    )
}
"""Every built-in analysis by name."""


def get(names: str | Analysis | Sequence[str | Analysis]) -> tuple[Analysis, ...]:
    """Analyses by name (``"ols,lmm_t"``, ``["ols", "lmm_t"]``) or as given.

    Raises
    ------
    ValueError
        For an unknown name, a duplicate or an empty list.

    Examples
    --------
    >>> [a.name for a in get("ols, lmm_t")]
    ['ols', 'lmm_t']
    """
    if isinstance(names, (str, Analysis)):
        names = [names] if isinstance(names, Analysis) else [n.strip() for n in names.split(",")]
    out = []
    for item in names:
        if isinstance(item, Analysis):
            out.append(item)
        elif item in ANALYSES:
            out.append(ANALYSES[item])
        else:
            raise ValueError(f"analyses: got {item!r}, expected one of {list(ANALYSES)}")
    if not out:
        raise ValueError(f"analyses: got none, expected some of {list(ANALYSES)}")
    seen = [a.name for a in out]
    if len(set(seen)) != len(seen):
        raise ValueError(f"analyses: {seen} names one analysis twice")
    return tuple(out)
