"""Write files atomically: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

import pandas as pd


def csv_text(data: pd.DataFrame) -> str:
    """The CSV text of ``data``: no index, ``\\n`` line endings, floats at full precision."""
    return data.to_csv(index=False, lineterminator="\n")


def write_files(contents: Mapping[str | os.PathLike, str]) -> None:
    """Write several text files, all or none.

    Each file is first written in full to a temporary file beside it; only when every
    one has been written are they moved into place (``os.replace`` is atomic). A path
    that is a symbolic link is followed: its target is replaced and the link stays. A new
    file gets the permissions the umask allows (as ``open`` would give it); a replaced
    file keeps its permissions.

    Raises
    ------
    ValueError
        If a file's folder does not exist, a path is a folder or anything other than a
        regular file (a device, a FIFO, a socket), or a file cannot be written (no file
        is changed then).
    """
    targets = {path: _target(path) for path in contents}
    staged: list[tuple[str, Path, str | os.PathLike]] = []
    try:
        for path, text in contents.items():
            staged.append((_write_temporary(targets[path], text), targets[path], path))
        for k, (tmp, target, path) in enumerate(staged):
            os.replace(tmp, target)
            staged[k] = ("", target, path)
    except BaseException as err:
        for tmp, _, _ in staged:
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        if isinstance(err, OSError):
            raise ValueError(f"{path}: cannot write: {err.strerror or err}") from None
        raise


def _target(path: str | os.PathLike) -> Path:
    """The regular file that writing ``path`` replaces (symbolic links followed), checked."""
    target = Path(os.path.realpath(path))
    folder = target.parent
    if not folder.is_dir():
        shown = Path(path).parent if target == Path(path).absolute() else folder
        raise ValueError(f"{path}: folder {str(shown)!r} does not exist")
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as err:
        raise ValueError(f"{path}: cannot write: {err.strerror or err}") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path}: is a folder, expected a file name")
    if not stat.S_ISREG(mode):
        # Replacing a device or FIFO by a regular file would destroy it (as root, /dev/null).
        raise ValueError(f"{path}: is not a regular file (a device, FIFO or socket), expected a file name")
    return target


def _write_temporary(target: Path, text: str) -> str:
    """Write ``text`` to a new hidden file beside ``target``; return its path.

    The file is created with mode 0o666 so that the umask applies as for any new file
    (``tempfile.mkstemp`` would give 0o600); a file being replaced lends its own mode.
    """
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            with contextlib.suppress(FileNotFoundError):
                os.chmod(handle.fileno(), stat.S_IMODE(target.stat().st_mode))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return str(tmp)
