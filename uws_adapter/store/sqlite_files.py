"""The files beside a SQLite store's own: the write lock that writers of every process take turns
on, and the fsync of a writer's write-ahead log, made after that lock is let go (see
:mod:`uws_adapter.store.sqlite`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Optional

try:
    import fcntl
except ImportError:  # Windows: one process per store there
    fcntl = None  # type: ignore[assignment]

from uws_adapter.errors import StoreError

__all__ = ["POSIX_LOCKS", "FileLock", "WalSync"]

#: Whether locks on files (and a WAL fsync of our own beside SQLite's) are had here.
POSIX_LOCKS = fcntl is not None


class FileLock:
    """An exclusive advisory lock on a file, across processes (a no-op where fcntl is missing).

    Waits at most ``timeout`` seconds: a writer that holds it longer (stuck, or a foreign process)
    must cost a group of callbacks a 503, never freeze the process that waits."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._fd: Optional[int] = None
        self.timeout = timeout
        if fcntl is not None:
            self._fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        if self._fd is None or fcntl is None:
            return
        deadline = time.monotonic() + self.timeout
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(f"another writer held the store's write lock for over {self.timeout} s") from None
                # A commit holds the lock for its statements only (its fsync comes after): short
                # pauses, growing a little, so that the lock is taken soon after it is let go.
                time.sleep(pause)
                pause = min(pause * 2, 0.001)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WalSync:
    """The fsync of a writer connection's commits, made after the write locks are let go.

    Why: under ``synchronous=FULL`` SQLite fsyncs the WAL inside COMMIT, while the write lock is
    held, so every other process's commit waits for this one's fsync, and the disk never has two
    groups in flight. A writer connection is run at ``synchronous=NORMAL`` instead (its COMMIT
    appends the group's frames to the WAL and returns) and this fsyncs the WAL before any caller of
    the group is answered: the acknowledgement waits for the disk exactly as under FULL, but the
    next process commits meanwhile (and one fsync may carry both groups). A crash before the fsync
    loses only what was never acknowledged; NORMAL keeps the database consistent in any case, and
    syncs the WAL before each checkpoint, so frames it moves into the database are durable too.

    The WAL is opened once per connection (it exists while any connection is open, and SQLite
    deletes it only when the last one closes, after checkpointing everything into the database);
    the folder is fsynced once as well, since the file may be new and its name must survive too.
    """

    def __init__(self, path: Path) -> None:
        self._wal = f"{path}-wal"
        self._folder = str(path.parent)
        self._fd: Optional[int] = None
        # The writer thread fsyncs while another thread may close the store: a descriptor closed
        # twice, or fsynced after its close, could be a number the process has since given to
        # another file or socket. One lock around the descriptor's whole life.
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._fd is None:
                fd = os.open(self._wal, os.O_RDONLY)
                try:
                    folder = os.open(self._folder, os.O_RDONLY)
                    try:
                        os.fsync(folder)
                    finally:
                        os.close(folder)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
