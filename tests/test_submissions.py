"""lmmsim.course.submissions: answer templates and reading submitted answers."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from lmmsim.course.submissions import TEMPLATE_COLUMNS, dataset_fingerprint, read_submissions, template_text


def write(path, text: str | bytes):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_template_is_a_blank_submission(tmp_path):
    fp = dataset_fingerprint("y,x\n1,2\n")
    assert len(fp) == 12 and fp == dataset_fingerprint("y,x\n1,2\n") != dataset_fingerprint("y,x\n1,3\n")
    text = template_text("ann", fp, ["Intercept", "sd(residual)"])
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(TEMPLATE_COLUMNS)
    assert frame["parameter"].tolist() == ["Intercept", "sd(residual)"]
    assert set(frame["dataset"]) == {fp} and set(frame["student_id"]) == {"ann"}
    # Read back, the blank template is a valid submission with no numbers yet.
    subs = read_submissions(write(tmp_path / "t.csv", text))
    assert subs["problem"].eq("").all() and subs["estimate"].isna().all()
    assert subs["line"].tolist() == [2, 3] and subs.attrs["columns"] == ["se", "ci_low", "ci_high"]


def test_read_submissions(tmp_path):
    path = write(tmp_path / "a.csv", "student_id,parameter,estimate,se\nann,Intercept,1.5,0.25\n\nann,x, -2e-1 ,\n")
    subs = read_submissions(path)
    assert subs["line"].tolist() == [2, 4]  # blank line skipped, numbering kept
    assert subs["estimate"].tolist() == [1.5, -0.2]
    assert subs["se"].iloc[0] == 0.25 and math.isnan(subs["se"].iloc[1])
    assert subs["ci_low"].isna().all() and subs["dataset"].eq("").all()
    assert subs.attrs["columns"] == ["se"]


def test_learning_platform_export(tmp_path):
    """Extra columns, a byte-order mark, other header spelling, ';' with decimal commas."""
    text = "\ufeffTimestamp;Student ID;Email;Parameter;Estimate;SE;CI-low;CI high\n" \
           "2026-01-01;ann;a@x;Intercept;1,5;0,25;1;2\n2026-01-02;bob;b@x;x;3.5;;;\n"
    subs = read_submissions(write(tmp_path / "lms.csv", text.encode("utf-8")))
    assert subs["student_id"].tolist() == ["ann", "bob"]
    assert subs["estimate"].tolist() == [1.5, 3.5] and subs["se"].iloc[0] == 0.25
    assert subs[["ci_low", "ci_high"]].iloc[0].tolist() == [1.0, 2.0]
    assert subs.attrs["columns"] == ["se", "ci_low", "ci_high"]
    tabs = read_submissions(write(tmp_path / "tab.csv", "student_id\tparameter\testimate\nann\tx\t0,5\n"))
    assert tabs["estimate"].tolist() == [0.5]


def test_bad_values_are_reported_per_row(tmp_path):
    text = "student_id,parameter,estimate,se\nann,a,abc,1\nann,b,1,inf\nann,c,1,2,3\nann,d,1e400,1\nann,e,,\n"
    subs = read_submissions(write(tmp_path / "a.csv", text))
    problems = subs.set_index("parameter")["problem"]
    assert problems["a"] == "estimate 'abc' is not a number"
    assert problems["b"] == "se 'inf' is not a finite number"
    assert problems["c"] == "5 cells but 4 columns in the header"
    assert problems["d"] == "estimate '1e400' is not a finite number"
    assert problems["e"] == ""  # blank: no answer, graded as such later


BAD_FILES = {
    "missing file": (None, ["submissions: cannot read", "No such file"]),
    "empty": ("", ["submissions:", "is empty", "'student_id'"]),
    "no estimate column": ("student_id,parameter,value\nann,x,1\n", ["lacks the columns ['estimate']", "'value'"]),
    "no parameter column": ("student_id,estimate\nann,1\n", ["lacks the columns ['parameter']"]),
    "header only": ("student_id,parameter,estimate\n", ["header but no answers"]),
    "repeated column": ("student_id,parameter,estimate,Estimate\nann,x,1,2\n", ["column 'estimate' appears 2 times"]),
    "not UTF-8": (b"student_id,parameter,estimate\n\xff,x,1\n", ["submissions: cannot read", "codec"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files(case, tmp_path):
    content, words = BAD_FILES[case]
    path = tmp_path / "missing.csv" if content is None else write(tmp_path / "s.csv", content)
    with pytest.raises(ValueError) as info:
        read_submissions(path)
    for word in words:
        assert word in str(info.value), str(info.value)
