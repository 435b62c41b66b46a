"""Monte Carlo studies: many simulated datasets, several analyses, one tidy table.

:func:`run` simulates a study ``reps`` times in every cell of a parameter grid, applies
each analysis to each dataset, and returns one row per replication × analysis × cell ×
reported parameter. :func:`lmmsim.summary.summarise` turns that into bias, RMSE,
coverage, rejection rates and their Monte Carlo SEs.

Example
-------
>>> from lmmsim import montecarlo as mc, scenarios
>>> from lmmsim.summary import summarise
>>> results = mc.run(
...     scenarios.cluster_trial,              # a Scenario, a Design, or your own function
...     params={"sigma_u": 1.0},              # held fixed
...     grid={"n_clusters": [10, 30]},        # varied: one cell per value (or combination)
...     analyses=["ols", "lmm_t"],
...     coefs=["treatment"],                  # fixed effects to report (default: all but the intercept)
...     reps=200, seed=2024, progress=False,  # progress=False in notebooks that are built
... )
>>> list(results.columns)  # doctest: +NORMALIZE_WHITESPACE
['n_clusters', 'cell', 'rep', 'analysis', 'parameter', 'truth', 'estimate', 'se', 'ci_low',
 'ci_high', 'statistic', 'df', 'p_value', 'status', 'message']
>>> table = summarise(results)  # one row per n_clusters x analysis x parameter

Seeds
-----
Replication ``rep`` of grid cell ``cell`` is simulated from
``replication_seed(seed, cell, rep)``, i.e. ``SeedSequence(seed).spawn(n_cells)[cell]
.spawn(reps)[rep]``, whatever the executor, the number of workers, the order in which
chunks finish, or ``reps``. :func:`dataset` returns that replication's data for a
closer look. Cells are numbered in the order of ``itertools.product`` over the grid
values (the first grid parameter varies slowest); cells get independent random numbers.

Replications are run in chunks of ``chunk_size`` (a chunk is the unit of work sent to
an executor and of checkpointing). Results are identical for every executor and worker
count; in the fast path a different ``chunk_size`` may change estimates in the last
digits (the batch fitter iterates until all replications of a chunk converge).

Fast path
---------
When the design has no dropout, the model's random effects are a random intercept of
``model.groups`` or blocks within it (intercepts and slopes on columns that are the same
in every replication, nested intercepts ``"0 + C(unit)"``), and every analysis has a
batch form for such a model (all the built-in ones but ``lmm_wald``, ``lrt`` and
``lrt_vc``, which take random intercepts only), a chunk is simulated as arrays and
fitted at once: mixed models with the exact REML/ML fitters
:func:`lmmsim.fit.exact.fit_random_intercept` and :func:`lmmsim.fit.exact.fit_block`,
OLS with numpy. :func:`fast_path_reason` says why a study does not qualify. The
data of each replication are the same draws :func:`lmmsim.simulate.simulate` makes
from the same seed (both take them from :func:`lmmsim.simulate.draws.draw`; equal to
rounding), so both paths analyse the same datasets.
``fast=False`` forces the general path (statsmodels, one dataset at a time).

Executors
---------
``executor=None`` runs serially. Any ``concurrent.futures`` executor works, and a
``dask.distributed.Client`` runs the chunks on its cluster (any threads per worker); all
give the same table. Threads of one process fit with statsmodels one at a time (its
warnings, which choose the optimizer and the status, are process-wide state), so for
speed use processes (``ProcessPoolExecutor``, or dask workers with one thread each). A
study given as your own function must be importable (defined in a module) for process
pools.

Failures
--------
An analysis that raises, does not converge, or ends on the boundary is recorded in its
rows' ``status`` (``ok``, ``boundary``, ``not_converged``, ``failed``; see
:mod:`lmmsim.schema`) and ``message``; the run goes on.

Checkpoints
-----------
With ``checkpoint=FOLDER`` every finished chunk is written to the folder atomically;
running again with the same arguments reuses finished chunks and computes only the
rest, and returns the same table as an uninterrupted run. A run holds the folder while
it runs (a second run on it is refused), and a chunk file is reused only if it is
complete and was written by the same run with the same lmmsim code (otherwise it is
computed again); see ``lmmsim.montecarlo.checkpoint``. Ctrl-C raises
``lmmsim.montecarlo.run.Interrupted`` (a ``KeyboardInterrupt``) saying how many
replications are saved. ``reps`` may be increased
between runs (chunks are keyed by their replications).

Stages
------
:func:`run` is a pipeline, one module per stage: ``plan`` checks the arguments and
freezes them into a :class:`Plan` (what a checkpoint's manifest records), ``checkpoint``
reuses finished chunks, ``execute`` runs the others (:class:`Chunk` by chunk), and ``run``
assembles the table.
"""

from lmmsim.montecarlo.plan import BLOCK_CHUNK, FAST_CHUNK, GENERAL_CHUNK, Chunk, Plan, fast_path_reason, make_plan
from lmmsim.montecarlo.run import run
from lmmsim.montecarlo.study import Study, dataset, replication_seed
from lmmsim.schema import RESULT_COLUMNS
from lmmsim.simulate import simulate_batch

__all__ = ["BLOCK_CHUNK", "FAST_CHUNK", "GENERAL_CHUNK", "RESULT_COLUMNS", "Chunk", "Plan", "Study", "dataset",
           "fast_path_reason", "make_plan",
           "replication_seed", "run", "simulate_batch"]
