"""An exclusive claim on a folder: a lock file, created atomically, that names its owner.

Two runs writing one checkpoint folder at once could mix their chunks, so a run claims
the folder first: it creates ``lock.json`` with ``O_CREAT | O_EXCL`` (which exactly one
process wins, also on NFS v3+) holding its process id, host name and the run's
fingerprint, and removes it when done. A lock left by a process that died on this host
is taken over; one from a live process, or from another host (whose processes cannot be
checked from here), is refused with a message saying whose it is.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

LOCK_NAME = "lock.json"
_TAKEOVER = "lock.json.takeover"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read(path: Path) -> dict | None:
    """The owner recorded in a lock file (``None`` if unreadable, e.g. still being written)."""
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


def _create(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text``, unless it exists (atomic): the text is written to a
    file of this process's own, then hard-linked to ``path``, so another process never reads
    the lock empty or half written."""
    own = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    own.write_text(text, encoding="utf-8")
    try:
        os.link(own, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: still exclusive, briefly empty
        return _create_exclusive(path, text)
    finally:
        own.unlink()
    return True


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` and write ``text`` into it, unless it exists (a reader may see it empty)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


class FolderLock:
    """Hold ``folder/lock.json`` until :meth:`release`.

    Parameters
    ----------
    folder : Path
        An existing folder.
    fingerprint : str
        What the owner is doing there (recorded for people reading the lock).

    Raises
    ------
    ValueError
        If another live process holds the folder (or a lock cannot be judged stale).
    """

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "fingerprint": fingerprint}) + "\n"
        for _ in range(3):  # a stale lock is removed, then the claim retried
            if _create(self.path, self.text):
                return
            holder = _read(self.path)
            if not self._take_over(holder):
                break
        raise ValueError(self._refusal(holder))

    def _take_over(self, holder: dict | None) -> bool:
        """Remove a lock whose owner died on this host; only one process may do so at a time
        (the takeover file), and only if the lock still names that dead owner."""
        if holder is None or holder.get("host") != socket.gethostname() or _alive(holder["pid"]):
            return False
        takeover = self.path.with_name(_TAKEOVER)
        if not _create(takeover, self.text):
            return False
        try:
            if _read(self.path) == holder:
                self.path.unlink()
        finally:
            takeover.unlink()
        return True

    def _refusal(self, holder: dict | None) -> str:
        who = ("an unknown process" if holder is None
               else f"process {holder['pid']} on {holder.get('host', '?')}")
        return (f"checkpoint: {str(self.path.parent)!r} is in use by {who} (its lock file {str(self.path)!r}); "
                "wait for that run to end, use another folder, or remove the lock file if no run uses it")

    def release(self) -> None:
        """Remove the lock file, if it is still this one."""
        try:
            if self.path.read_text(encoding="utf-8") == self.text:
                self.path.unlink()
        except FileNotFoundError:
            pass
