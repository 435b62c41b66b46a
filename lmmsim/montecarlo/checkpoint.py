"""Checkpoints: a folder with the plan's manifest and one file per finished chunk.

A run claims the folder (:class:`~lmmsim.montecarlo.lock.FolderLock`), so a second run
on it at the same time is refused. The manifest records the plan and the lmmsim code
that computed it; a later run reuses the folder only with an equal manifest. Every chunk
file starts with a line that says what it holds — the run's fingerprint (a hash of the
manifest), the cell and replications, the number of rows, the lmmsim code and a hash of
the rows — and is used only if all of it checks out: a chunk cut short, damaged, from
another run or from other code is computed again (and its file replaced). Files are
written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from importlib import metadata
from pathlib import Path

import pandas as pd

from lmmsim.io import csv_text, write_files
from lmmsim.montecarlo.execute import normalise
from lmmsim.montecarlo.lock import FolderLock
from lmmsim.montecarlo.plan import Chunk, Plan
from lmmsim.schema import FLOATS, RESULT_DTYPES

_HEADER = "# lmmsim chunk "


@functools.cache
def code_version() -> str:
    """The lmmsim release and a hash of its source files: results computed by other code
    are not reused."""
    try:
        release = metadata.version("lmmsim")
    except metadata.PackageNotFoundError:
        release = "unknown"
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent  # the lmmsim package
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{release}+{digest.hexdigest()[:12]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Checkpoint:
    """A checkpoint folder for one plan, claimed until :meth:`close`.

    Parameters
    ----------
    folder : path
        Created if its parent exists.
    plan : Plan
        Its manifest is written on first use and must match on later ones.

    Raises
    ------
    ValueError
        If the parent folder does not exist, another run is using the folder, or the
        folder holds another plan's results or results of other lmmsim code.
    """

    def __init__(self, folder, plan: Plan) -> None:
        folder = Path(folder)
        if not folder.parent.is_dir():
            raise ValueError(f"checkpoint: folder {str(folder.parent)!r} does not exist")
        folder.mkdir(exist_ok=True)
        manifest = {**plan.manifest(), "lmmsim": code_version()}
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        self.folder, self.fingerprint = folder, _digest(text)[:16]
        self.lock = FolderLock(folder, self.fingerprint)
        try:
            self._check_manifest(folder / "manifest.json", text)
        except BaseException:
            self.lock.release()
            raise

    def _check_manifest(self, path: Path, text: str) -> None:
        if not path.exists():
            write_files({path: text})
            return
        old = path.read_text(encoding="utf-8")
        if old == text:
            return
        try:
            recorded = json.loads(old)
        except ValueError:
            recorded = {}
        recorded = recorded if isinstance(recorded, dict) else {}
        mine = json.loads(text)
        if {**recorded, "lmmsim": None} == {**mine, "lmmsim": None}:
            raise ValueError(
                f"checkpoint: {str(self.folder)!r} holds results of lmmsim {recorded.get('lmmsim', '(not recorded)')}, "
                f"this is lmmsim {mine['lmmsim']}; use a new folder"
            )
        raise ValueError(
            f"checkpoint: {str(self.folder)!r} holds the results of a different run (its manifest.json differs); "
            "use a new folder"
        )

    def close(self) -> None:
        """Release the folder."""
        self.lock.release()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _identity(self, chunk: Chunk) -> dict:
        return {"run": self.fingerprint, "cell": chunk.cell, "start": chunk.start, "stop": chunk.stop,
                "lmmsim": code_version()}

    def finished(self, chunks: list[Chunk]) -> dict[tuple[int, int], pd.DataFrame]:
        """The rows of the chunks already in the folder whose files check out, by (cell, start)."""
        done = {}
        for chunk in chunks:
            frame = read_chunk(self.folder / chunk.filename, self._identity(chunk))
            if frame is not None:
                done[(chunk.cell, chunk.start)] = frame
        return done

    def save(self, chunk: Chunk, frame: pd.DataFrame) -> None:
        """Write one finished chunk, with its identity."""
        body = csv_text(frame)
        header = {**self._identity(chunk), "rows": len(frame), "sha256": _digest(body)}
        write_files({self.folder / chunk.filename: _HEADER + json.dumps(header, sort_keys=True) + "\n" + body})


def read_chunk(path: Path, identity: dict) -> pd.DataFrame | None:
    """A chunk's rows as written, or ``None`` if the file is missing, damaged, cut short or
    not the chunk ``identity`` describes."""
    try:
        first, body = path.read_text(encoding="utf-8").split("\n", 1)
        header = json.loads(first.removeprefix(_HEADER)) if first.startswith(_HEADER) else None
    except (OSError, ValueError):  # missing, not UTF-8, no header line, header not JSON
        return None
    if (not isinstance(header, dict) or any(header.get(k) != v for k, v in identity.items())
            or header.get("sha256") != _digest(body)):
        return None
    # pandas 3 parses floats exactly by default; older pandas needs asking
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    frame = pd.read_csv(io.StringIO(body), dtype=RESULT_DTYPES, keep_default_na=False,
                        na_values={c: [""] for c in FLOATS}, **exact)
    return normalise(frame) if len(frame) == header.get("rows") else None
