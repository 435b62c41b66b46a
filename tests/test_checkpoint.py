"""Checkpoints that cannot lie: one writer at a time, and a chunk file is used only if it
is complete and belongs to this run and this lmmsim code; Ctrl-C says what is saved."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import PYTHON, assert_one_line_error, kill_cli, start_cli
from pandas.testing import assert_frame_equal

from lmmsim import montecarlo as mc
from lmmsim import scenarios
from lmmsim.montecarlo import checkpoint as cp
from lmmsim.montecarlo.lock import LOCK_NAME

SMALL = {"n_clusters": 6, "cluster_size": 4}
RUN = dict(params=SMALL, reps=40, seed=5, analyses="ols,lmm_t", chunk_size=10, progress=False)
CHUNKS = 4


def _run(folder, calls=None, **changes):
    options = {**RUN, **changes}
    on_chunk = None if calls is None else (lambda done, total: calls.append(done))
    return mc.run(scenarios.cluster_trial, checkpoint=folder, on_chunk=on_chunk, **options)


@pytest.fixture(scope="module")
def expected():
    return mc.run(scenarios.cluster_trial, **RUN)


def _chunk_files(folder):
    return sorted(folder.glob("cell*.csv"))


def test_a_run_records_its_identity_and_releases_the_folder(tmp_path, expected):
    assert_frame_equal(_run(tmp_path / "c"), expected)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["lmmsim"] == cp.code_version() and manifest["seed"] == 5
    first = _chunk_files(tmp_path / "c")[0].read_text().splitlines()[0]
    header = json.loads(first.removeprefix("# lmmsim chunk "))
    assert {k: header[k] for k in ("cell", "start", "stop", "rows", "lmmsim")} == {
        "cell": 0, "start": 0, "stop": 10, "rows": 10 * 4, "lmmsim": cp.code_version()}
    assert not (tmp_path / "c" / LOCK_NAME).exists()


def test_a_truncated_chunk_is_recomputed(tmp_path, expected):
    folder = tmp_path / "c"
    _run(folder)
    victim = _chunk_files(folder)[1]
    text = victim.read_text()
    victim.write_text(text[: len(text) // 2])  # cut short, as by a full disk
    calls = []
    assert_frame_equal(_run(folder, calls), expected)
    assert len(calls) == 1 and victim.read_text() == text


def test_a_foreign_chunk_is_recomputed(tmp_path, expected):
    _run(tmp_path / "mine")
    _run(tmp_path / "other", seed=6)
    victim = _chunk_files(tmp_path / "mine")[2]
    shutil.copy(tmp_path / "other" / victim.name, victim)  # another seed's replications, same file name
    calls = []
    assert_frame_equal(_run(tmp_path / "mine", calls), expected)
    assert len(calls) == 1


def test_other_lmmsim_code_is_not_reused(tmp_path, monkeypatch, expected):
    monkeypatch.setattr(cp, "code_version", lambda: "0.0.1+old")
    _run(tmp_path / "old")
    monkeypatch.setattr(cp, "code_version", lambda: "0.0.2+new")
    with pytest.raises(ValueError, match=r"holds results of lmmsim 0\.0\.1\+old, this is lmmsim 0\.0\.2\+new"):
        _run(tmp_path / "old")
    # a chunk of the old code copied into a folder of the new one is computed again
    _run(tmp_path / "new")
    victim = _chunk_files(tmp_path / "new")[0]
    shutil.copy(tmp_path / "old" / victim.name, victim)
    calls = []
    assert_frame_equal(_run(tmp_path / "new", calls), expected)
    assert len(calls) == 1


def test_a_folder_in_use_is_refused(tmp_path):
    plan = mc.make_plan(scenarios.cluster_trial, **{k: v for k, v in RUN.items() if k != "progress"},
                        grid=None, model=None, coefs=None, fast=None)
    with cp.Checkpoint(tmp_path / "c", plan):
        with pytest.raises(ValueError, match=r"is in use by process \d+ on .*lock\.json"):
            _run(tmp_path / "c")
    assert_frame_equal(_run(tmp_path / "c"), mc.run(scenarios.cluster_trial, **RUN))  # released


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, expected):
    dead = subprocess.run([str(PYTHON), "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "c"
    folder.mkdir()
    import socket

    lock = {"pid": int(dead.stdout), "host": socket.gethostname(), "fingerprint": "x"}
    (folder / LOCK_NAME).write_text(json.dumps(lock))
    assert_frame_equal(_run(folder), expected)
    lock["host"] = "elsewhere.invalid"  # a process on another host cannot be checked: refused
    (folder / LOCK_NAME).write_text(json.dumps(lock))
    with pytest.raises(ValueError, match="in use by process .* on elsewhere.invalid"):
        _run(folder)


def test_concurrent_writers_one_wins(tmp_path):
    """Two runs with different seeds started together on one folder: exactly one runs, the
    other gets one line and exit 2; the folder then holds only the winner's replications."""
    folder, outs = tmp_path / "c", [tmp_path / "seed1.csv", tmp_path / "seed2.csv"]
    args = ["montecarlo", "cluster_trial", "--reps", "600", "--set", "n_clusters=6", "--set", "cluster_size=4",
            "--analyses", "ols,lmm_t", "--checkpoint", str(folder)]
    procs = [start_cli([*args, "--seed", str(s), "--out", str(out)], tmp_path) for s, out in zip((1, 2), outs)]
    results = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], results
    loser = codes.index(2)
    line = assert_one_line_error(results[loser][1])
    assert "checkpoint:" in line and ("in use by process" in line or "different run" in line)
    assert not outs[loser].exists()
    winner = 1 - loser
    assert json.loads((folder / "manifest.json").read_text())["seed"] == winner + 1
    resumed = mc.run(scenarios.cluster_trial, params=SMALL, reps=600, seed=winner + 1, analyses="ols,lmm_t",
                     checkpoint=folder, progress=False, on_chunk=lambda d, t: pytest.fail("recomputed"))
    assert_frame_equal(resumed, mc.run(scenarios.cluster_trial, params=SMALL, reps=600, seed=winner + 1,
                                       analyses="ols,lmm_t", progress=False))


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["serial", "processes"])
def test_ctrl_c_says_what_is_saved(tmp_path, workers):
    folder = tmp_path / "c"
    proc = start_cli(["montecarlo", "cluster_trial", "--reps", "1000000", "--seed", "1", "--set", "n_clusters=6",
                      "--set", "cluster_size=4", "--analyses", "ols", "--checkpoint", str(folder),
                      "--out", str(tmp_path / "r.csv"), *workers], tmp_path)
    try:
        for _ in range(1200):  # up to 10 minutes on a loaded machine
            if folder.is_dir() and _chunk_files(folder):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        kill_cli(proc)
    assert proc.returncode == 130
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    line = err.rstrip("\n")
    prefix, _, rest = line.partition("; ")
    saved = int(rest.split()[0])
    assert prefix == "lmmsim: interrupted" and rest == f"{saved} of 1000000 replications saved in {folder}"
    # every chunk counted is on disk (one written as the signal came may not be counted yet)
    assert saved > 0 and saved // mc.FAST_CHUNK in (len(_chunk_files(folder)), len(_chunk_files(folder)) - 1)
    assert not (tmp_path / "r.csv").exists() and not (folder / LOCK_NAME).exists()


def test_interrupt_without_checkpoint():
    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="^no checkpoint$"):
        mc.run(scenarios.cluster_trial, **RUN, on_chunk=stop)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_lock_file_is_created_exclusively(tmp_path):
    from lmmsim.montecarlo.lock import FolderLock

    first = FolderLock(tmp_path, "a")
    with pytest.raises(ValueError, match=f"in use by process {__import__('os').getpid()}"):
        FolderLock(tmp_path, "b")
    first.release()
    FolderLock(tmp_path, "b").release()
    assert list(tmp_path.iterdir()) == []


def test_lock_without_hard_links_is_still_exclusive(tmp_path, monkeypatch):
    """On a file system that refuses hard links the lock falls back to an exclusive create."""
    from lmmsim.montecarlo.lock import FolderLock

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    first = FolderLock(tmp_path, "a")
    with pytest.raises(ValueError, match="in use by process"):
        FolderLock(tmp_path, "b")
    first.release()
    FolderLock(tmp_path, "b").release()
    assert list(tmp_path.iterdir()) == []
