"""Coursework: one dataset per student, reproducible from a course seed, plus an answer key."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from lmmsim.course.submissions import TEMPLATE_SUFFIX, dataset_fingerprint, template_text
from lmmsim.io import csv_text
from lmmsim.scenarios import Scenario
from lmmsim.simulate import simulate
from lmmsim.validate import check_count

ID_COLUMN = "student_id"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # also short enough for a file name


def read_roster(path: str | Path) -> list[str]:
    """Student ids from a CSV file with a ``student_id`` column.

    Ids must be unique, also ignoring case, and made of letters, digits, ``.``, ``_`` and
    ``-`` (they become file names, and ``Ann.csv`` and ``ann.csv`` are one file on
    Windows and macOS). A UTF-8 byte-order mark, as spreadsheets write, is ignored.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"roster: cannot read {str(path)!r}: {err}") from None
    if not rows or ID_COLUMN not in rows[0]:
        raise ValueError(f"roster: {str(path)!r} needs a header with a {ID_COLUMN!r} column and at least one student")
    ids = [(row[ID_COLUMN] or "").strip() for row in rows]
    for line, sid in enumerate(ids, start=2):
        if not _SAFE_ID.fullmatch(sid):
            raise ValueError(
                f"roster: line {line} of {str(path)!r} has student_id {sid!r}; expected 1 to 100 "
                "letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
    seen: dict[str, str] = {}
    for sid in ids:
        key = sid.casefold()
        if key in seen:
            also = "" if seen[key] == sid else f" (as {seen[key]!r}; ids must differ in more than case)"
            raise ValueError(f"roster: student_id {sid!r} appears more than once in {str(path)!r}{also}")
        seen[key] = sid
    return ids


def student_seed(course_seed: int, student_id: str) -> np.random.SeedSequence:
    """The seed of one student's dataset: the course seed and a hash of the id.

    Stable across runs, processes and machines (no Python ``hash``), and distinct per
    student.
    """
    course_seed = check_count("course_seed", course_seed, minimum=0)
    digest = hashlib.sha256(student_id.encode("utf-8")).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.SeedSequence([course_seed, *words])


def course_datasets(
    scenario: Scenario, params: dict[str, Any], student_ids: list[str], course_seed: int
) -> dict[str, str]:
    """File name -> text: ``<student_id>.csv`` and the answer template
    ``<student_id>_answers.csv`` for each student, and ``answer_key.json``."""
    design = scenario(**params)
    files: dict[str, str] = {}
    key: dict[str, Any] = {"scenario": scenario.name, "parameters": params, "course_seed": course_seed, "students": {}}
    for sid in student_ids:
        seed = student_seed(course_seed, sid)
        sim = simulate(design, seed, provenance={"scenario": scenario.name, "parameters": params, "student_id": sid})
        text = csv_text(sim.data)
        files[f"{sid}.csv"] = text
        files[f"{sid}{TEMPLATE_SUFFIX}"] = template_text(sid, dataset_fingerprint(text), list(sim.truth.parameters()))
        key["students"][sid] = sim.truth.to_dict()
    if len({name.casefold() for name in files}) < 2 * len(student_ids):  # e.g. "ann" and "ann_answers"
        raise ValueError(
            f"roster: two students' files would share a name; rename the ids ending in {TEMPLATE_SUFFIX[:-4]!r}"
        )
    files["answer_key.json"] = json.dumps(key, indent=2, allow_nan=False) + "\n"
    return files


def stale_files(outdir: str | Path, files: dict[str, str], force: bool = False) -> list[Path]:
    """Check that the roster ``files`` (from :func:`course_datasets`) may be written to
    ``outdir``; returns the files of a previous roster there that they do not replace
    (to remove after writing, with ``force``).

    The folder may be new, hold other files (not a roster's), or hold this same roster (the
    same answer key: a rerun). Another roster (a different answer key: other students,
    course seed, scenario or parameters), or files of this roster's names without an answer
    key, are refused unless ``force``; then the previous roster's files, exactly those its
    answer key lists, are returned (other files are left alone).

    Raises
    ------
    ValueError
        If the folder holds other files and ``force`` is false.
    """
    outdir = Path(outdir)
    key_path = outdir / "answer_key.json"
    old_key = key_path.read_text(encoding="utf-8") if key_path.is_file() else None
    clash = [name for name in files if (outdir / name).exists()]
    if old_key == files["answer_key.json"] or (old_key is None and not clash):
        return []
    listed = _listed_files(old_key)
    if not force:
        what = (f"files this roster would replace ({clash[0]}, ...) but no answer_key.json" if old_key is None else
                "the files of another roster (its answer_key.json differs: other students, course seed, "
                "scenario or parameters)")
        raise ValueError(f"--outdir: {str(outdir)!r} holds {what}; use another folder, or --force to replace them")
    return [outdir / name for name in listed if name not in files and (outdir / name).is_file()]


def _listed_files(key_text: str | None) -> list[str]:
    """The files of the roster an answer key describes (none if it cannot be read)."""
    try:
        students = json.loads(key_text or "")["students"]
    except (ValueError, KeyError, TypeError):
        return []
    if not isinstance(students, dict):
        return []
    names = [n for sid in students if isinstance(sid, str) and _SAFE_ID.fullmatch(sid)
             for n in (f"{sid}.csv", f"{sid}{TEMPLATE_SUFFIX}")]
    return [*names, "answer_key.json"]
