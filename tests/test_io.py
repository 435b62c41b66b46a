"""lmmsim.io: CSV text and atomic, all-or-none writes."""

from __future__ import annotations

import io
import os
import stat

import pandas as pd
import pytest

from lmmsim import scenarios, simulate
from lmmsim.io import csv_text, write_files


def listing(folder) -> list[str]:
    """Every entry in the folder, hidden temp files included."""
    return sorted(os.listdir(folder))


def test_csv_text_is_exact_and_portable():
    data = simulate(scenarios.plant_growth(), seed=1).data
    text = csv_text(data)
    assert "\r" not in text and text.endswith("\n")
    assert text.splitlines()[0] == "plot,week,treatment,height"  # no index column
    rows = [line.split(",") for line in text.splitlines()[1:]]
    # Floats are written exactly: Python's float() reads back the same numbers.
    assert [float(r[3]) for r in rows] == data["height"].tolist()
    assert [int(r[1]) for r in rows] == data["week"].tolist()
    assert [r[2] for r in rows] == data["treatment"].astype(str).tolist()
    awkward = [0.1 + 0.2, 1e-300, -2.5e17, 1 / 3, 5e-324]
    lines = csv_text(pd.DataFrame({"x": awkward})).splitlines()
    assert [float(v) for v in lines[1:]] == awkward
    assert pd.read_csv(io.StringIO(text)).shape == data.shape


def test_write_files_writes_and_replaces(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.json"
    a.write_text("old\n")
    write_files({a: "x,y\n1,2\n", b: "{}\n"})
    assert a.read_text() == "x,y\n1,2\n" and b.read_text() == "{}\n"
    assert listing(tmp_path) == ["a.csv", "b.json"]  # no temp files left
    write_files({str(a): "é\n"})  # str paths; UTF-8
    assert a.read_bytes() == "é\n".encode()


def test_missing_folder_writes_nothing(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("old\n")
    with pytest.raises(ValueError, match=r"nope.b.json: folder .*nope' does not exist"):
        write_files({a: "new\n", tmp_path / "nope" / "b.json": "{}\n"})
    assert a.read_text() == "old\n"
    assert listing(tmp_path) == ["a.csv"]


def test_folder_as_target_writes_nothing(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("old\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="sub: is a folder, expected a file name"):
        write_files({a: "new\n", tmp_path / "sub": "{}\n"})
    assert a.read_text() == "old\n"
    assert listing(tmp_path) == ["a.csv", "sub"] and listing(tmp_path / "sub") == []


def test_unwritable_name_writes_nothing(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("old\n")
    too_long = tmp_path / ("x" * 300 + ".csv")  # longer than any file system allows
    with pytest.raises(ValueError, match="cannot write"):
        write_files({a: "new\n", too_long: "data\n"})
    assert a.read_text() == "old\n"
    assert listing(tmp_path) == ["a.csv"]


def test_failure_while_moving_into_place_leaves_no_temp_files(tmp_path, monkeypatch):
    a, b = tmp_path / "a.csv", tmp_path / "b.json"
    a.write_text("old\n")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ValueError, match="a.csv: cannot write: Permission denied"):
        write_files({a: "new\n", b: "{}\n"})
    assert a.read_text() == "old\n"
    assert listing(tmp_path) == ["a.csv"]


def test_fifo_and_device_are_refused_and_kept(tmp_path):
    a, fifo = tmp_path / "a.csv", tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe: is not a regular file"):
        write_files({a: "new\n", fifo: "{}\n"})
    assert listing(tmp_path) == ["pipe"]  # nothing written, the FIFO is still a FIFO
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(ValueError, match="/dev/null: is not a regular file"):
        write_files({"/dev/null": "x\n"})
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_symlink_is_followed_and_kept(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_files({link: "new\n"})
    assert link.is_symlink() and target.read_text() == "new\n"
    dangling = tmp_path / "later.csv"
    dangling.symlink_to(tmp_path / "real" / "later.csv")
    write_files({dangling: "x\n"})
    assert dangling.is_symlink() and (tmp_path / "real" / "later.csv").read_text() == "x\n"
    assert listing(tmp_path / "real") == ["data.csv", "later.csv"]


def test_new_files_respect_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    old = os.umask(0o027)
    try:
        write_files({tmp_path / "new.csv": "x\n"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.csv").st_mode) == 0o640
    kept = tmp_path / "kept.csv"
    kept.write_text("old\n")
    os.chmod(kept, 0o604)
    write_files({kept: "new\n"})
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o604 and kept.read_text() == "new\n"
