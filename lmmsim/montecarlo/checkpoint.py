"""Checkpoints: a folder with the plan's manifest and one CSV file per finished chunk.

Files are written atomically; a rerun with the same plan (equal manifest) reuses the
finished chunks, and reading a chunk back gives exactly the rows that were written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lmmsim.io import csv_text, write_files
from lmmsim.montecarlo.execute import normalise
from lmmsim.montecarlo.plan import Chunk, Plan
from lmmsim.schema import FLOATS, RESULT_DTYPES


class Checkpoint:
    """A checkpoint folder for one plan.

    Parameters
    ----------
    folder : path
        Created if its parent exists.
    plan : Plan
        Its manifest is written on first use and must match on later ones.

    Raises
    ------
    ValueError
        If the parent folder does not exist or the folder holds another plan's results.
    """

    def __init__(self, folder, plan: Plan) -> None:
        folder = Path(folder)
        if not folder.parent.is_dir():
            raise ValueError(f"checkpoint: folder {str(folder.parent)!r} does not exist")
        folder.mkdir(exist_ok=True)
        manifest = folder / "manifest.json"
        text = json.dumps(plan.manifest(), indent=2, sort_keys=True, default=str) + "\n"
        if manifest.exists():
            if manifest.read_text(encoding="utf-8") != text:
                raise ValueError(
                    f"checkpoint: {str(folder)!r} holds the results of a different run (its manifest.json differs); "
                    "use a new folder"
                )
        else:
            write_files({manifest: text})
        self.folder = folder

    def finished(self, chunks: list[Chunk]) -> dict[tuple[int, int], pd.DataFrame]:
        """The rows of the chunks already in the folder, by (cell, start)."""
        return {(c.cell, c.start): read_chunk(self.folder / c.filename) for c in chunks
                if (self.folder / c.filename).exists()}

    def save(self, chunk: Chunk, frame: pd.DataFrame) -> None:
        """Write one finished chunk."""
        write_files({self.folder / chunk.filename: csv_text(frame)})


def read_chunk(path: Path) -> pd.DataFrame:
    """A chunk's rows as written."""
    # pandas 3 parses floats exactly by default; older pandas needs asking
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    frame = pd.read_csv(path, dtype=RESULT_DTYPES, keep_default_na=False, na_values={c: [""] for c in FLOATS}, **exact)
    return normalise(frame)
