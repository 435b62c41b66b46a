"""Students' answers: the template each student fills in, and reading the filled-in CSV.

The format is tidy, one row per student and parameter::

    student_id,dataset,parameter,estimate,se,ci_low,ci_high
    ann,3f2a9c01b7d4,Intercept,10.12,0.31,9.51,10.73

``parameter`` uses the names of the rows of ``fit.estimates`` and ``truth.parameters()``
(the book's notation page): fixed effects by the columns of X, ``sd(term|factor)``,
``cor(term1,term2|factor)`` and ``sd(residual)``. ``se``, ``ci_low`` and ``ci_high`` are
optional columns; ``dataset`` is the fingerprint of the student's data, which lets the
grader notice a key from another course. A learning platform's CSV export of the same
columns is accepted too: extra columns, a byte-order mark, headers in any case, ``;`` or
tab as separator (then also a decimal comma).
"""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import pandas as pd

from lmmsim.io import csv_text

REQUIRED = ("student_id", "parameter", "estimate")
OPTIONAL = ("se", "ci_low", "ci_high")
NUMBERS = ("estimate", *OPTIONAL)
DATASET = "dataset"
TEMPLATE_SUFFIX = "_answers.csv"  # beside each student's <student_id>.csv
TEMPLATE_COLUMNS = ("student_id", DATASET, "parameter", "estimate", *OPTIONAL)


def dataset_fingerprint(text: str) -> str:
    """A short, stable fingerprint of a dataset's CSV text (12 hex digits of SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def template_text(student_id: str, fingerprint: str, parameters: list[str]) -> str:
    """The CSV a student fills in: one row per parameter, the numbers left blank."""
    rows = [{"student_id": student_id, DATASET: fingerprint, "parameter": p} for p in parameters]
    return csv_text(pd.DataFrame(rows, columns=list(TEMPLATE_COLUMNS)))


def read_submissions(path: str | Path) -> pd.DataFrame:
    """The rows of a submissions CSV, each with its line number and any problem.

    Returns
    -------
    pandas.DataFrame
        Columns ``line`` (line in the file, header = 1), ``student_id``, ``parameter``,
        ``dataset`` (``""`` if the file has none), the numbers ``estimate``, ``se``,
        ``ci_low``, ``ci_high`` (NaN where blank or absent) and ``problem`` (``""``, or
        why the row cannot be graded, e.g. a value that is not a number). The optional
        number columns present in the file are in ``.attrs["columns"]``.

    Raises
    ------
    ValueError
        If the file cannot be read, lacks a required column or has no rows.
    """
    header, rows, delimiter = _read_rows(path)
    columns = [_normalise(name) for name in header]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ValueError(
            f"submissions: {str(path)!r} lacks the columns {missing}; it needs {list(REQUIRED)} "
            f"(optional {list(OPTIONAL)}) and has {header}"
        )
    for name in {*REQUIRED, *OPTIONAL, DATASET}:
        if columns.count(name) > 1:
            raise ValueError(f"submissions: column {name!r} appears {columns.count(name)} times in {str(path)!r}")
    decimal_comma = delimiter != ","  # with ";" or tab as separator, "1,5" means 1.5
    records = []
    for line, row in rows:
        cells = {c: (row[k].strip() if k < len(row) else "") for k, c in enumerate(columns)}
        record = {"line": line, "student_id": cells["student_id"], "parameter": cells["parameter"],
                  DATASET: cells.get(DATASET, "")}
        problems = []
        for name in NUMBERS:
            value, problem = _number(name, cells.get(name, ""), decimal_comma)
            record[name] = value
            problems += [problem] if problem else []
        if len(row) > len(columns):
            problems.append(f"{len(row)} cells but {len(columns)} columns in the header")
        record["problem"] = "; ".join(problems)
        records.append(record)
    if not records:
        raise ValueError(f"submissions: {str(path)!r} has a header but no answers")
    frame = pd.DataFrame(records, columns=["line", "student_id", "parameter", DATASET, *NUMBERS, "problem"])
    frame.attrs["columns"] = [c for c in OPTIONAL if c in columns]
    return frame


def _read_rows(path: str | Path) -> tuple[list[str], list[tuple[int, list[str]]], str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"submissions: cannot read {str(path)!r}: {err}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"submissions: {str(path)!r} is empty; expected a header with {list(REQUIRED)}")
    # The separator is the first of these in the header (spreadsheets in many locales write ";").
    delimiter = next((d for d in (",", ";", "\t") if d in lines[0]), ",")
    try:
        table = list(csv.reader(text.splitlines(keepends=True), delimiter=delimiter))
    except csv.Error as err:
        raise ValueError(f"submissions: cannot read {str(path)!r}: {err}") from None
    # Line numbers as a spreadsheet shows them; blank lines are skipped, not errors.
    body = [(k, row) for k, row in enumerate(table[1:], start=2) if any(cell.strip() for cell in row)]
    return table[0], body, delimiter


def _normalise(name: str) -> str:
    """``" Student ID"`` -> ``"student_id"``: platforms vary case and spacing."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def _number(name: str, text: str, decimal_comma: bool) -> tuple[float, str]:
    if not text:
        return math.nan, ""
    candidate = text.replace(",", ".") if decimal_comma and "." not in text else text
    try:
        value = float(candidate)
    except ValueError:
        return math.nan, f"{name} {text!r} is not a number"
    if not math.isfinite(value):
        return math.nan, f"{name} {text!r} is not a finite number"
    return value, ""
