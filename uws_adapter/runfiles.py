"""Folders a service makes for one run (the worker processes' settings file, their metrics files):
private to this user, removed when the run ends, and - since a killed process removes nothing -
the folders of runs whose process is gone removed when the next run starts.

Each folder is named ``<prefix><pid>-<random>`` in the temporary directory, so that a later run
can tell a live run's folder (its process exists) from a dead one's.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

__all__ = ["remove_stale", "run_folder"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(prefix: str, where: Optional[str] = None) -> List[Path]:
    """Remove this user's ``<prefix><pid>-*`` folders whose process is gone; returns them.
    Folders without a pid in their name (older releases) are removed too when older than a day."""
    folder = Path(where or tempfile.gettempdir())
    removed: List[Path] = []
    try:
        candidates = list(folder.glob(prefix + "*"))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for path in candidates:
        try:
            info = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or (uid is not None and info.st_uid != uid):
            continue
        pid_text = path.name[len(prefix) :].partition("-")[0]
        if pid_text.isascii() and pid_text.isdigit() and len(pid_text) <= 9:  # int() and kill() take it
            if _alive(int(pid_text)):
                continue
        elif time.time() - info.st_mtime < 86400:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def run_folder(prefix: str) -> Iterator[Path]:
    """A new folder (mode 0700) for this run, after removing the folders of dead runs; removed at
    the end of the ``with`` block, whatever ends it."""
    remove_stale(prefix)
    made = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)
