"""Write files atomically: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd


def csv_text(data: pd.DataFrame) -> str:
    """The CSV text of ``data``: no index, ``\\n`` line endings, floats at full precision."""
    return data.to_csv(index=False, lineterminator="\n")


def write_files(contents: Mapping[str | os.PathLike, str]) -> None:
    """Write several text files, all or none.

    Each file is first written in full to a temporary file beside it; only when every
    one has been written are they moved into place (``os.replace`` is atomic).

    Raises
    ------
    ValueError
        If a file's folder does not exist, a path is a folder, or a file cannot be
        written (no file is changed then).
    """
    for path in contents:
        folder = Path(path).parent
        if not folder.is_dir():
            raise ValueError(f"{path}: folder {str(folder)!r} does not exist")
    staged: list[tuple[str, Path]] = []
    try:
        for path in contents:
            if Path(path).is_dir():
                raise ValueError(f"{path}: is a folder, expected a file name")
        for path, text in contents.items():
            path = Path(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        for k, (tmp, path) in enumerate(staged):
            os.replace(tmp, path)
            staged[k] = ("", path)
    except BaseException as err:
        for tmp, _ in staged:
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        if isinstance(err, OSError):
            raise ValueError(f"{path}: cannot write: {err.strerror or err}") from None
        raise
