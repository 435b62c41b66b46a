"""Benchmark Monte Carlo studies end to end: ``lmmsim.montecarlo.run`` against other fitters.

For cluster_trial (30 clusters x 20, random intercept), blood_pressure (40 patients x 8
weeks, correlated random intercept and slope) and schools (20 x 4 x 20, nested
intercepts), all at their defaults, with ``lmm_t``, on the same datasets in one run:

- lmmsim end to end: ``montecarlo.run`` from seed to result table, serial;
- lmmsim fit only: the chunk's batched REML fit (``analyses.fit_batch``) on arrays
  already simulated (``simulate_batch``);
- statsmodels MixedLM (lmmsim's general path, ``fast=False``) on the first replications;
- the ``mixedlm`` package (PyPI) and lme4 (``lmer`` per dataset via ``Rscript``) on the
  first replications, each skipped with a line when absent.

Agreement is the largest difference in the fixed effects' estimates from the fast
path's. Then a scaling series of the end-to-end run in replications and in clusters,
with time and peak memory (tracemalloc, a separate run). Run from the repository root::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_montecarlo.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_block import Timing, best_time  # noqa: E402 - the benchmarks share their timer

from lmmsim import montecarlo as mc  # noqa: E402
from lmmsim import scenarios  # noqa: E402
from lmmsim.analyses import fit_batch, is_random_intercept  # noqa: E402

SEED = 2026
LME4 = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], stringsAsFactors = TRUE)
out <- NULL
start <- proc.time()
for (part in split(data, data$rep)) {
  f <- lmer(as.formula(args[2]), data = part)
  out <- rbind(out, fixef(f))
}
elapsed <- proc.time() - start
write.csv(out, args[3], row.names = FALSE)
cat(elapsed[["elapsed"]], elapsed[["user.self"]] + elapsed[["sys.self"]], "\n")
"""


def end_to_end(scenario, reps, **options):
    return mc.run(scenario, reps=reps, seed=SEED, analyses="lmm_t", progress=False, **options)


def fit_only(scenario, reps):
    """Timing of the batched REML fits of ``reps`` replications, simulated beforehand."""
    design = scenario()
    chunk = mc.FAST_CHUNK if is_random_intercept(scenario.model) else mc.BLOCK_CHUNK  # as montecarlo.run
    batches = [mc.simulate_batch(design, scenario.model, [mc.replication_seed(SEED, 0, r)
                                                          for r in range(s, min(s + chunk, reps))])
               for s in range(0, reps, chunk)]
    return best_time(lambda: [fit_batch(b, ("reml",)) for b in batches], 2)[0]


def rusage(fn):
    """User and kernel CPU seconds and minor page faults of one call of ``fn``. The kernel's share
    is mostly zeroing fresh pages: glibc returns a chunk's freed arrays to the system when the
    free top of its heap exceeds its trim threshold, and the next chunk faults them in again
    (MALLOC_TOP_PAD_ in the environment keeps them)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt


def datasets(scenario, count):
    return [mc.dataset(scenario, seed=SEED, rep=r).data for r in range(count)]


def mixedlm_betas(scenario, count):
    import mixedlm

    formula = scenario.model.lme4.replace(scenario.model.outcome, "y", 1)
    return np.array([list(mixedlm.lmer(formula, d.rename(columns={scenario.model.outcome: "y"})).fixef().values())
                     for d in datasets(scenario, count)])


def lme4_betas(scenario, count, tmp: Path):
    frames = [d.assign(rep=r) for r, d in enumerate(datasets(scenario, count))]
    pd.concat(frames).to_csv(tmp / "data.csv", index=False)
    (tmp / "lme4.R").write_text(LME4)
    out = subprocess.run(["Rscript", str(tmp / "lme4.R"), str(tmp / "data.csv"), scenario.model.lme4,
                          str(tmp / "out.csv")], capture_output=True, text=True, check=True)
    wall, cpu = map(float, out.stdout.split())
    return pd.read_csv(tmp / "out.csv").to_numpy()[:, 1:], Timing(wall, cpu)


def compare(name, reps, small, tmp: Path):
    scenario = getattr(scenarios, name)
    end_to_end(scenario, 50)  # warm up (imports, caches)
    t_run, table = best_time(lambda: end_to_end(scenario, reps), 2)
    t_fit = fit_only(scenario, reps)
    rows = table.query("analysis == 'lmm_t'")
    coefs = list(rows["parameter"].unique())  # X's column order, as lme4 and mixedlm give fixef
    fast = rows.pivot(index="rep", columns="parameter", values="estimate")[coefs]
    print(f"\n== {name} defaults, lmm_t, {reps} replications, serial ==")
    print(f"lmmsim end to end: {t_run.rate(reps)}  (montecarlo.run, seed to result table)")
    print(f"lmmsim fit only  : {t_fit.rate(reps)}  (batched exact REML)")
    user, kernel, faults = rusage(lambda: end_to_end(scenario, reps))
    print(f"  end to end CPU: {1e6 * user / reps:.1f} µs user + {1e6 * kernel / reps:.1f} µs kernel per replication, "
          f"{faults / reps:.2f} page faults per replication")

    def report(label, timing, count, betas):
        ratio = (timing.wall / count) / (t_run.wall / reps), (timing.cpu / count) / (t_run.cpu / reps)
        diff = np.abs(np.asarray(betas)[:, -fast.shape[1]:] - fast.to_numpy()[:count]).max()
        print(f"{label:<17}: {timing.rate(count)}  (first {count}) -> lmmsim end to end {ratio[0]:,.0f}x faster "
              f"wall, {ratio[1]:,.0f}x CPU; max |d beta| {diff:.1e}")

    t_sm, general = best_time(lambda: end_to_end(scenario, small, fast=False), 1)
    sm = general.query("analysis == 'lmm_t'").pivot(index="rep", columns="parameter", values="estimate")
    report("statsmodels", t_sm, small, sm[coefs].to_numpy())
    try:
        import mixedlm  # noqa: F401
    except ImportError:
        print("mixedlm          : skipped (the PyPI package mixedlm is not installed)")
    else:
        t_ml, betas = best_time(lambda: mixedlm_betas(scenario, small), 1)
        report("mixedlm", t_ml, small, betas)
    if shutil.which("Rscript") is None:
        print("lme4             : skipped (no Rscript on PATH)")
        return
    try:
        betas, t_l = lme4_betas(scenario, 4 * small, tmp)
    except (subprocess.CalledProcessError, ValueError) as err:
        print(f"lme4             : skipped (Rscript with lme4 failed: {str(err)[:80]})")
        return
    report("lme4 (lmer)", t_l, 4 * small, betas)


def scaling(reps):
    print("\n== Scaling, end to end: cluster_trial, lmm_t, serial ==")
    print(f"{'clusters':>8} {'reps':>7} {'replications/s (per CPU-s)':>40} {'s/1000 reps':>11} {'peak MiB':>9}")
    rows = [(30, r) for r in (reps // 8, reps // 2, 2 * reps)] + [(j, reps // 2) for j in (15, 60, 120)]
    for clusters, count in rows:
        params = {"n_clusters": clusters}
        timing, _ = best_time(lambda count=count, params=params: end_to_end(scenarios.cluster_trial, count,
                                                                            params=params), 1)
        tracemalloc.start()
        end_to_end(scenarios.cluster_trial, count, params=params)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{clusters:>8} {count:>7} {timing.rate(count):>40} {1000 * timing.wall / count:>11.3f} "
              f"{peak / 2**20:>9.1f}")
    print("(peak = memory allocated during the run, including the result table)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (about a minute)")
    quick = parser.parse_args().quick
    sizes = {"cluster_trial": 4_000, "blood_pressure": 2_000, "schools": 1_000} if quick else \
        {"cluster_trial": 20_000, "blood_pressure": 10_000, "schools": 4_000}
    small = 3 if quick else 10
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"MALLOC_TOP_PAD_={os.environ.get('MALLOC_TOP_PAD_', 'default')}")
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        for name, reps in sizes.items():
            compare(name, reps, small, Path(tmp))
    scaling(sizes["cluster_trial"] // 2)
    print("\nload average at end: {:.1f} {:.1f} {:.1f} (other processes inflate wall times)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
