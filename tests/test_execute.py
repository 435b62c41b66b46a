"""Executors: serial, threads, processes and a dask cluster with several threads per worker
give byte-identical result tables, statuses and messages included."""

import platform
import resource
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
from pandas.testing import assert_frame_equal

from lmmsim import montecarlo as mc
from lmmsim import scenarios

SMALL = {"n_clusters": 6, "cluster_size": 4}
# Small clusters: many fits end on the boundary or need a second optimizer, where the
# warnings that choose statsmodels' optimizer decide the row.
GENERAL = dict(params=SMALL, reps=32, seed=11, analyses="ols,lmm_wald,lmm_t", chunk_size=2, fast=False,
               progress=False)
FAST = dict(params=SMALL, grid={"beta1": [0.0, 1.0]}, reps=200, seed=11, analyses="ols,lmm_t,lrt_vc",
            chunk_size=25, progress=False)


def _tables(executor):
    return (mc.run(scenarios.cluster_trial, executor=executor, **GENERAL),
            mc.run(scenarios.cluster_trial, executor=executor, **FAST))


@pytest.fixture(scope="module")
def serial():
    return _tables(None)


def _same(tables, serial):
    for table, expected in zip(tables, serial):
        assert_frame_equal(table, expected)


def test_threads_give_the_serial_table(serial):
    with ThreadPoolExecutor(4) as pool:
        _same(_tables(pool), serial)


def test_processes_give_the_serial_table(serial):
    with ProcessPoolExecutor(2) as pool:
        _same(_tables(pool), serial)


def test_dask_with_threads_per_worker_gives_the_serial_table(serial):
    distributed = pytest.importorskip("distributed")
    import dask

    config = {"distributed.worker.multiprocessing-method": "fork", "distributed.comm.timeouts.connect": "60s"}
    with dask.config.set(config), distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster, timeout="60s") as client:
        _same(_tables(client), serial)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="page faults of glibc's heap trimming")
def test_fast_chunks_reuse_their_memory():
    """After the first chunk, a fast run's chunks reuse freed memory instead of faulting fresh
    pages in (counted by the kernel, not timed): ~3 page faults per replication without
    ``_steady_heap``, ~0.05 with it."""
    run = dict(reps=4000, seed=3, analyses="lmm_t", progress=False)
    mc.run(scenarios.cluster_trial, **run)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    mc.run(scenarios.cluster_trial, **run)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults / run["reps"] < 0.5
