"""Do montecarlo.run's tables keep their bytes? Record them on one commit, compare on another.

Thirteen fast-path studies (random intercept, slopes, nested; grids, all analyses, chunk sizes,
checkpoints re-read, a Design as study), ~145,000 rows. From the repository root::

    .venv/bin/python benchmarks/same_tables.py record /tmp/tables.pkl   # on the old commit
    .venv/bin/python benchmarks/same_tables.py compare /tmp/tables.pkl  # on the new one
    .venv/bin/python benchmarks/same_tables.py agree /tmp/tables.pkl    # same rows and statuses, numbers to 1e-4

``agree`` is for a change of arithmetic or of where an optimiser stops: statuses and
messages must be identical, numbers may move within the fits' stopping precision (1e-4,
relative to max(|value|, 1): the block fits stop at gradient norms up to ~5e-4, which
leaves a flat SD, e.g. of 20 schools, free in about its 6th digit, and moves an interval
end of SE ~3 by ~1e-5); it prints the largest such difference of each numeric column.
"""

import pickle
import shutil
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from lmmsim import montecarlo as mc
from lmmsim import scenarios as S

ALL_RI = "ols,ols_cluster,ols_cr2,cluster_means,lmm_wald,lmm_t,lmm_satterthwaite,lrt,lrt_vc,sd_reml,sd_ml"
ALL_BLOCK = "ols,ols_cluster,ols_cr2,cluster_means,lmm_t,lmm_satterthwaite,sd_reml,sd_ml"


def ck(study, **kw):
    d = tempfile.mkdtemp(prefix="speedck")
    try:
        t1 = mc.run(study, checkpoint=d + "/ck", progress=False, **kw)
        t2 = mc.run(study, checkpoint=d + "/ck", progress=False, **kw)  # reread from checkpoint
        pd.testing.assert_frame_equal(t1, t2, check_exact=True)
        return t1
    finally:
        shutil.rmtree(d)


def agreement(got: pd.DataFrame, ref: pd.DataFrame) -> dict[str, float]:
    """Largest relative difference per numeric column; raises where more than the last bits differ."""
    assert list(got.columns) == list(ref.columns) and len(got) == len(ref)
    worst = {}
    for column in got.columns:
        if not pd.api.types.is_float_dtype(got[column]):
            pd.testing.assert_series_equal(got[column], ref[column], check_exact=True)
            continue
        a, b = got[column].to_numpy(), ref[column].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), column
        scale = np.maximum(np.abs(b), 1.0)
        worst[column] = float(np.nanmax(np.abs(a - b) / scale, initial=0.0))
        assert worst[column] < 1e-4, (column, worst[column])
    return worst


CASES = {
    "ct_lmm_t_12k": lambda: mc.run(S.cluster_trial, reps=12000, seed=11, analyses="lmm_t", progress=False),
    "ct_lmm_t_chunk97": lambda: mc.run(
        S.cluster_trial, reps=3000, seed=5, analyses="lmm_t", chunk_size=97, progress=False
    ),
    "ct_grid": lambda: mc.run(
        S.cluster_trial,
        reps=600,
        seed=3,
        analyses="ols,lmm_t,lmm_wald",
        grid={"n_clusters": [6, 30], "sigma_u": [0.0, 1.0]},
        params={"cluster_size": 5},
        progress=False,
    ),
    "ct_all": lambda: mc.run(S.cluster_trial, reps=1500, seed=7, analyses=ALL_RI, progress=False),
    "ct_ckpt": lambda: ck(S.cluster_trial, reps=1100, seed=9, analyses="lmm_t,ols,lrt", chunk_size=300),
    "ct_coefs": lambda: mc.run(
        S.cluster_trial, reps=500, seed=2, analyses="lmm_t", coefs=["Intercept", "x"], progress=False
    ),
    "ct_design": lambda: mc.run(
        S.cluster_trial(n_clusters=8),
        reps=400,
        seed=2,
        analyses="lmm_t,ols",
        model=S.cluster_trial.model,
        progress=False,
    ),
    "bp_lmm_t": lambda: mc.run(S.blood_pressure, reps=3000, seed=13, analyses="lmm_t", progress=False),
    "bp_all": lambda: mc.run(S.blood_pressure, reps=600, seed=17, analyses=ALL_BLOCK, progress=False),
    "bp_ckpt": lambda: ck(S.blood_pressure, reps=700, seed=19, analyses="lmm_t,sd_reml", chunk_size=250),
    "pg_all": lambda: mc.run(S.plant_growth, reps=600, seed=23, analyses=ALL_BLOCK, progress=False),
    "sc_lmm_t": lambda: mc.run(S.schools, reps=800, seed=29, analyses="lmm_t,sd_reml,ols", progress=False),
    "sc_grid": lambda: mc.run(
        S.schools,
        reps=150,
        seed=31,
        analyses="lmm_t,sd_ml",
        grid={"n_schools": [4, 10]},
        params={"n_students": 5},
        chunk_size=64,
        progress=False,
    ),
}

if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    only = sys.argv[3:] or list(CASES)
    if mode == "record":
        out = {}
        for k in only:
            t = time.time()
            out[k] = CASES[k]()
            print(k, len(out[k]), f"{time.time() - t:.1f}s", flush=True)
        pickle.dump(out, open(path, "wb"))
    else:
        ref = pickle.load(open(path, "rb"))
        total = 0
        for k in only:
            t = time.time()
            got = CASES[k]()
            if mode == "compare":
                pd.testing.assert_frame_equal(got, ref[k], check_exact=True)
                print("identical", k, len(got), "rows", f"{time.time() - t:.1f}s", flush=True)
            else:
                worst = agreement(got, ref[k])
                print("agree", k, len(got), "rows", f"{time.time() - t:.1f}s", "largest relative differences:",
                      ", ".join(f"{c} {v:.1e}" for c, v in worst.items()), flush=True)
            total += len(got)
        print("ALL IDENTICAL:" if mode == "compare" else "ALL AGREE:", total, "rows in", len(only), "cases")
