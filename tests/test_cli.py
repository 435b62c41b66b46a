"""The command line: ``lmmsim scenarios``, ``lmmsim simulate`` and ``lmmsim grade``, as real processes
(``python -m lmmsim`` and the ``lmmsim`` console script) and in-process for the many
bad-input cases. Bad input: one line on stderr, no traceback, a non-zero exit status,
and no output file left behind (existing files unchanged)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import LMMSIM_SCRIPT, assert_one_line_error, run_cli, start_cli

from lmmsim import Truth, scenarios, simulate
from lmmsim.cli import main
from lmmsim.course.roster import student_seed
from lmmsim.io import csv_text

NAMES = list(scenarios.SCENARIOS)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under the folder (hidden temp files included) with its bytes."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


# ---------------------------------------------------------------- real processes


def test_console_script_lists_scenarios(workdir):
    assert LMMSIM_SCRIPT.exists()
    done = run_cli(["scenarios"], workdir, script=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    for name in NAMES:
        scenario = scenarios.get(name)
        assert f"{name}: {scenario.summary}" in out
        assert f"  model: {scenario.model.lme4}" in out
        for param, default in scenario.parameters.items():
            assert f"  {param} = {default!r}" in out
    assert snapshot(workdir) == {}


def test_simulate_is_byte_identical_across_processes(workdir):
    # Each scenario, simulated twice in separate processes (with different hash seeds),
    # gives the same bytes, which are also what the library gives in this process; a
    # different seed gives different data. The processes run in parallel.
    jobs = {}
    for name in NAMES:
        for run in "ab":
            stem = f"{name}_{run}"
            jobs[stem] = start_cli(["simulate", name, "--seed", "2024", "--out", f"{stem}.csv", "--truth", f"{stem}.json"], workdir)
    for stem, job in jobs.items():
        stdout, stderr = job.communicate(timeout=180)
        assert job.returncode == 0, (stem, stderr)
        assert stderr == "" and stdout.startswith("wrote ")
    for name in NAMES:
        a, b = (workdir / f"{name}_{r}.csv" for r in "ab")
        ta, tb = (workdir / f"{name}_{r}.json" for r in "ab")
        assert a.read_bytes() == b.read_bytes()
        assert ta.read_bytes() == tb.read_bytes()
        sim = simulate(scenarios.get(name)(), seed=2024, provenance={"scenario": name, "parameters": {}})
        assert a.read_text(encoding="utf-8") == csv_text(sim.data)
        assert ta.read_text(encoding="utf-8") == sim.truth.to_json()
        truth = Truth.from_json(ta.read_text(encoding="utf-8"))
        assert truth.provenance["seed"] == 2024 and truth.provenance["scenario"] == name
        other = simulate(scenarios.get(name)(), seed=2025)
        assert csv_text(other.data) != a.read_text(encoding="utf-8")


def test_roster_through_the_console_script(workdir, monkeypatch, capsys):
    (workdir / "students.csv").write_text("student_id,name\nann,Ann\nbob,Bob\ns-3,Cy\n", encoding="utf-8")
    args = ["simulate", "plant_growth", "--set", "n_plots=6", "--roster", "students.csv", "--course-seed", "99"]
    first = run_cli([*args, "--outdir", "out1"], workdir, script=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "wrote 3 datasets, 3 answer templates and answer_key.json to out1"
    monkeypatch.chdir(workdir)
    assert main([*args, "--outdir", "out2"]) == 0  # again, in this process
    out1, out2 = workdir / "out1", workdir / "out2"
    names = sorted(os.listdir(out1))
    assert names == ["ann.csv", "ann_answers.csv", "answer_key.json", "bob.csv", "bob_answers.csv", "s-3.csv", "s-3_answers.csv"]
    assert sorted(os.listdir(out2)) == names
    for name in names:
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    csvs = {sid: (out1 / f"{sid}.csv").read_text(encoding="utf-8") for sid in ("ann", "bob", "s-3")}
    assert len(set(csvs.values())) == 3
    key = json.loads((out1 / "answer_key.json").read_text(encoding="utf-8"))
    assert set(key["students"]) == set(csvs) and key["course_seed"] == 99 and key["parameters"] == {"n_plots": 6}
    design = scenarios.plant_growth(n_plots=6)
    for sid, text in csvs.items():
        sim = simulate(design, student_seed(99, sid))
        assert csv_text(sim.data) == text, sid
        assert Truth.from_dict(key["students"][sid]).parameters() == sim.truth.parameters()


def test_bad_input_in_a_real_process(workdir):
    (workdir / "data.csv").write_text("precious\n")
    before = snapshot(workdir)
    job = start_cli(["simulate", "plant_growth", "--seed", "1", "--set", "sigma_e=-1", "--out", "data.csv", "--truth", "t.json"], workdir)
    script = run_cli(["simulate", "schools", "--roster", "missing.csv", "--course-seed", "1", "--outdir", "out"], workdir, script=True)
    stdout, stderr = job.communicate(timeout=120)
    for (out, err, code), words in (((stdout, stderr, job.returncode), "sigma_e: got -1.0"), ((script.stdout, script.stderr, script.returncode), "roster: cannot read")):
        assert code == 2 and out == ""
        assert words in assert_one_line_error(err)
    assert snapshot(workdir) == before


# ---------------------------------------------------------------- in process


def test_set_changes_parameters(workdir):
    out, truth = workdir / "d.csv", workdir / "t.json"
    code = main(["simulate", "blood_pressure", "--seed", "3", "--set", "n_patients=7", "--set", "rho=0.5",
                 "--set", "dropout=0.2", "--out", str(out), "--truth", str(truth)])
    assert code == 0
    t = Truth.from_json(truth.read_text(encoding="utf-8"))
    assert t.corr["patient"][0][1] == 0.5
    assert t.provenance["parameters"] == {"n_patients": 7, "rho": 0.5, "dropout": 0.2}
    data = out.read_text(encoding="utf-8").splitlines()
    assert data[0] == "patient,week,drug,bp" and len({line.split(",")[0] for line in data[1:]}) == 7
    expected = simulate(scenarios.blood_pressure(n_patients=7, rho=0.5, dropout=0.2), seed=3).data
    assert out.read_text(encoding="utf-8") == csv_text(expected)


ROSTERS = {
    "missing.csv": None,
    "nocol.csv": "name\nann\n",
    "empty.csv": "",
    "dup.csv": "student_id\nann\nann\n",
    "unsafe.csv": "student_id\n../../x\n",
}

BAD_COMMANDS = {
    # class: (arguments, words in the one error line)
    "negative SD": (["simulate", "schools", "--seed", "1", "--set", "sigma_school=-2"], ["sigma_school", "-2.0", ">= 0"]),
    "infinite SD": (["simulate", "schools", "--seed", "1", "--set", "sigma_e=inf"], ["sigma_e", "'inf'", "finite"]),
    "NaN SD": (["simulate", "plant_growth", "--seed", "1", "--set", "sigma_u1=nan"], ["sigma_u1", "'nan'", "finite"]),
    "correlation above 1": (["simulate", "blood_pressure", "--seed", "1", "--set", "rho=1.01"], ["rho", "1.01", "[-1, 1]"]),
    "correlation below -1": (["simulate", "plant_growth", "--seed", "1", "--set", "rho=-3"], ["rho", "-3.0", "[-1, 1]"]),
    "fewer than 2 groups": (["simulate", "blood_pressure", "--seed", "1", "--set", "n_patients=1"], ["n_patients", "1", ">= 2"]),
    "too few plots": (["simulate", "plant_growth", "--seed", "1", "--set", "n_plots=2"], ["n_plots", "2", ">= 3"]),
    "zero observations per group": (["simulate", "schools", "--seed", "1", "--set", "n_students=0"], ["n_students", "0", ">= 1"]),
    "unknown scenario": (["simulate", "school", "--seed", "1"], ["scenario", "'school'", "schools"]),
    "unknown parameter": (["simulate", "schools", "--seed", "1", "--set", "sigma_u=2"], ["'sigma_u'", "not a parameter", "sigma_school"]),
    "non-integer count": (["simulate", "plant_growth", "--seed", "1", "--set", "n_plots=12.5"], ["n_plots", "'12.5'", "whole number"]),
    "non-number": (["simulate", "plant_growth", "--seed", "1", "--set", "beta0=tall"], ["beta0", "'tall'", "not a number"]),
    "--set without =": (["simulate", "schools", "--seed", "1", "--set", "n_schools"], ["--set", "'n_schools'", "NAME=VALUE"]),
    "--set without name": (["simulate", "schools", "--seed", "1", "--set", "=5"], ["--set", "'=5'", "NAME=VALUE"]),
    "--set without value": (["simulate", "schools", "--seed", "1", "--set", "n_schools="], ["--set", "'n_schools='", "NAME=VALUE"]),
    "dropout out of range": (["simulate", "blood_pressure", "--seed", "1", "--set", "dropout=1"], ["dropout", "1.0", "[0, 1)"]),
    "AR(1) phi of 1": (["simulate", "plant_growth", "--seed", "1", "--set", "phi=1"], ["phi", "1.0", "(-1, 1)"]),
    "negative seed": (["simulate", "schools", "--seed", "-4"], ["--seed", "-4", "non-negative whole number"]),
    "non-integer seed": (["simulate", "schools", "--seed", "1.5"], ["--seed", "'1.5'", "non-negative whole number"]),
    "missing seed": (["simulate", "schools"], ["--seed is required"]),
    "no command": ([], ["required", "command"]),
    "unknown command": (["simulat"], ["invalid choice", "'simulat'"]),
    "unknown option": (["simulate", "schools", "--seed", "1", "--sed", "2"], ["unrecognized arguments", "--sed"]),
    "same file twice": (["simulate", "schools", "--seed", "1", "--out", "same.csv", "--truth", "same.csv"], ["--out and --truth must be different"]),
    "missing folder": (["simulate", "schools", "--seed", "1", "--truth", "nope/t.json"], ["nope", "does not exist"]),
    "output is a folder": (["simulate", "schools", "--seed", "1", "--truth", "afolder"], ["afolder", "is a folder"]),
    "roster missing file": (["simulate", "schools", "--roster", "missing.csv", "--course-seed", "1", "--outdir", "out"], ["roster: cannot read", "missing.csv"]),
    "roster without student_id": (["simulate", "schools", "--roster", "nocol.csv", "--course-seed", "1", "--outdir", "out"], ["nocol.csv", "'student_id' column"]),
    "roster empty": (["simulate", "schools", "--roster", "empty.csv", "--course-seed", "1", "--outdir", "out"], ["empty.csv", "at least one student"]),
    "roster duplicate ids": (["simulate", "schools", "--roster", "dup.csv", "--course-seed", "1", "--outdir", "out"], ["'ann' appears more than once"]),
    "roster unsafe id": (["simulate", "schools", "--roster", "unsafe.csv", "--course-seed", "1", "--outdir", "out"], ["'../../x'", "letters, digits"]),
    "roster without course seed": (["simulate", "schools", "--roster", "good.csv", "--outdir", "out"], ["--course-seed is required"]),
    "roster with --seed": (["simulate", "schools", "--roster", "good.csv", "--course-seed", "1", "--seed", "1", "--outdir", "out"], ["--seed cannot be combined"]),
    "roster with bad parameter": (["simulate", "schools", "--roster", "good.csv", "--course-seed", "1", "--outdir", "out", "--set", "n_schools=0"], ["n_schools"]),
    "outdir is a file": (["simulate", "schools", "--roster", "good.csv", "--course-seed", "1", "--outdir", "data.csv"], ["--outdir", "data.csv", "is a file"]),
    "outdir parent missing": (["simulate", "schools", "--roster", "good.csv", "--course-seed", "1", "--outdir", "no/out"], ["--outdir", "'no' does not exist"]),
}


def with_outputs(args: list[str]) -> list[str]:
    """Add --out/--truth to single-dataset commands that lack them."""
    if args and args[0] == "simulate" and "--roster" not in args:
        if "--out" not in args:
            args = [*args, "--out", "data.csv"]
        if "--truth" not in args:
            args = [*args, "--truth", "truth.json"]
    return args


@pytest.mark.parametrize("case", list(BAD_COMMANDS))
def test_bad_command(case, workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    for name, text in ROSTERS.items():
        if text is not None:
            (workdir / name).write_text(text, encoding="utf-8")
    (workdir / "good.csv").write_text("student_id\nann\n", encoding="utf-8")
    (workdir / "afolder").mkdir()
    (workdir / "data.csv").write_text("precious data\n", encoding="utf-8")  # pre-existing output
    before = snapshot(workdir)
    args, words = BAD_COMMANDS[case]
    code = main(with_outputs(args))
    captured = capsys.readouterr()
    assert code != 0 and code == 2
    assert captured.out == ""
    line = assert_one_line_error(captured.err)
    for word in words:
        assert word in line, line
    # Nothing written: no truth.json, no out/ folder, no temp files; data.csv unchanged.
    assert snapshot(workdir) == before


def test_failure_at_write_time_keeps_existing_output(workdir, monkeypatch, capsys):
    # --out is fine and exists; --truth cannot be written: neither file changes.
    monkeypatch.chdir(workdir)
    (workdir / "data.csv").write_text("precious data\n", encoding="utf-8")
    (workdir / "truth.json").mkdir()
    before = snapshot(workdir)
    code = main(["simulate", "schools", "--seed", "1", "--out", "data.csv", "--truth", "truth.json"])
    assert code == 2
    assert "truth.json: is a folder" in assert_one_line_error(capsys.readouterr().err)
    assert snapshot(workdir) == before


def test_roster_write_failure_leaves_no_outdir(workdir, monkeypatch, capsys):
    # An id that is valid but makes a file name the file system refuses (a long id in a
    # deep folder would do; here os.replace is made to refuse): no folder is left behind.
    monkeypatch.chdir(workdir)
    (workdir / "r.csv").write_text("student_id\nann\n", encoding="utf-8")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    code = main(["simulate", "schools", "--roster", "r.csv", "--course-seed", "1", "--outdir", "out"])
    assert code == 2
    assert "cannot write" in assert_one_line_error(capsys.readouterr().err)
    assert sorted(os.listdir(workdir)) == ["r.csv"]


def test_existing_outdir_is_reused(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    (workdir / "r.csv").write_text("student_id\nann\n", encoding="utf-8")
    (workdir / "out").mkdir()
    (workdir / "out" / "notes.txt").write_text("keep\n")
    assert main(["simulate", "schools", "--roster", "r.csv", "--course-seed", "1", "--outdir", "out"]) == 0
    assert sorted(os.listdir(workdir / "out")) == ["ann.csv", "ann_answers.csv", "answer_key.json", "notes.txt"]
    assert capsys.readouterr().err == ""


def test_outdir_of_another_roster_is_refused_unless_force(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    (workdir / "r1.csv").write_text("student_id\nann\nbob\n", encoding="utf-8")
    (workdir / "r2.csv").write_text("student_id\ncy\nann\n", encoding="utf-8")
    base = ["simulate", "schools", "--set", "n_schools=6", "--outdir", "out"]
    assert main([*base, "--roster", "r1.csv", "--course-seed", "1"]) == 0
    (workdir / "out" / "notes.txt").write_text("keep\n")
    capsys.readouterr()
    assert main([*base, "--roster", "r1.csv", "--course-seed", "1"]) == 0  # the same roster again: fine
    before = snapshot(workdir)
    for roster, seed in (("r2.csv", "1"), ("r1.csv", "2")):  # another roster, another course seed
        assert main([*base, "--roster", roster, "--course-seed", seed]) == 2
        line = assert_one_line_error(capsys.readouterr().err)
        assert "holds the files of another roster" in line and "--force" in line
        assert snapshot(workdir) == before
    assert main([*base, "--roster", "r2.csv", "--course-seed", "1", "--force"]) == 0
    assert sorted(os.listdir(workdir / "out")) == ["ann.csv", "ann_answers.csv", "answer_key.json", "cy.csv",
                                                   "cy_answers.csv", "notes.txt"]
    assert list(json.loads((workdir / "out" / "answer_key.json").read_text())["students"]) == ["cy", "ann"]
    # files of this roster's names without an answer key are not overwritten silently either
    (workdir / "out" / "answer_key.json").unlink()
    assert main([*base, "--roster", "r2.csv", "--course-seed", "1"]) == 2
    assert "no answer_key.json" in assert_one_line_error(capsys.readouterr().err)
    assert main(["simulate", "schools", "--seed", "1", "--out", "d.csv", "--truth", "t.json", "--force"]) == 2


# ---------------------------------------------------------------- grade


def class_folder(workdir: Path) -> Path:
    """A class of three with answer templates, and answers.csv: ann honest, bob blank, cy copies ann."""
    from lmmsim import fit_lmm
    from lmmsim.course.submissions import NUMBERS

    (workdir / "r.csv").write_text("student_id\nann\nbob\ncy\n", encoding="utf-8")
    args = ["simulate", "cluster_trial", "--set", "n_clusters=10", "--set", "sigma_u=2", "--set", "sigma_e=2"]
    assert main([*args, "--roster", str(workdir / "r.csv"), "--course-seed", "5", "--outdir", str(workdir / "c")]) == 0
    read = lambda name: pd.read_csv(workdir / "c" / name, dtype=str, keep_default_na=False)  # noqa: E731
    ann = read("ann_answers.csv")
    fit = fit_lmm(pd.read_csv(workdir / "c" / "ann.csv"), scenarios.cluster_trial.model).estimates
    for column in NUMBERS:
        ann[column] = ann["parameter"].map(fit[column])
    cy = read("cy_answers.csv")
    cy[list(NUMBERS)] = ann[list(NUMBERS)].to_numpy()
    pd.concat([ann, read("bob_answers.csv"), cy]).to_csv(workdir / "answers.csv", index=False)
    return workdir


def test_grade_end_to_end(workdir, monkeypatch, capsys):
    monkeypatch.chdir(class_folder(workdir))
    (workdir / "fb").mkdir()
    args = ["grade", "--answer-key", "c/answer_key.json", "--submissions", "answers.csv", "--out", "grades.csv"]
    assert main([*args, "--feedback", "fb", "--plot", "class.svg"]) == 0
    out = capsys.readouterr().out
    grades = pd.read_csv(workdir / "grades.csv")
    assert len(grades) == 15 and list(grades.columns[:3]) == ["student_id", "parameter", "line"]
    points = grades.groupby("student_id")["points"].sum()
    assert points["ann"] == grades.loc[grades["student_id"] == "ann", "max_points"].sum() > 0
    assert points["bob"] == 0 and (grades.loc[grades["student_id"] == "bob", "reason"] == "no estimate").all()
    assert grades.loc[grades["student_id"] == "cy", "flag"].str.startswith("copy? 5 of 5 estimates match ann's data").all()
    assert sorted(os.listdir(workdir / "fb")) == ["ann.txt", "bob.txt", "cy.txt"]
    assert (workdir / "fb" / "cy.txt").read_text(encoding="utf-8").startswith("Feedback for cy: ")
    assert (workdir / "class.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert "3 of 3 students submitted" in out and "cy: copy? 5 of 5 estimates match ann's data" in out
    assert out.rstrip().endswith("wrote 15 rows to grades.csv")
    # Same input, same bytes (the figure included).
    before = {name: (workdir / name).read_bytes() for name in ("grades.csv", "class.svg")}
    assert main([*args, "--feedback", "fb", "--plot", "class.svg"]) == 0
    assert before == {name: (workdir / name).read_bytes() for name in before}


def test_grade_bad_input(workdir, monkeypatch, capsys):
    monkeypatch.chdir(class_folder(workdir))
    (workdir / "no_estimate.csv").write_text("student_id,parameter,value\nann,x,1\n", encoding="utf-8")
    other = workdir / "other"
    other.mkdir()
    assert main(["simulate", "cluster_trial", "--roster", "r.csv", "--course-seed", "6", "--outdir", "other"]) == 0
    capsys.readouterr()
    key, subs = ["--answer-key", "c/answer_key.json"], ["--submissions", "answers.csv"]
    cases = {
        "missing columns": ([*key, "--submissions", "no_estimate.csv", "--out", "g.csv"], "lacks the columns ['estimate']"),
        "missing file": ([*key, "--submissions", "nope.csv", "--out", "g.csv"], "submissions: cannot read"),
        "key from another seed": (["--answer-key", "other/answer_key.json", *subs, "--out", "g.csv"], "another course seed"),
        "key not JSON": (["--answer-key", "r.csv", *subs, "--out", "g.csv"], "answer key: cannot read"),
        "plot not svg": ([*key, *subs, "--out", "g.csv", "--plot", "p.png"], "expected a file name ending in .svg"),
        "no feedback folder": ([*key, *subs, "--out", "g.csv", "--feedback", "fb"], "--feedback: 'fb' is not an existing folder"),
        "out is input": ([*key, *subs, "--out", "answers.csv"], "--out must differ"),
        "out in no folder": ([*key, *subs, "--out", "x/g.csv"], "folder 'x' does not exist"),
        "no --out": ([*key, *subs], "--out"),
    }
    before = snapshot(workdir)
    for name, (args, words) in cases.items():
        assert main(["grade", *args]) == 2, name
        captured = capsys.readouterr()
        assert words in assert_one_line_error(captured.err), name
        assert captured.out == "" and snapshot(workdir) == before, name


def test_ctrl_c_ends_with_one_line_and_status_130(monkeypatch, capsys):
    import lmmsim.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_montecarlo", interrupted)
    assert main(["montecarlo", "cluster_trial", "--reps", "2", "--seed", "1", "--analyses", "ols", "--out", "never.csv"]) == 130
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "lmmsim: interrupted\n"


HEAVY = ("pandas", "patsy", "scipy", "statsmodels", "tqdm")


@pytest.mark.parametrize("argv", [["scenarios"], ["--help"]])
def test_start_up_imports_no_heavy_library(argv):
    # Which modules start-up imports, not how long it takes: `lmmsim scenarios` and
    # `lmmsim --help` need neither data frames nor fitting.
    code = ("import sys\nfrom lmmsim.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print('imported:', *[m for m in {HEAVY!r} if m in sys.modules])")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "imported:"


def test_public_names_load_on_first_use():
    import lmmsim

    assert set(lmmsim.__all__) <= set(dir(lmmsim))
    assert callable(lmmsim.simulate) and callable(lmmsim.recovery)  # not the modules of the same name
    with pytest.raises(AttributeError, match="no_such_name"):
        lmmsim.no_such_name  # noqa: B018
