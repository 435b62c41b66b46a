"""lmmsim.course.grade: refit each student's data and grade their answers against it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lmmsim import fit_lmm, fit_ols, scenarios
from lmmsim.course.grade import EST_TOL, Reference, grade, grading_se, read_key, references
from lmmsim.course.report import class_summary
from lmmsim.course.roster import course_datasets
from lmmsim.course.submissions import read_submissions
from lmmsim.io import write_files

SCENARIO = scenarios.cluster_trial
# ICC 0.5: OLS standard errors of the cluster-level treatment effect are far too small.
PARAMS = {"n_clusters": 12, "cluster_size": 6, "sigma_u": 2.0, "sigma_e": 2.0}
IDS = [f"s{k:02d}" for k in range(30)]
NUMBERS = ["estimate", "se", "ci_low", "ci_high"]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A class of 30: files as `simulate --roster` writes them, references, honest answers."""
    folder = tmp_path_factory.mktemp("course")
    write_files({folder / name: text for name, text in course_datasets(SCENARIO, PARAMS, IDS, 2026).items()})
    refs = references(read_key(folder / "answer_key.json"))
    return folder, refs, pd.concat([answers(folder, sid) for sid in IDS], ignore_index=True)


def answers(folder, sid: str, fit=fit_lmm) -> pd.DataFrame:
    """What a student hands in: their template, filled in from a fit of their own CSV."""
    template = pd.read_csv(folder / f"{sid}_answers.csv", dtype=str, keep_default_na=False)
    estimates = fit(pd.read_csv(folder / f"{sid}.csv"), SCENARIO.model).estimates
    for column in NUMBERS:
        template[column] = template["parameter"].map(estimates[column])
    return template


def graded(folder, frame: pd.DataFrame, refs) -> pd.DataFrame:
    path = folder / "answers.csv"
    frame.to_csv(path, index=False)
    return grade(read_submissions(path), refs)


def test_honest_class_gets_full_marks(course):
    folder, refs, honest = course
    grades = graded(folder, honest, refs)
    assert len(grades) == len(honest) and grades["line"].notna().all()
    assert (grades["points"] == grades["max_points"]).all(), grades[grades["points"] < grades["max_points"]]
    assert grades["flag"].eq("").all()
    # Only parameters whose refit has no usable SE (a variance on the boundary) go ungraded.
    ungraded = grades[grades["status"] != "graded"]
    assert set(ungraded["status"]) <= {"not gradable"}
    assert ungraded["reason"].str.startswith("not graded: the refit of your data is").all()
    assert len(ungraded) <= 0.1 * len(grades)
    assert grades.groupby("student_id")["max_points"].sum().min() >= 3
    # Coverage of the truth is reported, not graded: 95 % intervals, here about 120 of them,
    # cover it in roughly 95 % of cases (0.8 is more than 5 binomial SEs below).
    assert grades["covers_truth"].dropna().astype(bool).mean() > 0.8


def shift_one(honest: pd.DataFrame, refs, k: int, sign: float) -> pd.DataFrame:
    """Student k's answer for their (k mod p)-th graded parameter moved by 3 SEs, interval too."""
    sid = IDS[k]
    ref = refs[sid]
    names = ref.grading_se.dropna().index
    name = names[k % len(names)]
    shifted = honest.copy()
    row = (shifted["student_id"] == sid) & (shifted["parameter"] == name)
    shift = sign * 3 * ref.grading_se[name]
    shifted.loc[row, ["estimate", "ci_low", "ci_high"]] += shift
    return shifted, name


def test_three_se_shift_loses_that_parameter(course):
    folder, refs, honest = course
    shifted, names = honest, {}
    for k in range(len(IDS)):
        shifted, names[IDS[k]] = shift_one(shifted, refs, k, sign=1 if k % 2 else -1)
    grades = graded(folder, shifted, refs)
    hit = grades.apply(lambda r: names[r["student_id"]] == r["parameter"], axis=1)
    assert set(names.values()) == set(refs["s00"].truth)  # every parameter shifted for someone
    assert (grades.loc[hit, "points"] == 0).all() and hit.sum() == len(IDS)
    assert grades.loc[hit, "reason"].str.startswith("estimate is 3.0 SE from the refit of your data").all()
    assert (grades.loc[~hit, "points"] == grades.loc[~hit, "max_points"]).all()
    assert grades["flag"].eq("").all()


def test_copied_submission_is_flagged(course):
    folder, refs, honest = course
    copied = honest.copy()
    copier, source = copied["student_id"] == "s07", copied["student_id"] == "s21"
    copied.loc[copier, NUMBERS] = copied.loc[source, NUMBERS].to_numpy()
    grades = graded(folder, copied, refs)
    flags = grades.groupby("student_id")["flag"].first()
    assert flags["s07"].startswith("copy? 5 of 5 estimates match s21's data (own data: 0)")
    assert flags.drop("s07").eq("").all()


def test_naive_ols_answers_get_the_hint(course):
    folder, refs, honest = course
    naive_ids = ["s03", "s11", "s29"]
    naive = [answers(folder, sid, fit=fit_ols) if sid in naive_ids else honest[honest["student_id"] == sid] for sid in IDS]
    grades = graded(folder, pd.concat(naive, ignore_index=True), refs)
    flags = grades.groupby("student_id")["flag"].first()
    assert flags[naive_ids].str.startswith("OLS? these are ordinary least squares estimates").all()
    assert flags.drop(naive_ids).eq("").all()
    # Their SE of the cluster-level treatment effect is too small: not full marks.
    treatment = grades[grades["student_id"].isin(naive_ids) & (grades["parameter"] == "treatment")]
    assert (treatment["points"] < 1).all()
    assert treatment["reason"].str.contains("SE is -").all()


def test_bad_rows_get_reasons_and_nothing_is_lost(course):
    folder, refs, honest = course
    rows = honest[honest["student_id"].isin(["s00", "s01", "s02"])].copy()
    fp = rows.loc[rows["student_id"] == "s00", "dataset"].iloc[0]
    extra = pd.DataFrame([
        {"student_id": "zed", "dataset": "", "parameter": "x", "estimate": "1"},  # unknown student
        {"student_id": "S00", "dataset": "", "parameter": "x", "estimate": "1"},  # case differs
        {"student_id": "s00", "dataset": fp, "parameter": "beta9", "estimate": "1"},  # unknown parameter
        {"student_id": "s00", "dataset": fp, "parameter": "x", "estimate": "0.1"},  # duplicate of s00's x
    ])
    rows = pd.concat([rows.astype(object), extra], ignore_index=True)
    rows.loc[(rows["student_id"] == "s01") & (rows["parameter"] == "Intercept"), "estimate"] = "n/a"
    rows.loc[rows["student_id"] == "s02", "dataset"] = "0123456789ab"  # another dataset's answers
    rows = rows[~((rows["student_id"] == "s01") & (rows["parameter"] == "sd(residual)"))]  # unanswered
    grades = graded(folder, rows, refs)
    # Every submitted line is in the output exactly once, and every class member is listed.
    assert sorted(grades["line"].dropna().astype(int)) == list(range(2, len(rows) + 2))
    assert set(IDS) <= set(grades["student_id"])
    reason = grades.set_index(["student_id", "parameter"])["reason"]
    assert reason["zed", "x"] == "unknown student 'zed': not in the answer key"
    assert reason["S00", "x"] == "unknown student 'S00': not in the answer key (did you mean 's00'?)"
    assert reason["s00", "beta9"].startswith("unknown parameter 'beta9'; expected one of ['Intercept', 'treatment', 'x',")
    assert (reason["s00", "x"] == f"answered more than once (lines {line_of(rows, 's00', 'x')}); not graded").all()
    assert reason["s01", "Intercept"] == "estimate 'n/a' is not a number; not graded"
    assert reason["s01", "sd(residual)"] == "no answer"
    assert reason.loc["s02"].str.startswith("dataset '0123456789ab' is not s02's").all()
    assert reason.loc["s05"].eq("no answer").all()  # no submission at all
    status = grades.set_index(["student_id", "parameter"])["status"]
    assert status["zed", "x"] == status["s00", "beta9"] == status["s01", "Intercept"] == "invalid"
    assert (status["s00", "x"] == "invalid").all() and (status.loc["s02"] == "invalid").all()
    assert status["s01", "sd(residual)"] == "no answer" and (status.loc["s05"] == "no answer").all()
    # Nobody's maximum counts an unknown row or a repeated answer twice.
    max_points = grades.groupby(["student_id", "parameter"])["max_points"].sum()
    assert max_points.max() == 1 and max_points["zed", "x"] == 0 and max_points["s00", "beta9"] == 0


def line_of(rows: pd.DataFrame, sid: str, name: str) -> str:
    lines = np.flatnonzero((rows["student_id"] == sid).to_numpy() & (rows["parameter"] == name).to_numpy()) + 2
    return ", ".join(map(str, lines))


def test_key_from_another_course_seed(course, tmp_path):
    folder, refs, honest = course
    other = course_datasets(SCENARIO, PARAMS, IDS[:3], 2027)
    write_files({tmp_path / "answer_key.json": other["answer_key.json"]})
    submissions = honest[honest["student_id"].isin(IDS[:3])]
    wrong = references(read_key(tmp_path / "answer_key.json"))
    with pytest.raises(ValueError, match="no answer's 'dataset' fingerprint matches .* another course seed"):
        graded(tmp_path, submissions, wrong)
    # Without the fingerprints (a platform export may drop the column), the summary warns.
    grades = graded(tmp_path, submissions.drop(columns="dataset"), wrong)
    assert "estimates reproduce the refit of the student's data; is the answer key from another course seed?" \
        in class_summary(grades)
    assert "warning" not in class_summary(graded(tmp_path, honest.drop(columns="dataset"), refs))


def test_bad_answer_keys(course, tmp_path):
    folder, refs, honest = course
    key = json.loads((folder / "answer_key.json").read_text(encoding="utf-8"))
    key["students"] = {"s00": key["students"]["s00"]}
    key["students"]["s00"]["beta"]["x"] += 1
    cases = {
        "not json": ("{", "answer key: cannot read"),
        "a list": ("[]", "has no valid 'scenario' field"),
        "no seed": (json.dumps({**key, "course_seed": "7"}), "has no valid 'course_seed' field"),
        "path as id": (json.dumps({**key, "students": {"../x": {}}}), "student id '../x' is not a plain file name"),
    }
    for text, words in cases.values():
        (tmp_path / "k.json").write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(".", r"\.")):
            read_key(tmp_path / "k.json")
    with pytest.raises(ValueError, match="truth recorded for student 's00' differs .* course seed 2026"):
        references(key)
    with pytest.raises(ValueError, match="n_clusters: got 1"):
        references({**key, "parameters": {"n_clusters": 1}})


def test_tolerance_is_a_multiple_of_the_se(course):
    folder, refs, honest = course
    ref = refs["s00"]
    fixed = ref.fit.estimates.loc[["Intercept", "treatment", "x"], "se"]
    assert np.allclose(ref.grading_se[fixed.index], fixed)
    sigma = ref.fit.estimates.loc["sd(residual)", "estimate"]
    assert ref.grading_se["sd(residual)"] == pytest.approx(sigma / np.sqrt(2 * (72 - 3)))
    assert EST_TOL == 0.5


def test_boundary_parameters_are_not_graded(tmp_path):
    """A variance estimated as zero has no SE: its row is worth 0 points, and says why."""
    rng = np.random.default_rng(np.random.SeedSequence(13))
    data = pd.DataFrame({"cluster": np.repeat(np.arange(8), 5), "treatment": np.repeat([0, 1], 20),
                         "x": rng.normal(size=40), "y": rng.normal(size=40)})
    # Equal cluster means within each arm: the between-cluster variance is estimated as 0.
    data["y"] -= data.groupby("cluster")["y"].transform("mean") - data["treatment"]
    fit = fit_lmm(data, SCENARIO.model)
    assert fit.status.boundary, fit.status
    se = grading_se(fit, n_groups=8)
    assert np.isnan(se["sd(Intercept|cluster)"]) and se[["Intercept", "treatment", "x", "sd(residual)"]].notna().all()
    truth = dict.fromkeys(fit.estimates.index, 0.0)
    ref = Reference("solo", "", truth, fit, fit_ols(data, SCENARIO.model), se)
    answer = fit.estimates.reset_index().assign(student_id="solo", dataset="")
    grades = graded(tmp_path, answer, {"solo": ref}).set_index("parameter")
    row = grades.loc["sd(Intercept|cluster)"]
    assert row["status"] == "not gradable" and row["max_points"] == 0
    assert row["reason"].startswith("not graded: the refit of your data is boundary (singular fit)")
    assert (grades.drop("sd(Intercept|cluster)")["points"] == 1).all()
