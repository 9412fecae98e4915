"""One lock per study results folder, so that two runs never write the same files at once.

The lock is an exclusive ``fcntl.flock`` on the file ``<results>/.lock``, which records ``pid host time``
of its holder. A second run fails to take it and raises :class:`StudyLocked` naming the process that
holds it. The kernel releases the lock of a process that dies, so a lock file left behind by a dead
process (a stale pid) is simply taken over. Within one process the lock is re-entrant (``calibrate`` runs, then analyses, under one lock).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d, study_lock(d) as path:
...     path.name
'.lock'
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bayesinv.errors import BayesinvError

__all__ = ["study_lock", "StudyLocked", "LOCK_NAME", "lock_holder"]

LOCK_NAME = ".lock"
_HELD: dict[str, int] = {}


class StudyLocked(BayesinvError, RuntimeError):
    """Another live process holds the study folder's lock."""


def lock_holder(path: Path) -> tuple[int | None, str, str]:
    """``(pid, host, started)`` recorded in a lock file (pid None if unreadable)."""
    try:
        fields = Path(path).read_text().split(maxsplit=2)
    except OSError:
        return None, "", ""
    try:
        return int(fields[0]), fields[1] if len(fields) > 1 else "", fields[2].strip() if len(fields) > 2 else ""
    except (ValueError, IndexError):
        return None, "", ""


def _acquire(folder: Path) -> int:
    """Open ``<folder>/.lock`` and take an exclusive ``flock`` on it; returns the open descriptor."""
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid, host, started = lock_holder(path)
        raise StudyLocked(f"study folder {folder} is in use by process {pid if pid is not None else '?'} on "
                          f"{host or 'this host'} (since {started or '?'}; lock file {path}); wait for it to "
                          "finish or stop that process") from None
    except BaseException:
        os.close(fd)
        raise
    # the kernel drops the flock of a process that dies, so whatever pid is written here is stale: take over
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
    return fd


@contextmanager
def study_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<folder>/.lock`` for the duration of the block (re-entrant in one process)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(exc.errno, f"cannot write study results to {folder}: {exc.strerror}") from exc
    key = str(folder.resolve())
    path = folder / LOCK_NAME
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(folder)
    _HELD[key] = 1
    try:
        yield path
    finally:
        _HELD.pop(key, None)
        os.ftruncate(fd, 0)  # the file stays (unlinking would race with a waiting run); no holder recorded
        os.close(fd)
