"""Grade students' answers against a refit of each student's own dataset.

Every student's dataset is regenerated from the answer key and refitted with the
scenario's model (REML): the *reference*. An honest answer reproduces the reference up to
the optimizer's tolerance, so the tolerances can be tight — an estimate within
``EST_TOL`` = 0.5 of its standard error, an SE within ``SE_RTOL`` = 10 % — while an answer
3 SE away fails. Whether the student's interval covers the *truth* is reported but earns
nothing: a correct 95 % interval misses the truth in 1 case of 20.

Points per parameter: 1 when the estimate and every part given (SE, interval) pass,
0.5 when only the estimate passes, 0 otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmmsim.course.roster import student_seed
from lmmsim.course.submissions import DATASET, NUMBERS, dataset_fingerprint
from lmmsim.fit import Fit, fit_lmm, fit_ols
from lmmsim.io import csv_text
from lmmsim.scenarios import get as get_scenario
from lmmsim.simulate import simulate
from lmmsim.truth import Truth

EST_TOL = 0.5  # estimate: at most this many (reference) standard errors from the reference
SE_RTOL = 0.1  # standard error: at most this relative difference from the reference SE
# A copy of a classmate's honest numbers matches the refit of the classmate's data up to
# rounding, while two independent datasets give estimates that differ by about √2 SE: an
# estimate within COPY_TOL = 0.05 SE of another's refit happens by chance with probability
# about 0.03. Flag a copy when at least COPY_MIN estimates, and COPY_SHARE of them, match
# someone else's data so closely, more than match the student's own: by chance that takes
# at least four such coincidences (probability ~ 1e-6 per pair of students).
COPY_TOL = 0.05
COPY_MIN = 4
COPY_SHARE = 0.75
COLUMNS = ["student_id", "parameter", "line", *NUMBERS, "reference", "reference_se", "tolerance",
           "truth", "covers_truth", "status", "points", "max_points", "flag", "reason"]
# status: "graded"; "no answer"; "invalid" (unknown student or parameter, a repeated
# answer, a value that is not a number, another dataset's answer); "not gradable" (the
# refit gives no usable SE for the parameter).
Problem = tuple[int, str, str]  # max points, reason, status of a row that is not graded


@dataclass(frozen=True)
class Reference:
    """What a student's answers are graded against.

    Attributes
    ----------
    student_id : str
        The student.
    fingerprint : str
        :func:`~lmmsim.course.submissions.dataset_fingerprint` of the student's data.
    truth : mapping of str to float
        The true parameters (``Truth.parameters()``).
    fit : Fit
        The intended model fitted to the student's data (REML).
    naive : Fit
        Ordinary least squares on the same data, to recognise naive answers.
    grading_se : pandas.Series
        The SE each tolerance is a multiple of: the fit's SE, or an approximation where
        the fit gives none (see :func:`grading_se`); NaN where a parameter is not graded.
    """

    student_id: str
    fingerprint: str
    truth: Mapping[str, float]
    fit: Fit
    naive: Fit
    grading_se: pd.Series


def read_key(path: str | Path) -> dict[str, Any]:
    """The answer key written by ``lmmsim simulate --roster``, checked for its fields."""
    try:
        key = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"answer key: cannot read {str(path)!r}: {err}") from None
    fields = {"scenario": str, "parameters": dict, "course_seed": int, "students": dict}
    for name, kind in fields.items():
        if not isinstance(key, dict) or not isinstance(key.get(name), kind):
            raise ValueError(
                f"answer key: {str(path)!r} has no valid {name!r} field; expected the "
                "answer_key.json that `lmmsim simulate --roster` writes"
            )
    for sid in key["students"]:
        if not (sid and Path(sid).name == sid and sid[0].isalnum()):  # ids become file names
            raise ValueError(f"answer key: student id {sid!r} is not a plain file name")
    return key


def references(key: Mapping[str, Any]) -> dict[str, Reference]:
    """Regenerate and refit every student's dataset in the key.

    Raises
    ------
    ValueError
        If a regenerated truth differs from the key's (a key edited by hand, or written
        by another version of lmmsim): grading would be against the wrong data.
    """
    scenario = get_scenario(key["scenario"])
    design = scenario(**key["parameters"])
    out = {}
    for sid, recorded in key["students"].items():
        sim = simulate(design, student_seed(key["course_seed"], sid))
        truth = sim.truth.parameters()
        if Truth.from_dict(recorded).parameters() != truth:
            raise ValueError(
                f"answer key: the truth recorded for student {sid!r} differs from the one "
                f"regenerated from course seed {key['course_seed']}; the key was changed"
            )
        fit = fit_lmm(sim.data, scenario.model)
        n_groups = sim.data[scenario.model.groups].nunique()
        out[sid] = Reference(sid, dataset_fingerprint(csv_text(sim.data)), truth, fit,
                             fit_ols(sim.data, scenario.model), grading_se(fit, n_groups))
    return out


def grading_se(fit: Fit, n_groups: int) -> pd.Series:
    """The SE of each parameter for grading tolerances.

    The fit's own SE where it has one. statsmodels gives none for σ_ε and for
    correlations; there the large-sample approximations SE(σ̂_ε) ≈ σ̂_ε / √(2(N − p)) and
    SE(ρ̂) ≈ (1 − ρ̂²) / √(J − 3) (J groups; rough for few groups) set the scale. NaN —
    not graded — where the fit did not converge or a variance parameter is on the
    boundary, where no SE is meaningful.
    """
    est = fit.estimates["estimate"]
    se = fit.estimates["se"].astype(float).copy()
    if not fit.status.converged:
        return se * np.nan
    n_fixed = int((~(est.index.str.startswith("sd(") | est.index.str.startswith("cor("))).sum())
    if "sd(residual)" in se.index and np.isnan(se["sd(residual)"]):
        se["sd(residual)"] = est["sd(residual)"] / math.sqrt(2 * max(fit.nobs - n_fixed, 1))
    if not fit.status.boundary:
        cor = est.index.str.startswith("cor(") & se.isna()
        se[cor] = (1 - est[cor] ** 2) / math.sqrt(max(n_groups - 3, 1))
    return se.where(se > 0)


def grade(submissions: pd.DataFrame, refs: Mapping[str, Reference]) -> pd.DataFrame:
    """One row per submitted line and per unanswered (student, parameter), with points.

    Parameters
    ----------
    submissions : pandas.DataFrame
        From :func:`~lmmsim.course.submissions.read_submissions`.
    refs : mapping of str to Reference
        From :func:`references`.

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS``; ``max_points`` is 0 for rows that count for nobody (unknown
        student or parameter, a repeated answer), and ``reason`` says why every row got
        its points.

    Raises
    ------
    ValueError
        If no submitted dataset fingerprint matches the key's data: the key is from
        another course (seed or scenario).
    """
    _check_fingerprints(submissions, refs)
    given = [c for c in ("se", "ci_low") if c in submissions.attrs.get("columns", [])]
    repeats = submissions.groupby(["student_id", "parameter"])["line"].transform(lambda s: ", ".join(map(str, s)))
    first = ~submissions.duplicated(["student_id", "parameter"])
    rows = []
    for k, sub in submissions.iterrows():
        ref = refs.get(sub["student_id"])
        problem = _problem(sub, ref, refs)
        counts = problem is None or problem[0] > 0  # not an unknown student or parameter
        if counts and repeats[k] != str(sub["line"]):  # one answer per parameter: none of several counts
            problem = (1 if first[k] else 0, f"answered more than once (lines {repeats[k]}); not graded", "invalid")
        rows.append(_row(sub, ref, problem, given))
    answered = set(zip(submissions["student_id"], submissions["parameter"]))
    for sid, ref in refs.items():
        for name in ref.fit.estimates.index:
            if (sid, name) not in answered:
                missing = {"student_id": sid, "parameter": name, "line": np.nan, **dict.fromkeys(NUMBERS, np.nan)}
                rows.append(_row(pd.Series(missing), ref, (1, "no answer", "no answer"), given))
    grades = pd.DataFrame(rows, columns=COLUMNS).astype({"line": "Int64"})  # blank, not NaN, where unanswered
    copies, naive = _copy_flags(grades, refs), _naive_flags(grades, refs)
    flags = {s: "; ".join(f[s] for f in (copies, naive) if s in f) for s in {*copies, *naive}}
    grades["flag"] = grades["student_id"].map(lambda sid: flags.get(sid, ""))
    return grades


def _check_fingerprints(submissions: pd.DataFrame, refs: Mapping[str, Reference]) -> None:
    known = submissions[submissions["student_id"].isin(refs) & (submissions[DATASET] != "")]
    if len(known) and not any(known[DATASET] == known["student_id"].map(lambda s: refs[s].fingerprint)):
        raise ValueError(
            f"submissions: no answer's {DATASET!r} fingerprint matches a dataset of the answer key "
            f"(e.g. {known[DATASET].iloc[0]!r} for {known['student_id'].iloc[0]!r}); the key is from "
            "another course seed or scenario"
        )


def _problem(sub: pd.Series, ref: Reference | None, refs: Mapping[str, Reference]) -> Problem | None:
    """Why a row cannot be graded; None for a gradable row."""
    sid, name = sub["student_id"], sub["parameter"]
    if ref is None:
        like = [s for s in refs if s.casefold() == str(sid).casefold()]
        hint = f" (did you mean {like[0]!r}?)" if like else ""
        return (0, f"unknown student {sid!r}: not in the answer key{hint}", "invalid")
    if name not in ref.fit.estimates.index:
        return (0, f"unknown parameter {name!r}; expected one of {list(ref.fit.estimates.index)}", "invalid")
    if sub[DATASET] and sub[DATASET] != ref.fingerprint:
        return (1, f"dataset {sub[DATASET]!r} is not {sid}'s ({ref.fingerprint!r}); not graded", "invalid")
    if sub["problem"]:
        return (1, f"{sub['problem']}; not graded", "invalid")
    if np.isnan(sub["estimate"]):
        return (1, "no estimate", "no answer")
    return None


def _row(sub: pd.Series, ref: Reference | None, problem: Problem | None, given: list[str]) -> dict:
    row = {c: sub.get(c, np.nan) for c in ("student_id", "parameter", "line", *NUMBERS)}
    row["points"] = 0.0
    name = sub["parameter"]
    if ref is None or name not in ref.fit.estimates.index:
        row["max_points"], row["reason"], row["status"] = problem
        return row
    est = ref.fit.estimates.loc[name]
    tol_se = ref.grading_se.get(name, np.nan)
    row.update(reference=est["estimate"], reference_se=est["se"], tolerance=EST_TOL * tol_se,
               truth=ref.truth.get(name, np.nan))
    if not (np.isnan(row["ci_low"]) or np.isnan(row["ci_high"])):
        row["covers_truth"] = bool(row["ci_low"] <= row["truth"] <= row["ci_high"])
    if np.isnan(tol_se):
        reason = f"not graded: the refit of your data is {ref.fit.status.message}"
        row["max_points"] = 0
        row["status"], row["reason"] = (
            ("not gradable", reason) if problem is None else (problem[2], f"{problem[1]}; {reason}")
        )
    elif problem is not None:
        row["max_points"], row["reason"], row["status"] = problem
    else:
        row["max_points"], row["status"] = 1, "graded"
        row["points"], row["reason"] = _score(row, est, tol_se, given)
    return row


def _score(row: dict, est: pd.Series, tol_se: float, given: list[str]) -> tuple[float, str]:
    """Points and reason for a gradable answer."""
    off = abs(row["estimate"] - est["estimate"]) / tol_se
    if off > EST_TOL:
        return 0.0, f"estimate is {off:.1f} SE from the refit of your data (tolerance {EST_TOL} SE)"
    faults = []
    if "se" in given and np.isfinite(est["se"]):
        if np.isnan(row["se"]):
            faults.append("SE missing")
        elif abs(row["se"] - est["se"]) > SE_RTOL * est["se"]:
            faults.append(f"SE is {row['se'] / est['se'] - 1:+.0%} off the refit's (tolerance {SE_RTOL:.0%})")
    if "ci_low" in given and np.isfinite(est["ci_low"]):
        if np.isnan(row["ci_low"]) or np.isnan(row["ci_high"]):
            faults.append("interval missing")
        elif not row["ci_low"] <= est["estimate"] <= row["ci_high"]:
            faults.append("interval does not contain the refit's estimate")
    if faults:
        return 0.5, "estimate correct; " + "; ".join(faults)
    return 1.0, "correct"


def _graded(grades: pd.DataFrame) -> pd.DataFrame:
    """Rows whose answer was compared with the reference."""
    return grades[grades["status"] == "graded"]


def _copy_flags(grades: pd.DataFrame, refs: Mapping[str, Reference]) -> dict[str, str]:
    """Students whose estimates fit another student's data better than their own."""
    flags = {}
    for sid, answers in _graded(grades).groupby("student_id"):
        matches = {other: _matching(answers, ref) for other, ref in refs.items()}
        own = matches[sid]
        for other, (hits, compared) in matches.items():
            if other != sid and hits >= COPY_MIN and hits >= COPY_SHARE * compared and hits > own[0]:
                flags[sid] = f"copy? {hits} of {compared} estimates match {other}'s data (own data: {own[0]})"
                break
    return flags


def _matching(answers: pd.DataFrame, ref: Reference) -> tuple[int, int]:
    """How many of the answers' estimates lie within COPY_TOL SE of a reference, of how many."""
    est = ref.fit.estimates["estimate"].reindex(answers["parameter"]).to_numpy()
    tol = COPY_TOL * ref.grading_se.reindex(answers["parameter"]).to_numpy()
    ok = np.isfinite(tol)
    hits = np.abs(answers["estimate"].to_numpy()[ok] - est[ok]) <= tol[ok]
    return int(hits.sum()), int(ok.sum())


def _naive_flags(grades: pd.DataFrame, refs: Mapping[str, Reference]) -> dict[str, str]:
    """Students whose fixed effects and SEs are those of OLS, not of the mixed model."""
    flags = {}
    for sid, answers in _graded(grades).groupby("student_id"):
        naive = refs[sid].naive.estimates
        answers = answers[answers["parameter"].isin(naive.index) & answers["se"].notna()]
        answers = answers[np.isfinite(naive["se"].reindex(answers["parameter"]).to_numpy())]
        if answers.empty:
            continue
        ols = naive.reindex(answers["parameter"])
        miss = np.abs(answers["estimate"].to_numpy() - ols["estimate"].to_numpy())
        close = (miss <= EST_TOL * ols["se"].to_numpy()) \
            & (np.abs(answers["se"].to_numpy() - ols["se"].to_numpy()) <= SE_RTOL * ols["se"].to_numpy())
        if close.all() and (answers["points"] < 1).any():
            flags[sid] = ("OLS? these are ordinary least squares estimates and SEs, which ignore the grouping; "
                          "fit the mixed model")
    return flags
