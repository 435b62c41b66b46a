"""Throughput of lmmsim.inference next to the batched fitter it builds on.

Design: the level study of ``tests/level_study.py`` (10 clusters of sizes 5..40, a
cluster-level treatment), 20,000 replications; the design is either shared by all
replications or re-randomised in each (as the Monte Carlo engine's designs are).
Prints replications per second of ``fit_random_intercept``, ``satterthwaite_ri``
(treatment contrast) and ``cluster_robust`` (CR2 and CR1).

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_inference.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import level_study  # noqa: E402

from lmmsim.fit.exact import fit_random_intercept  # noqa: E402
from lmmsim.inference.cluster_robust import cluster_robust  # noqa: E402
from lmmsim.inference.satterthwaite_ri import satterthwaite_ri  # noqa: E402


def rate(function, reps: int) -> tuple[float, object]:
    """Replications per second of ``function()`` (best of three), and its result."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return reps / best, result


def main() -> None:
    y, X, groups = level_study.simulate()
    reps = len(y)
    for label, design in (("shared design", X[0]), ("one design per replication", X)):
        fit_rate, fit = rate(lambda d=design: fit_random_intercept(y, d, groups), reps)
        satt_rate, _ = rate(lambda d=design, f=fit: satterthwaite_ri(y, d, groups, f, [0.0, 1.0]), reps)
        cr2_rate, _ = rate(lambda d=design: cluster_robust(y, d, groups, contrasts=[0.0, 1.0]), reps)
        cr1_rate, _ = rate(lambda d=design: cluster_robust(y, d, groups, contrasts=[0.0, 1.0], type="CR1"), reps)
        print(f"{label}: fit {fit_rate:,.0f}/s, Satterthwaite {satt_rate:,.0f}/s, "
              f"CR2 {cr2_rate:,.0f}/s, CR1 {cr1_rate:,.0f}/s")


if __name__ == "__main__":
    main()
