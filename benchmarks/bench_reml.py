"""Benchmark ``lmmsim.fit.exact.fit_random_intercept`` against statsmodels MixedLM.

Design: J clusters of m observations; X = intercept + cluster-level binary
treatment (half the clusters) + observation-level normal covariate, shared by
all replications; beta = (0, 0.5, 0.3), sigma_u = 0.5, sigma_e = 1, REML.

Run from the repository root::

    .venv/bin/python benchmarks/bench_reml.py [--quick]

On a busy machine, multi-threaded OpenBLAS (the default) can stall on its
small matrix products; ``OPENBLAS_NUM_THREADS=1`` gives steadier figures, and
is what a Monte Carlo run with one process per core would use anyway.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import statsmodels.api as sm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's lmmsim, installed or not
from lmmsim.fit.exact import random_intercept as reml  # noqa: E402

BETA = np.array([0.0, 0.5, 0.3])


def design(rng, sizes):
    groups = np.repeat(np.arange(len(sizes)), sizes)
    treated = (np.arange(len(sizes)) % 2)[groups]
    X = np.column_stack([np.ones(len(groups)), treated, rng.standard_normal(len(groups))])
    return X, groups


def simulate(rng, X, groups, R, sigma_u=0.5, sigma_e=1.0):
    """R replications at once, y = X beta + sigma_u u[groups] + sigma_e e, built in place."""
    y = rng.standard_normal((R, len(groups)))  # e
    y *= sigma_e
    y += sigma_u * rng.standard_normal((R, groups.max() + 1))[:, groups]
    y += X @ BETA
    return y


class Timing(NamedTuple):
    wall: float
    cpu: float

    def rate(self, count):
        """'<per wall second> (<per CPU second>)'."""
        return f"{count / self.wall:>10,.0f} ({count / self.cpu:>10,.0f} per CPU-s)"


def best_time(fn, repeats):
    """Shortest wall and process CPU time of ``repeats`` calls, and the last result.

    On a shared machine the wall time is inflated by other processes; with one
    BLAS thread the CPU time is a steadier estimate of what an idle machine
    would take (extra BLAS threads add their own, partly spinning, CPU time).
    """
    wall = cpu = np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return Timing(wall, cpu), result


def fit_statsmodels(y, X, groups):
    """statsmodels' default fit, one replication at a time; returns (R, 4) beta and sigma_u."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in y:
            res = sm.MixedLM(row, X, groups=groups).fit(reml=True)
            out.append([*res.fe_params, np.sqrt(res.cov_re[0, 0])])
    return np.array(out)


def headline(rng, R, S, repeats):
    X, groups = design(rng, np.full(30, 20))
    y = simulate(rng, X, groups, R)
    t_ours, fit = best_time(lambda: reml.fit_random_intercept(y, X, groups), repeats)
    t_sm, ref = best_time(lambda: fit_statsmodels(y[:S], X, groups), 1)
    ours = np.column_stack([fit.beta[:S], fit.sigma_u[:S]])
    print(f"\n== 30 clusters x 20 observations (n = 600), REML, same {R} datasets ==")
    print(f"lmmsim exact: {t_ours.rate(R)} fits/s  ({R} replications)")
    print(f"statsmodels : {t_sm.rate(S)} fits/s  (first {S} replications, default lbfgs, one at a time)")
    print(f"speed-up    : {t_sm.wall / S / (t_ours.wall / R):>10,.0f} x wall, "
          f"{t_sm.cpu / S / (t_ours.cpu / R):,.0f} x CPU")
    print(f"agreement on those {S}: max |d beta| = {np.abs(ours[:, :3] - ref[:, :3]).max():.1e}, "
          f"max |d sigma_u| = {np.abs(ours[:, 3] - ref[:, 3]).max():.1e}; "
          f"boundary fits {fit.boundary.mean():.1%}, converged {fit.converged.mean():.1%}")


def scaling(rng, R, S, repeats):
    print("\n== Scaling (REML, shared X; statsmodels on a few replications) ==")
    print(f"{'J':>5} {'m':>5} {'n':>6} {'reps':>6} {'lmmsim fits/s (per CPU-s)':>36} "
          f"{'statsmodels fits/s (per CPU-s)':>36} {'speed-up (CPU)':>14}")
    rows = [(30, m) for m in (5, 10, 20, 50, 100)] + [(J, 20) for J in (10, 100, 300)]
    rows.append((30, "10-30"))
    for J, m in rows:
        sizes = rng.integers(10, 31, J) if m == "10-30" else np.full(J, m)
        X, groups = design(rng, sizes)
        n = len(groups)
        reps = int(min(R, 2e7 // n))  # bounded memory for the largest designs
        y = simulate(rng, X, groups, reps)
        t_ours, _ = best_time(lambda y=y, X=X, groups=groups: reml.fit_random_intercept(y, X, groups), repeats)
        t_sm, _ = best_time(lambda y=y, X=X, groups=groups: fit_statsmodels(y[:S], X, groups), 1)
        speed_up = t_sm.cpu / S / (t_ours.cpu / reps)
        print(f"{J:>5} {m:>5} {n:>6} {reps:>6} {t_ours.rate(reps):>36} {t_sm.rate(S):>36} {speed_up:>14,.0f}")
    print("(m = 10-30: unbalanced, cluster sizes uniform on 10..30)")


def end_to_end(rng, R, repeats):
    X, groups = design(rng, np.full(30, 20))

    def run():
        y = simulate(rng, X, groups, R)
        fit = reml.fit_random_intercept(y, X, groups)
        return fit.wald_p()[:, 1] < 0.05

    t_sim, y = best_time(lambda: simulate(rng, X, groups, R), repeats)
    t_fit, fit = best_time(lambda: reml.fit_random_intercept(y, X, groups), repeats)
    t_p, _ = best_time(fit.wald_p, repeats)
    t_all, reject = best_time(run, repeats)
    print(f"\n== End to end: simulate + fit + Wald p-values, {R} replications of 30 x 20 ==")
    print(f"simulate    : {t_sim.rate(R)} replications/s")
    print(f"fit         : {t_fit.rate(R)} replications/s")
    print(f"p-values    : {t_p.rate(R)} replications/s")
    print(f"all together: {t_all.rate(R)} replications/s  (power for the treatment effect: {reject.mean():.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (a few seconds)")
    quick = parser.parse_args().quick
    R, S, repeats = (2_000, 10, 2) if quick else (20_000, 50, 5)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={threads}; best of {repeats} runs")
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    rng = np.random.default_rng(np.random.SeedSequence(2024))
    headline(rng, R, S, repeats)
    scaling(rng, R // 4, max(S // 10, 3), repeats)
    end_to_end(rng, R, repeats)
    print("\nload average at end: {:.1f} {:.1f} {:.1f} (other processes inflate the timings)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
