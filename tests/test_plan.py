"""Default chunk sizes of montecarlo.make_plan: by path, and bounded for large designs."""

from __future__ import annotations

from lmmsim import montecarlo as mc
from lmmsim import scenarios
from lmmsim.montecarlo.plan import CHUNK_VALUES


def plan(scenario, params=None, **options):
    return mc.make_plan(scenario, reps=10, seed=1, analyses="lmm_t", params=params, grid=None, model=None,
                        coefs=None, chunk_size=options.pop("chunk_size", None), fast=options.pop("fast", None))


def test_default_chunk_sizes_by_path():
    assert plan(scenarios.cluster_trial).chunk_size == mc.FAST_CHUNK
    assert plan(scenarios.blood_pressure).chunk_size == mc.BLOCK_CHUNK
    assert plan(scenarios.cluster_trial, fast=False).chunk_size == mc.GENERAL_CHUNK


def test_a_large_design_gets_smaller_chunks_and_a_given_size_is_kept():
    big = {"n_clusters": 300, "cluster_size": 20}  # 6,000 rows
    assert plan(scenarios.cluster_trial, big).chunk_size == CHUNK_VALUES // 6000 < mc.FAST_CHUNK
    assert plan(scenarios.cluster_trial, big, chunk_size=700).chunk_size == 700
