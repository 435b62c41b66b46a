"""Ways to analyse a simulated dataset, each reporting estimate, SE, 95 % CI and p-value.

An :class:`Analysis` is a named method for the fixed effects of a model (or, for
``lrt_vc``, its random-intercept variance). Call it on one dataset, or let
:func:`lmmsim.montecarlo.run` apply it to thousands::

    >>> from lmmsim import scenarios, simulate
    >>> from lmmsim.analyses import ANALYSES
    >>> sim = simulate(scenarios.cluster_trial(), seed=1)
    >>> table = ANALYSES["lmm_t"](sim.data, scenarios.cluster_trial.model, coefs=["treatment"])
    >>> list(table.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['parameter', 'estimate', 'se', 'ci_low', 'ci_high', 'statistic', 'df', 'p_value', 'status', 'message']

The analyses (``ANALYSES``; every test is two-sided, of the null value 0):

``ols``
    Naive OLS: ignores the grouping; t test with N − p df.
``ols_cluster``
    OLS with cluster-robust (sandwich) SEs, clustered by ``model.groups``, with
    statsmodels' small-sample factor (CR1); t test with J − 1 df (J clusters), as Stata
    and Cameron & Miller (2015) recommend. With about ten clusters of unequal size it
    still rejects a true null clearly more often than nominal; ``ols_cr2`` is the
    small-sample remedy.
``ols_cr2``
    OLS with CR2 (Bell–McCaffrey) cluster-robust SEs and a t test with their
    Satterthwaite df (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018; the default
    test of the R package clubSandwich); see ``lmmsim.inference.cluster_robust``.
``cluster_means``
    OLS of the J cluster means of y on the cluster-level columns of X; t test with
    J − p_b df. Reports only cluster-level coefficients (constant within every cluster).
``lmm_wald``
    LMM by REML; the model-based SE of ``lmm_t`` (lme4's, which :func:`lmmsim.fit.fit_lmm`
    reports) and a Wald z test: it differs from ``lmm_t`` only in the normal reference.
``lmm_t``
    LMM by REML; model-based SE ``sqrt(diag(σ̂²(X'V̂₀⁻¹X)⁻¹))`` (the variance
    components treated as known, as lme4) and a t test with **between-within**
    denominator df (SAS ``DDFM=BETWITHIN``): J − p_b for the p_b cluster-level
    coefficients, N − J − p_w for the p_w coefficients that vary within clusters.
    With random slopes, a slope variable and its interactions with cluster-level
    variables are counted as between-cluster too (J minus their number); see
    :func:`~lmmsim.inference.denominator_df`. Exact for balanced designs whose effects are all of these
    kinds; otherwise an approximation (see ``lmm_satterthwaite``). Clusters are the
    levels of ``model.groups``; nested variance components (``vc_formula``) are not
    counted.
``lmm_satterthwaite``
    LMM by exact REML, the model-based SE of ``lmm_t`` and a t test with lmerTest's
    Satterthwaite df: in closed form for random-intercept models
    (``lmmsim.inference.satterthwaite_ri.satterthwaite_ri``), from
    :func:`lmmsim.fit.exact.fit_block` for intercepts and slopes on plain columns and
    nested intercepts (``"0 + C(unit)"``); other models are refused. It differs from
    ``lmm_t`` in unbalanced designs and at singular fits (σ̂_u = 0), where its df are
    N − p.
``lrt``
    Likelihood-ratio test of each coefficient: ML fits with and without its column of
    X, LR = 2 Δℓ referred to χ²₁. Estimate, SE and CI are from the full ML fit (Wald).
``lrt_vc``
    REML likelihood-ratio test of σ_u = 0 (random-intercept models only), against the
    50:50 mixture of χ²₀ and χ²₁ (Self & Liang 1987; Stram & Lee 1994):
    p = ½ P(χ²₁ ≥ LR). Reports ``sd(Intercept|<groups>)`` with no SE or CI.
``sd_reml``, ``sd_ml``
    Estimates of the variance parameters (``sd(...)``, ``cor(...)``, ``sd(residual)``;
    see :func:`variance_names`) by REML or ML, to compare their bias; estimates only
    (no SE, CI or test). They ignore ``coefs``.

Each result row carries a ``status`` (see :data:`lmmsim.schema.STATUSES`): ``"ok"``,
``"boundary"`` (a variance estimated as zero), ``"not_converged"`` or ``"failed"`` (no
usable estimates), and a ``message``.

The package has one module per family of analyses, each with its per-dataset and batch
forms side by side (``ols``, ``cluster_means``, ``lmm``, ``lrt``, ``variance``); ``base`` has
the :class:`Analysis` type and ``registry`` the list.

Every analysis except a user's own has a *batch* form used by the Monte Carlo fast
path: it fits R replications of a random-intercept model at once, with
:func:`lmmsim.fit.exact.fit_random_intercept` for the mixed models and numpy for OLS;
all but ``lmm_wald``, ``lrt`` and ``lrt_vc`` also take block-diagonal models (random
slopes, nested intercepts; :func:`lmmsim.fit.exact.fit_block`). The
batch and per-dataset forms compute the same quantities (tested to optimizer
precision), except that statsmodels sometimes fails where the exact fitter does not.

Notes
-----
statsmodels' L-BFGS fit of MixedLM often ends at a spurious boundary point with an
infinite log-likelihood (statsmodels 0.15 / scipy 1.17), so the mixed-model analyses
here call :func:`lmmsim.fit.fit_lmm` with BFGS tried first (``LMM_OPTIMIZERS``), and
record any fit whose log-likelihood is not finite as ``"failed"``.
"""


from lmmsim.analyses.base import (
                                  NEEDS,
                                  Analysis,
                                  BatchFits,
                                  BatchResult,
                                  fit_batch,
                                  fixed_effect_names,
                                  guarded,
                                  is_random_intercept,
                                  variance_names,
)
from lmmsim.analyses.lmm import LMM_OPTIMIZERS
from lmmsim.analyses.registry import ANALYSES, get
from lmmsim.inference import LEVEL, between_within_df, cluster_level, denominator_df
from lmmsim.schema import COLUMNS, STATUSES
from lmmsim.simulate.batch import Batch, batch_from_data, design_matrices

__all__ = ["ANALYSES", "COLUMNS", "LEVEL", "LMM_OPTIMIZERS", "NEEDS", "STATUSES", "Analysis", "Batch", "BatchFits",
           "BatchResult", "batch_from_data", "between_within_df", "cluster_level", "denominator_df",
           "design_matrices", "fit_batch", "fixed_effect_names", "get", "guarded", "is_random_intercept",
           "variance_names"]
