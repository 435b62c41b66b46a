"""Random-intercept datasets for the lmerTest reference (``ri_satterthwaite.R``).

Every dataset is regenerated from the seed ``SeedSequence(SEED, spawn_key=(k,))``, so
the tests need only the committed R output; its ``sha256`` column records each
dataset's bytes, and a test fails loudly if the regenerated data differ.

Run ``python tests/reference/ri_datasets.py OUT.csv`` to write the data for R (one
row per observation: dataset, sha256, reml, group, y, x1, x2, ...).
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

SEED = 20261130
N_DATASETS = 72
CONTRAST = "contrast"
"""Name of the extra contrast row: the sum of the non-intercept coefficients."""


def dataset(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Dataset ``k``: ``y`` (n,), ``X`` (n, p) with an intercept, group codes (n,), and
    whether to fit it by REML (every fourth is fitted by ML).

    Mixes few (3-5) and more (6-30) groups, balanced and unbalanced sizes (singletons
    included), cluster-level and within-cluster columns, and σ_u from 0 (often a
    singular fit) to 3 σ_ε.
    """
    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(k,)))
    J = int(rng.choice([3, 4, 5])) if k % 3 == 0 else int(rng.integers(6, 31))
    sizes = np.full(J, rng.integers(2, 9)) if k % 5 == 0 else rng.integers(1, 21, J)
    sizes[0] = max(sizes[0], 2)
    groups = np.repeat(np.arange(J), sizes)
    n = len(groups)
    treated = rng.permutation(np.arange(J) % 2)[groups].astype(float)  # cluster-level
    columns = [np.ones(n), treated, rng.standard_normal(n)]  # + a within-cluster covariate
    if J >= 6 and k % 2 == 0:
        columns.append(rng.standard_normal(J)[groups])  # a continuous cluster-level covariate
    X = np.column_stack(columns)
    sigma_e = 10 ** rng.uniform(-1, 1)
    sigma_u = sigma_e * [0.0, 0.1, 0.5, 1.0, 3.0][k % 5 if k % 5 else int(rng.integers(5))]
    beta = rng.normal(0, 1, X.shape[1])
    y = X @ beta + sigma_u * rng.standard_normal(J)[groups] + sigma_e * rng.standard_normal(n)
    return y, X, groups, k % 4 != 3


def digest(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> str:
    """sha256 of the dataset's float64 and int64 bytes."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(y, dtype="<f8"), np.ascontiguousarray(X, dtype="<f8"),
              np.ascontiguousarray(groups, dtype="<i8")):
        h.update(a.tobytes())
    return h.hexdigest()


def contrasts(p: int) -> np.ndarray:
    """The tested contrasts: every coefficient, then the sum of all but the intercept."""
    return np.vstack([np.eye(p), np.r_[0.0, np.ones(p - 1)]])


def write(path: str) -> None:
    """Write every dataset, one row per observation, for the R script."""
    lines = ["dataset,sha256,reml,group,y,x1,x2,x3"]
    for k in range(N_DATASETS):
        y, X, groups, reml = dataset(k)
        sha = digest(y, X, groups)
        for i in range(len(y)):
            x = [repr(float(v)) for v in X[i, 1:]] + ["NA"] * (4 - X.shape[1])
            lines.append(f"{k},{sha},{int(reml)},g{groups[i]:02d},{float(y[i])!r},{','.join(x)}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    write(sys.argv[1])
