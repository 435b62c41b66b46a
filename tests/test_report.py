"""lmmsim.course.report: totals, feedback texts, the class summary and the class plot."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from lmmsim import fit_lmm, scenarios
from lmmsim.course.grade import grade, read_key, references
from lmmsim.course.report import class_plot, class_summary, feedback, svg_text, totals
from lmmsim.course.roster import course_datasets
from lmmsim.course.submissions import read_submissions
from lmmsim.io import write_files

SCENARIO = scenarios.cluster_trial
NUMBERS = ["estimate", "se", "ci_low", "ci_high"]


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    """ann honest; bob copies ann and slips on x; cy hands in nothing; one line for a stranger."""
    folder = tmp_path_factory.mktemp("class")
    params = {"n_clusters": 12, "cluster_size": 6, "sigma_u": 2.0, "sigma_e": 2.0}
    write_files({folder / n: t for n, t in course_datasets(SCENARIO, params, ["ann", "bob", "cy"], 11).items()})
    ann = pd.read_csv(folder / "ann_answers.csv", dtype=str, keep_default_na=False)
    fit = fit_lmm(pd.read_csv(folder / "ann.csv"), SCENARIO.model).estimates
    for column in NUMBERS:
        ann[column] = ann["parameter"].map(fit[column])
    bob = pd.read_csv(folder / "bob_answers.csv", dtype=str, keep_default_na=False)
    bob[NUMBERS] = ann[NUMBERS].astype(str).to_numpy()
    bob.loc[bob["parameter"] == "x", "estimate"] = "oops"
    stranger = pd.DataFrame([{"student_id": "zed", "parameter": "x", "estimate": "1"}])
    pd.concat([ann, bob, stranger]).to_csv(folder / "answers.csv", index=False)
    return grade(read_submissions(folder / "answers.csv"), references(read_key(folder / "answer_key.json")))


def test_totals(grades):
    table = totals(grades)
    assert list(table.index) == ["ann", "bob", "cy"]  # the stranger counts for nobody
    assert table.loc["ann", "percent"] == 100 and table.loc["cy", "points"] == 0
    assert table.loc["ann", "max_points"] == table.loc["cy", "max_points"] == 5
    assert table["submitted"].tolist() == [True, True, False]
    assert table.loc["bob", "flag"].startswith("copy? 4 of 4 estimates match ann's data")


def test_feedback(grades):
    text = feedback(grades, "bob")
    points = grades.loc[grades["student_id"] == "bob", "points"].sum()
    assert text.startswith(f"Feedback for bob: {points:g} of 5 points ({20 * points:.0f} %)\n")
    assert "x (line 9): 0/1, estimate 'oops' is not a number; not graded\n" in text
    assert re.search(r"\n\nNote: copy\? 4 of 4 estimates match ann's data \(own data: \d\)\.\n$", text), text
    assert feedback(grades, "cy").count(": 0/1, no answer\n") == 5


def test_class_summary(grades):
    text = class_summary(grades)
    header = text.splitlines()[0].split()
    assert header == ["answers", "correct", "estimate_ok", "mean_points", "interval_covers_truth"]
    assert "2 of 3 students submitted; mean " in text and "no submission: cy" in text
    assert "\nbob: copy? 4 of 4 estimates match ann's data" in text
    assert "line 12 (zed, x): unknown student 'zed': not in the answer key" in text
    assert "line 9 (bob, x): estimate 'oops' is not a number; not graded" in text


def test_class_plot(grades):
    fig = class_plot(grades)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["Intercept", "treatment", "x", "sd(Intercept|cluster)", "sd(residual)"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["ann", "bob"]
    text = svg_text(fig)
    assert text.lstrip().startswith("<?xml") and text == svg_text(class_plot(grades))  # no date, stable ids
