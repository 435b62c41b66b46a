"""Benchmark ``lmmsim.fit.exact.block.fit_block`` against statsmodels, ``mixedlm`` and lme4.

On the same datasets in one run: blood_pressure defaults (40 patients x 8 weeks,
correlated random intercept and slope, ``X`` shared), schools defaults (20 schools x
4 classrooms x 20 students, nested intercepts, ``ses`` drawn per replication so ``X``
differs) and a parametric bootstrap of lme4's ``sleepstudy`` fit.  The datasets are
drawn vectorised from the scenarios' true parameters (the design from lmmsim's
``simulate`` with seed 0); all fits are REML.  Then a scaling series in the number
of replications and of groups.  Other fitters run on the first few replications;
``mixedlm`` (PyPI, Rust) and lme4 (``Rscript``, ``lmer`` per dataset) are skipped with a
line when absent.

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_block.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import patsy
import statsmodels.formula.api as smf

from lmmsim import scenarios, simulate
from lmmsim.datasets import load_sleepstudy
from lmmsim.fit.exact.block import fit_block
from lmmsim.fit.exact.block_layout import nested_columns


class Timing(NamedTuple):
    wall: float
    cpu: float

    def rate(self, count):
        return f"{count / self.wall:>9,.0f}/s ({count / self.cpu:>9,.0f} per CPU-s)"


def best_time(fn, repeats):
    """Shortest wall and process-CPU time of ``repeats`` calls, and the last result.

    On a shared machine other processes inflate the wall time; with one BLAS
    thread the CPU time estimates what an idle core would take.
    """
    wall = cpu = np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return Timing(wall, cpu), result


class Study(NamedTuple):
    name: str
    data: pd.DataFrame  # design columns of one dataset
    y: np.ndarray  # (R, n)
    X: np.ndarray  # (n, p) or (R, n, p)
    Z: np.ndarray
    groups: np.ndarray
    terms: list
    lme4: str  # formula with outcome "y"
    sm: dict  # statsmodels mixedlm arguments (outcome "y")
    sd_names: list  # lme4 VarCorr names of the SDs, in fit_block's order


def blood_pressure(rng, R, n_patients=40, n_weeks=8):
    design = scenarios.blood_pressure(n_patients=n_patients, n_weeks=n_weeks)
    data = simulate(design, 0).data.drop(columns="bp")
    X = patsy.dmatrix("week * drug", data, return_type="matrix").view(np.ndarray)
    groups = data["patient"].to_numpy()
    codes = np.unique(groups, return_inverse=True)[1].reshape(-1)
    Z = X[:, :2]
    cov = np.array([[12.0**2, -0.3 * 12.0], [-0.3 * 12.0, 1.0]])
    b = rng.standard_normal((R, n_patients, 2)) @ np.linalg.cholesky(cov).T
    y = X @ [150.0, -0.3, 0.0, -1.5] + np.einsum("nq,rnq->rn", Z, b[:, codes]) + 6.0 * rng.standard_normal((R, len(X)))
    return Study(f"blood_pressure {n_patients}x{n_weeks}", data, y, X, Z, groups, [(2, 1)],
                 "y ~ week * drug + (1 + week | patient)", dict(formula="y ~ week * drug", groups="patient",
                 re_formula="~week"), ["patient|(Intercept)|", "patient|week|"])


def schools(rng, R):
    data = simulate(scenarios.schools(), 0).data.drop(columns="score")
    n = len(data)
    school, classroom = data["school"].to_numpy(), data["classroom"].to_numpy()
    s_codes = np.unique(school, return_inverse=True)[1].reshape(-1)
    c_codes = np.unique(classroom, return_inverse=True)[1].reshape(-1)
    ses = rng.standard_normal((R, n))  # a student-level covariate: new students every replication
    X = np.stack([np.ones((R, n)), np.broadcast_to(data["method"].to_numpy(float), (R, n)), ses], axis=-1)
    y = (X @ [50.0, 5.0, 3.0] + 6.0 * rng.standard_normal((R, s_codes.max() + 1))[:, s_codes]
         + 4.0 * rng.standard_normal((R, c_codes.max() + 1))[:, c_codes] + 10.0 * rng.standard_normal((R, n)))
    inner = nested_columns(school, classroom)
    return Study("schools 20x4x20", data, y, X, np.column_stack([np.ones(n), inner]), school,
                 [(1, 1), (1, inner.shape[1])], "y ~ method + ses + (1 | school) + (1 | school:classroom)",
                 dict(formula="y ~ method + ses", groups="school", re_formula="1",
                      vc_formula={"classroom": "0 + C(classroom)"}),
                 ["school|(Intercept)|", "school:classroom|(Intercept)|"])


def sleepstudy(rng, R):
    """Parametric bootstrap of lme4's sleepstudy fit (as MixedModels.jl benchmarks it)."""
    data = load_sleepstudy()
    X = np.column_stack([np.ones(len(data)), data["Days"].to_numpy(float)])
    groups = data["Subject"].to_numpy()
    fit = fit_block(data["Reaction"].to_numpy(), X, X, groups, [(2, 1)])
    codes = np.unique(groups, return_inverse=True)[1].reshape(-1)
    lam = np.array([[fit.theta[0, 0], 0.0], [fit.theta[0, 1], fit.theta[0, 2]]]) * fit.sigma_e[0]
    b = rng.standard_normal((R, codes.max() + 1, 2)) @ lam.T
    y = X @ fit.beta[0] + np.einsum("nq,rnq->rn", X, b[:, codes]) + fit.sigma_e[0] * rng.standard_normal((R, len(X)))
    return Study("sleepstudy bootstrap", data.drop(columns="Reaction"), y, X, X, groups, [(2, 1)],
                 "y ~ Days + (1 + Days | Subject)", dict(formula="y ~ Days", groups="Subject", re_formula="~Days"),
                 ["Subject|(Intercept)|", "Subject|Days|"])


def ours(study: Study):
    return fit_block(study.y, study.X, study.Z, study.groups, study.terms)


def with_y(study: Study, r: int) -> pd.DataFrame:
    data = study.data.copy()
    data["y"] = study.y[r]
    if study.X.ndim == 3:
        data["ses"] = study.X[r, :, 2]
    return data


def statsmodels_fits(study: Study, S: int):
    """(S, p) beta and (S,) REML log-likelihoods from statsmodels' default fit."""
    betas, llfs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(S):
            args = dict(study.sm)
            result = smf.mixedlm(args.pop("formula"), with_y(study, r), **args).fit(reml=True)
            betas.append(result.fe_params.to_numpy())
            llfs.append(result.llf)
    return np.array(betas), np.array(llfs)


def mixedlm_fits(study: Study, S: int):
    """(S, p) beta and (S,) REML criteria from the mixedlm package (lmer, then refit)."""
    import mixedlm

    first = mixedlm.lmer(study.lme4, with_y(study, 0))
    results = [first] + [first.refit(study.y[r]) for r in range(1, S)] if study.X.ndim == 2 else \
        [first] + [mixedlm.lmer(study.lme4, with_y(study, r)) for r in range(1, S)]
    return np.array([list(res.fixef().values()) for res in results]), np.array([res.REMLcrit() for res in results])


LME4_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], stringsAsFactors = TRUE)
ys <- as.matrix(read.csv(args[2]))
per_rep_x <- "ses" %in% names(data) && ncol(read.csv(args[3])) > 0
xs <- if (per_rep_x) as.matrix(read.csv(args[3])) else NULL
out <- NULL
start <- proc.time()
for (r in seq_len(ncol(ys))) {
  data$y <- ys[, r]
  if (per_rep_x) data$ses <- xs[, r]
  f <- lmer(as.formula(args[4]), data = data)
  out <- rbind(out, c(fixef(f), REMLcrit(f), isSingular(f)))
}
elapsed <- proc.time() - start
write.csv(out, args[5], row.names = FALSE)
cat(elapsed[["elapsed"]], elapsed[["user.self"]] + elapsed[["sys.self"]], "\n")
"""


def lme4_fits(study: Study, S: int, tmp: Path):
    """lme4's lmer on the first S replications: betas, criteria, singular flags, Timing.

    Not ``refit``: in lme4 1.1.31 ``refit(fit, newresp)`` can report a REML
    criterion (and theta) that differ from a fresh ``lmer`` on the same data.
    """
    study.data.to_csv(tmp / "data.csv", index=False)
    pd.DataFrame(study.y[:S].T).to_csv(tmp / "y.csv", index=False)
    pd.DataFrame(study.X[:S, :, 2].T if study.X.ndim == 3 else np.empty((len(study.y[0]), 0))).to_csv(
        tmp / "x.csv", index=False)
    (tmp / "bench.R").write_text(LME4_SCRIPT)
    out = subprocess.run(["Rscript", str(tmp / "bench.R"), str(tmp / "data.csv"), str(tmp / "y.csv"),
                          str(tmp / "x.csv"), study.lme4, str(tmp / "out.csv")],
                         capture_output=True, text=True, check=True)
    wall, cpu = map(float, out.stdout.split())
    table = pd.read_csv(tmp / "out.csv").to_numpy()
    return table[:, :-2], table[:, -2], table[:, -1].astype(bool), Timing(wall, cpu)


def compare(study: Study, R: int, S: int, L: int, repeats: int, tmp: Path):
    t_ours, fit = best_time(lambda study=study: ours(study), repeats)
    t_df, _ = best_time(lambda: fit_block(study.y, study.X, study.Z, study.groups, study.terms,
                                          satterthwaite=True), 1)
    crit, beta = fit.criterion, fit.beta
    print(f"\n== {study.name}: n = {study.y.shape[1]}, p = {beta.shape[1]}, REML, same datasets ==")
    print(f"lmmsim fit_block : {t_ours.rate(R)}  ({R} replications; converged {fit.converged.mean():.2%}, "
          f"boundary {fit.boundary.mean():.2%}, {fit.n_eval / R:.1f} evaluations/fit)")
    print(f"  + Satterthwaite: {t_df.rate(R)}")

    def report(name, timing, count, their_beta, their_crit, singular=None):
        ratio = (timing.wall / count) / (t_ours.wall / R), (timing.cpu / count) / (t_ours.cpu / R)
        rel = np.abs(their_beta - beta[:count]) / np.maximum(np.abs(beta[:count]), fit.se[:count])
        flags = "" if singular is None else f", singular flags equal {np.mean(singular == fit.boundary[:count]):.0%}"
        print(f"{name:<17}: {timing.rate(count)}  (first {count}) -> lmmsim {ratio[0]:,.0f}x faster wall, "
              f"{ratio[1]:,.0f}x CPU; agreement: max rel d beta {rel.max():.1e}, "
              f"criterion ours - theirs min {np.min(crit[:count] - their_crit):.1e} max "
              f"{np.max(crit[:count] - their_crit):.1e}{flags}")

    t_sm, (sm_beta, sm_llf) = best_time(lambda: statsmodels_fits(study, S), 1)
    report("statsmodels", t_sm, S, sm_beta, -2.0 * sm_llf)
    try:
        import mixedlm  # noqa: F401
    except ImportError:
        print("mixedlm          : skipped (pip install mixedlm to include the Rust-backed package)")
    else:
        t_ml, (ml_beta, ml_crit) = best_time(lambda: mixedlm_fits(study, S), 1)
        report("mixedlm", t_ml, S, ml_beta, ml_crit)
    if shutil.which("Rscript") is None:
        print("lme4             : skipped (no Rscript on PATH)")
        return
    try:
        l_beta, l_crit, l_sing, t_l = lme4_fits(study, L, tmp)
    except (subprocess.CalledProcessError, ValueError) as err:
        print(f"lme4             : skipped (Rscript with lme4 failed: {str(err)[:80]})")
        return
    report("lme4 (lmer)", t_l, L, l_beta, l_crit, l_sing)


def scaling(rng, R, repeats):
    print("\n== Scaling: blood_pressure design, correlated intercept and slope, REML ==")
    print(f"{'patients':>8} {'weeks':>5} {'reps':>6} {'fits/s (per CPU-s)':>36} {'peak MiB':>9} {'KiB/rep':>8}")
    rows = [(40, 8, r) for r in (R // 16, R // 4, R)] + [(J, 8, R // 4) for J in (10, 160, 640)]
    rows += [(40, m, R // 4) for m in (4, 32)]
    for J, m, reps in rows:
        study = blood_pressure(rng, reps, J, m)
        timing, _ = best_time(lambda study=study: ours(study), repeats)
        tracemalloc.start()
        ours(study)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{J:>8} {m:>5} {reps:>6} {timing.rate(reps):>36} {peak / 2**20:>9.1f} {peak / 1024 / reps:>8.1f}")
    print("(peak = memory allocated by the fit, beyond y and X)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (under a minute)")
    quick = parser.parse_args().quick
    R, S, L, repeats = (2_000, 5, 20, 2) if quick else (20_000, 20, 200, 3)
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; best of {repeats} runs")
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    rng = np.random.default_rng(np.random.SeedSequence(2026))
    with tempfile.TemporaryDirectory() as tmp:
        compare(blood_pressure(rng, R), R, S, L, repeats, Path(tmp))
        compare(schools(rng, R // 4), R // 4, S, L // 4, repeats, Path(tmp))
        compare(sleepstudy(rng, R), R, S, L, repeats, Path(tmp))
    scaling(rng, R, repeats)
    print("\nload average at end: {:.1f} {:.1f} {:.1f} (other processes inflate wall times)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
