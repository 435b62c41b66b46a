"""lmmsim.course.roster: reading a class roster, per-student seeds, datasets and answer key."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import PYTHON

from lmmsim import Truth, scenarios, simulate
from lmmsim.course.roster import course_datasets, read_roster, student_seed
from lmmsim.course.submissions import dataset_fingerprint
from lmmsim.io import csv_text


def write(path, text: str | bytes):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- reading


def test_read_roster(tmp_path):
    roster = write(tmp_path / "r.csv", "name,student_id,email\nAnn,s001, a@x\nBob, s-002 ,b@x\nCy,a.b_c,c@x\n")
    assert read_roster(roster) == ["s001", "s-002", "a.b_c"]
    # A byte-order mark, as spreadsheet programs write it, is ignored.
    bom = write(tmp_path / "bom.csv", "\ufeffstudent_id\nann\n".encode("utf-8"))
    assert read_roster(bom) == ["ann"]
    assert read_roster(str(bom)) == ["ann"]


BAD_ROSTERS = {
    # name: (file content or None for a missing file, words in the message)
    "missing file": (None, ["roster: cannot read", "missing.csv", "No such file"]),
    "no student_id column": ("name,id\nAnn,1\n", ["roster:", "'student_id' column"]),
    "empty file": ("", ["roster:", "'student_id' column", "at least one student"]),
    "header only": ("student_id\n", ["roster:", "at least one student"]),
    "duplicate id": ("student_id\nann\nbob\nann\n", ["roster: student_id 'ann' appears more than once"]),
    "ids equal but for case": ("student_id\nAnn\nann\n", ["student_id 'ann' appears more than once", "'Ann'", "case"]),
    "path in id": ("student_id\n../etc/passwd\n", ["line 2", "'../etc/passwd'", "letters, digits"]),
    "slash in id": ("student_id\nok\na/b\n", ["line 3", "'a/b'"]),
    "blank id": ("student_id,name\n,Ann\n", ["line 2", "''"]),
    "hidden-file id": ("student_id\n.bashrc\n", ["'.bashrc'", "starting with a letter or digit"]),
    "space in id": ("student_id\nann smith\n", ["'ann smith'"]),
    "non-ASCII id": ("student_id\nzoë\n", ["'zoë'"]),
    "option-like id": ("student_id\n-rf\n", ["'-rf'"]),
    "overlong id": ("student_id\n" + "a" * 101 + "\n", ["1 to 100"]),
    "missing cell": ("name,student_id\nAnn\n", ["line 2", "''"]),
    "not UTF-8": (b"student_id\n\xff\xfe\n", ["roster: cannot read", "codec"]),
}


@pytest.mark.parametrize("case", list(BAD_ROSTERS))
def test_bad_roster(case, tmp_path):
    content, words = BAD_ROSTERS[case]
    path = tmp_path / "missing.csv" if content is None else write(tmp_path / "r.csv", content)
    with pytest.raises(ValueError) as info:
        read_roster(path)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_folder_as_roster(tmp_path):
    with pytest.raises(ValueError, match="roster: cannot read"):
        read_roster(tmp_path)


# ---------------------------------------------------------------- seeds


def test_student_seed_is_stable_and_distinct():
    a = student_seed(2024, "ann")
    assert a.entropy == student_seed(2024, "ann").entropy
    assert a.entropy != student_seed(2024, "bob").entropy
    assert a.entropy != student_seed(2025, "ann").entropy
    assert a.entropy != student_seed(2024, "Ann").entropy
    # Stable across processes (no Python hash randomisation): same state in a fresh one.
    code = "from lmmsim.course.roster import student_seed; print(student_seed(2024, 'ann').generate_state(4).tolist())"
    out = subprocess.run([str(PYTHON), "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "123"}, check=True)
    assert out.stdout.strip() == str(a.generate_state(4).tolist())
    for bad in (-1, 1.5, "7"):
        with pytest.raises(ValueError, match="course_seed"):
            student_seed(bad, "ann")


# ---------------------------------------------------------------- course datasets

IDS = ["ann", "bob", "s-003", "Z.9"]


def test_course_datasets():
    params = {"n_plots": 9, "sigma_e": 1.5}
    files = course_datasets(scenarios.plant_growth, params, IDS, course_seed=77)
    assert sorted(files) == sorted([f"{s}{end}" for s in IDS for end in (".csv", "_answers.csv")] + ["answer_key.json"])
    # Reproducible, and each student gets a different dataset.
    assert files == course_datasets(scenarios.plant_growth, params, IDS, course_seed=77)
    csvs = [files[f"{s}.csv"] for s in IDS]
    assert len(set(csvs)) == len(IDS)
    assert files["ann.csv"] != course_datasets(scenarios.plant_growth, params, IDS, course_seed=78)["ann.csv"]
    # A student's data do not depend on who else is on the roster.
    assert course_datasets(scenarios.plant_growth, params, ["ann"], course_seed=77)["ann.csv"] == files["ann.csv"]
    key = json.loads(files["answer_key.json"])
    assert key["scenario"] == "plant_growth" and key["parameters"] == params and key["course_seed"] == 77
    assert list(key["students"]) == IDS
    design = scenarios.plant_growth(**params)
    for sid in IDS:
        truth = Truth.from_dict(key["students"][sid])
        assert truth.sigma_e == 1.5 and truth.provenance["student_id"] == sid
        # The key matches the data: re-simulating from the student's seed gives the same
        # CSV and the same truth.
        again = simulate(design, student_seed(77, sid))
        assert csv_text(again.data) == files[f"{sid}.csv"]
        assert again.truth.parameters() == truth.parameters()
        assert len(again.data) == 9 * 6
    # Different data, same truth: every student estimates the same parameters.
    assert len({json.dumps(key["students"][s]["beta"]) for s in IDS}) == 1
    # Each student's answer template names their dataset and the parameters to estimate.
    template = read_submissions_text(files["Z.9_answers.csv"])
    assert template["parameter"].tolist() == list(Truth.from_dict(key["students"]["Z.9"]).parameters())
    assert set(template["dataset"]) == {dataset_fingerprint(files["Z.9.csv"])} and set(template["student_id"]) == {"Z.9"}


def read_submissions_text(text: str):
    import io

    import pandas as pd

    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def test_course_files_may_not_clash():
    with pytest.raises(ValueError, match="two students' files would share a name"):
        course_datasets(scenarios.plant_growth, {}, ["ann", "Ann_answers"], course_seed=1)


def test_course_datasets_bad_parameters():
    with pytest.raises(ValueError, match="n_plots: got 1"):
        course_datasets(scenarios.plant_growth, {"n_plots": 1}, IDS, course_seed=1)
    with pytest.raises(ValueError, match="course_seed"):
        course_datasets(scenarios.plant_growth, {}, IDS, course_seed=-5)
