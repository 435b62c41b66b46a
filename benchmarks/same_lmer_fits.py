"""Do fit_lmer's (and fit_lmm's) fits keep their results? Record them on one commit, compare on another.

The fits: ``fit_lmer`` by REML and ML on the 16 datasets of the lmer reference and the 28
of the singular-fit reference (tests/reference), and ``fit_lmm`` by REML on the singular
set. From the repository root (for another commit, put its checkout first on PYTHONPATH)::

    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/same_lmer_fits.py record /tmp/fits.pkl
    .venv/bin/python benchmarks/same_lmer_fits.py compare /tmp/fits.pkl

``compare`` lists every fit whose status or message changed or whose estimates, SEs or
Satterthwaite df moved by more than 1e-6 relative, with the change in the criterion at
the fit's θ (new minus old; negative: the new fit is the better optimum).
"""

import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reference"))

import lmer_datasets  # noqa: E402
import singular_datasets  # noqa: E402

from lmmsim import fit_lmer, fit_lmm  # noqa: E402
from lmmsim.model import ModelSpec  # noqa: E402


def fits():
    """(key, fit) for every fit of the set."""
    cases = [(c.name, c.data, c.formula, None) for c in lmer_datasets.cases()]
    cases += [(c.name, c.data, c.formula, c) for c in singular_datasets.cases()]
    for name, data, formula, singular in cases:
        for reml in (True, False):
            yield (name, "lmer", "REML" if reml else "ML"), fit_lmer(data, formula, reml=reml)
        if singular is not None:
            outcome, fixed = (s.strip() for s in formula.split("+ (")[0].split("~"))
            model = ModelSpec(f"{outcome} ~ {fixed}", singular.groups, f"~{singular.slope}")
            yield (name, "lmm", "REML"), fit_lmm(data, model)


def summary(fit) -> dict:
    out = {"code": fit.status.code, "message": fit.status.message, "loglik": fit.loglik,
           "estimates": fit.estimates[["estimate", "se"]].copy(), "theta": fit.theta, "df": None}
    if fit.status.code != "failed":
        out["criterion"] = float(fit.deviance(fit.theta))
        out["df"] = fit.satterthwaite()["df"].to_numpy()
    return out


def relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return np.inf
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return float(np.max(np.where(same, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-300)), initial=0.0))


def compare(old: dict, new: dict) -> None:
    changed = 0
    for key, b in old.items():
        n = new[key]
        moved = max(relative(n["estimates"], b["estimates"]),
                    relative(n["df"], b["df"]) if b["df"] is not None and n["df"] is not None else 0.0)
        if (n["code"], n["message"]) == (b["code"], b["message"]) and moved <= 1e-6:
            continue
        changed += 1
        step = n.get("criterion", np.nan) - b.get("criterion", np.nan)
        print(f"{' '.join(key):32s} {b['code']:>13s} -> {n['code']:13s} moved {moved:.1e}  criterion {step:+.1e}")
        if n["message"] != b["message"]:
            print(f"    {b['message']}\n -> {n['message']}")
    print(f"{changed} of {len(old)} fits changed")


def main(action: str, path: str) -> None:
    if action == "record":
        Path(path).write_bytes(pickle.dumps({key: summary(fit) for key, fit in fits()}))
    else:
        compare(pickle.loads(Path(path).read_bytes()), {key: summary(fit) for key, fit in fits()})


if __name__ == "__main__":
    main(*sys.argv[1:3])
