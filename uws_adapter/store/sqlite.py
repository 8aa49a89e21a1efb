"""The SQLite store: every role of :mod:`uws_adapter.store.interfaces` on one file; its
connections, locking and group commits.

WAL mode with full synchronous commits. Writes go through one writer thread that commits queued
jobs in groups (or, for a caller with a committer thread of its own such as the ASGI receiver,
through :meth:`Store.commit_group` on that thread's connection): each job runs in its own savepoint,
and every caller is released only after its group is durable, so nothing is acknowledged before it
is on disk while one fsync serves many concurrent callbacks. With ``synchronous="FULL"`` (the
default) the WAL is fsynced after the write locks are let go
(:class:`~uws_adapter.store.sqlite_files.WalSync` says why). Waits for the write lock are bounded
(``lock_timeout``). What a job writes is in :mod:`.sqlite_writes`; the schema, its version and its
migrations are in :mod:`.sqlite_schema`.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar, Union

from uws_adapter.errors import StoreError, UwsAdapterError
from uws_adapter.store.core import CommitHealth, Job, SqlCore, next_group, stored
from uws_adapter.store.interfaces import Outcome, RequestStatus, StoredEvent, Write
from uws_adapter.store.sql import SQLITE, Sql, other_url
from uws_adapter.store.sqlite_files import POSIX_LOCKS, FileLock, WalSync
from uws_adapter.store.sqlite_schema import cannot_open, check_ours, read_schema, upgrade
from uws_adapter.store.sqlite_writes import WriteWork, insert_attempts, work_for
from uws_adapter.waits import check_seconds

__all__ = ["RequestStatus", "Store", "StoreError", "StoredEvent"]

T = TypeVar("T")

#: The free space below which a store is not ready: room for a full group of callbacks' log frames.
READY_RESERVE = 1024 * 1024


class _GroupJob:
    """A write of a group committed by :meth:`Store.commit_group`: as a :class:`Job` without the
    event (the committing thread reads the outcome itself), one allocation less per callback."""

    __slots__ = ("error", "result", "work")
    durable = True

    def __init__(self, work: Any) -> None:
        self.work = work  # a WriteWork, or a function of a connection (an _InlineJob's)
        self.result: Any = None
        self.error: Optional[BaseException] = None


class _InlineJob(_GroupJob):
    """A non-durable write committed in its caller's thread (see :meth:`Store.write`), which reads
    the outcome itself: no event to wait on (creating one, setting it and waiting on it cost two
    bridge calls' writes 3-10 µs each)."""

    __slots__ = ()
    durable = False


class _Held:
    """A writer connection committing in its callers' threads, and the fsync of its commits (see
    :meth:`Store._connect_writer`); none until the first commit."""

    __slots__ = ("sync", "writer")

    def __init__(self) -> None:
        self.writer: Optional[sqlite3.Connection] = None
        self.sync: Optional[WalSync] = None

    def close(self) -> None:
        writer, sync, self.writer, self.sync = self.writer, self.sync, None, None
        if writer is not None:
            writer.close()
        if sync is not None:
            sync.close()


class Store(SqlCore):
    """A SQLite file; ``batch=False`` commits each write alone (the baseline in benchmarks)."""

    dialect = SQLITE

    def __init__(
        self,
        path: Union[str, Path],
        *,
        synchronous: str = "FULL",
        batch: bool = True,
        max_batch: int = 512,
        lock_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = other_url(path)
        if url is not None:  # not a file's path: refused whole, never shown (it may hold a password)
            raise StoreError(url)
        if synchronous.upper() not in ("FULL", "EXTRA", "NORMAL"):
            raise UwsAdapterError(f"synchronous={synchronous!r}: use FULL, EXTRA or NORMAL")
        self.path = Path(path)
        # Waited for by the writer and the commit lock: NaN, infinity or past a year ended the writer thread.
        self.lock_timeout = check_seconds("lock_timeout", lock_timeout, "10")
        #: Wall-clock time for what is stored and for handler back-off (injected by tests).
        self.clock = clock
        self.synchronous = synchronous.upper()
        self.max_batch = max_batch if batch else 1
        self._jobs: queue.Queue[Optional[Job]] = queue.Queue()
        self._local = threading.local()
        # The connection every thread's non-durable writes share (see write), and its turn.
        self._shared = _Held()
        self._shared_lock = threading.RLock()
        self._closed = False
        self._commit_lock = threading.Lock()
        self._health = CommitHealth()
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot open the store {self.path}: the folder {self.path.parent} does not exist")
        lock_path = Path(f"{self.path}.writelock")
        lock_existed = lock_path.exists()
        try:
            self._file_lock = FileLock(lock_path, lock_timeout)
        except OSError as error:  # another user's store, a read-only place: said, not an unexpected OSError
            raise StoreError(
                f"cannot open the store {self.path}: its lock file {lock_path} cannot be opened"
                f" ({error.strerror or type(error).__name__}); run as the user the store belongs to,"
                " or give a store in a place this user can write"
            ) from None
        try:
            self._migrate()
        except StoreError:
            self._file_lock.close()
            if not lock_existed:  # a store that could not be opened leaves nothing beside it
                lock_path.unlink(missing_ok=True)
            raise
        self._writer = threading.Thread(target=self._write_loop, daemon=True, name="uws-store-writer")
        self._writer.start()

    def _migrate(self) -> None:
        check_ours(self.path, self.lock_timeout)
        try:
            setup = self._connect()  # reads the file: a file that is not a database fails here
        except sqlite3.Error as exc:
            raise cannot_open(self.path, exc) from None
        try:
            with self._file_lock:
                upgrade(setup, self.path)
        except sqlite3.Error as exc:
            raise cannot_open(self.path, exc) from None
        finally:
            setup.close()

    @staticmethod
    def schema_version(path: Union[str, Path]) -> int:
        """The schema version of the database at ``path`` (0 for one written by 0.1.0); a file that
        is not a database is a :class:`StoreError`, as when a store is opened."""
        return read_schema(path)[0]

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=self.lock_timeout
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")
        connection.execute("PRAGMA foreign_keys=ON")
        # Temporary tables (the budget check's list of identities) in memory: in a file, filling
        # one with 20,000 rows took 100-700 ms on a loaded machine, 35 ms in memory.
        connection.execute("PRAGMA temp_store=MEMORY")
        return connection

    def _connect_writer(self) -> Tuple[sqlite3.Connection, Optional[WalSync]]:
        """A connection for group commits, and the fsync that makes its commits durable when
        that is ours to make (FULL, in WAL mode, where files can be opened beside SQLite's)."""
        connection = self._connect()
        if self.synchronous != "FULL" or not POSIX_LOCKS:
            return connection, None
        try:
            mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode != "wal":  # a file system without WAL support: SQLite's own FULL commits
                return connection, None
            connection.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            connection.close()
            raise
        return connection, WalSync(self.path)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            self._writer.join(timeout=10)
            with self._shared_lock:  # after the write in progress, if any
                self._shared.close()
            self._file_lock.close()

    # Writing -------------------------------------------------------------------------------------

    def write(self, work: Callable[[sqlite3.Connection], T], *, timeout: float = 30.0, durable: bool = True) -> T:
        """Run ``work`` in the writer's transaction; return once it is committed durably.
        ``durable=False`` (see :meth:`.sql.SqlAccess._transact`): committed in the calling thread (no
        fsync to share with a group, so no two thread switches) with ``synchronous=NORMAL``, on the
        one connection every thread's such writes share in turn."""
        if self._closed:
            raise StoreError("the store is closed")
        if durable:
            job = Job(work, durable)
            self._jobs.put(job)
            result: T = job.wait(timeout)
            return result
        # One connection for them all, each taking its turn (they take turns on the commit lock
        # anyway): a connection reads again every page it uses after another one's commit, and
        # a server's threads take calls in turn, so a connection per thread read the request
        # log's pages afresh on most calls (16 threads: 0.05-0.15 ms a bridge call).
        inline = _InlineJob(work)
        if not self._shared_lock.acquire(timeout=self.lock_timeout):
            raise self._no_turn()
        try:
            self._commit_here([inline], self._shared)
        finally:
            self._shared_lock.release()
        done: T = stored(inline.result, inline.error)
        return done

    def _write_loop(self) -> None:
        connection, sync = self._connect_writer()
        while True:
            jobs = next_group(self._jobs, self.max_batch)
            if jobs is None:
                connection.close()
                if sync is not None:
                    sync.close()
                return
            self._commit(connection, jobs, sync)
            for job in jobs:
                job.done.set()

    def apply(self, write: Write, *, timeout: float = 30.0) -> Any:
        """Store ``write`` through the writer thread's group commit; return its result once it is
        committed durably, or raise :class:`StoreError`."""
        return self.write(work_for(write, self.clock), timeout=timeout)

    def commit_group(self, writes: Sequence[Write]) -> List[Outcome]:
        """Store ``writes`` in one transaction in the calling thread (on a connection of its own),
        each in its own savepoint, committed durably: for a caller with its own committer thread,
        which must not hand every group to the writer thread."""
        # Plain jobs: this thread reads their outcomes itself, nobody waits on their events.
        jobs = [_GroupJob(work_for(write, self.clock)) for write in writes]
        held: Optional[_Held] = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = _Held()
        self._commit_here(jobs, held)
        return [Outcome(job.result, job.error) for job in jobs]

    def _no_turn(self) -> StoreError:
        return StoreError(f"no turn to commit within {self.lock_timeout} s")

    def _commit_here(self, jobs: Sequence[Union[Job, _GroupJob]], held: _Held) -> None:
        """Commit ``jobs`` in the calling thread, on the connection ``held`` keeps (this thread's,
        or the one non-durable writes share, used by one thread at a time)."""
        connection, sync = held.writer, held.sync
        if connection is None:
            if self._closed:
                raise StoreError("the store is closed")
            connection, sync = self._connect_writer()
            held.writer, held.sync = connection, sync
        self._commit(connection, jobs, sync)
        failed = next((job.error for job in jobs if isinstance(job.error, sqlite3.OperationalError)), None)
        if failed is not None:  # the connection may be unusable now: the next group opens another
            held.close()

    def _commit(
        self, connection: sqlite3.Connection, jobs: Sequence[Union[Job, _GroupJob]], sync: Optional[WalSync]
    ) -> None:
        """Run ``jobs`` in one transaction and make it durable; each job's result or error is
        set (the caller tells whoever waits)."""
        # Writers in this process take turns on a lock, and writers in other processes (gunicorn
        # or uvicorn workers) on a file lock: both wake at once when it is free, where SQLite's own
        # busy handler would sleep in steps of up to 100 ms.
        if not self._commit_lock.acquire(timeout=self.lock_timeout):
            error = self._no_turn()
            self._health.record(False, self.clock())
            for job in jobs:
                job.error = error
            return
        try:
            with self._file_lock:
                committed = self._commit_locked(connection, jobs, sync)
        except StoreError as exc:  # the file lock was not had in time: nothing was written
            self._health.record(False, self.clock())
            for job in jobs:
                job.error = exc
            return
        finally:
            self._commit_lock.release()
        if committed and sync is not None and any(job.durable for job in jobs):
            try:
                sync()
            except OSError as exc:  # committed, but not known to be on disk: answered as not stored
                sync.close()  # the next commit opens the WAL afresh (an fsync error is told once per handle)
                self._health.record(False, self.clock())
                error = StoreError(f"the commit could not be made durable (fsync of the WAL): {exc}")
                error.__cause__ = exc
                for job in jobs:
                    job.error = job.error or error

    def _commit_locked(
        self, connection: sqlite3.Connection, jobs: Sequence[Union[Job, _GroupJob]], sync: Optional[WalSync]
    ) -> bool:
        """Whether the transaction committed (some jobs in it may have failed alone)."""
        # A connection whose fsync is ours (sync) runs at NORMAL already; another one is let off
        # its fsync for a transaction of non-durable writes only.
        relaxed = sync is None and self.synchronous != "NORMAL" and not any(job.durable for job in jobs)
        try:
            if relaxed:  # non-durable writes only: committed without an fsync of their own
                connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("BEGIN IMMEDIATE")
            ran = True
            if len(jobs) == 1 and not isinstance(jobs[0].work, WriteWork):
                # Alone in its transaction (as every non-durable write, committed in its caller's
                # thread): no savepoint, the transaction is the job's own, rolled back if it fails.
                ran = _run_alone(connection, jobs[0])
            elif not all(isinstance(job.work, WriteWork) for job in jobs) or not _run_fast(connection, jobs):
                for job in jobs:
                    job.result, job.error = None, None
                    connection.execute("SAVEPOINT job")
                    try:
                        job.result = job.work(connection)
                        connection.execute("RELEASE job")
                    except Exception as exc:  # one bad job must not undo the others
                        connection.execute("ROLLBACK TO job")
                        connection.execute("RELEASE job")
                        job.error = exc
            if ran:
                connection.execute("COMMIT")
            committed = ran
        except Exception as exc:  # the commit itself failed: nothing of this group is durable
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for job in jobs:
                job.error = job.error or exc
            committed = False
        finally:
            if relaxed:
                connection.execute(f"PRAGMA synchronous={self.synchronous}")
        # A database failure (disk full, I/O, lock) in any job, or of the commit, is one the next
        # callback may meet too; a value refused in one job is not.
        self._health.record(not any(isinstance(job.error, sqlite3.OperationalError) for job in jobs), self.clock())
        return committed

    # What the SQL core needs ---------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        connection: Optional[sqlite3.Connection] = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _read(self, what: str, work: Callable[[Sql], T]) -> T:
        return work(Sql(self._reader(), SQLITE))

    def _glance(self, what: str, work: Callable[[Sql], T]) -> T:
        # On the connection the non-durable writes share when no write holds it: it made the last
        # commit, so its pages are current, where this thread's reader connection reads again every
        # page it uses after another connection's commit (the bridge's session read, between two
        # request-log writes on every call: 10-20 µs of its 20-25). Never waited for: a write
        # holding it, or a transaction open on it (this thread's own), sends the read to the reader.
        if self._shared_lock.acquire(blocking=False):
            try:
                shared = self._shared.writer
                if shared is not None and not shared.in_transaction:
                    return work(Sql(shared, SQLITE))
            finally:
                self._shared_lock.release()
        return self._read(what, work)

    def _snapshot(self, what: str, work: Callable[[Sql], T]) -> T:
        db = self._reader()
        db.execute("BEGIN")
        try:
            return work(Sql(db, SQLITE))
        finally:
            db.execute("COMMIT")

    def _transact(self, what: str, work: Callable[[Sql], T], *, durable: bool = True) -> T:
        return self.write(lambda connection: work(Sql(connection, SQLITE)), durable=durable)

    def ready(self) -> bool:
        """Whether a callback can be committed now: no commit failed in the last few seconds
        (:data:`~uws_adapter.store.core.READY_MEMORY`), the folder has room to grow the log
        (:data:`READY_RESERVE`), and a probe commits: it rewrites the schema version (one page), so
        it must reach the WAL and its fsync, as a callback's commit does (a transaction rolled back
        never writes, and answered ready on a full disk). It takes its turn on the write locks as
        a commit does, so that it never makes a commit wait in SQLite's busy handler."""
        if self._closed or self._health.failing(self.clock()):
            return False
        try:
            folder = os.statvfs(self.path.parent)
            if folder.f_bavail * folder.f_frsize < READY_RESERVE:
                return False
        except (AttributeError, OSError):  # no statvfs (Windows): the probe alone decides
            pass
        wait = min(self.lock_timeout, 2.0)
        if not self._commit_lock.acquire(timeout=wait):
            return False
        try:
            with self._file_lock:
                probe = sqlite3.connect(str(self.path), isolation_level=None, timeout=wait)
                try:
                    probe.execute(f"PRAGMA synchronous={self.synchronous}")
                    probe.execute("BEGIN IMMEDIATE")  # the write lock: refused on a read-only file or folder
                    version = int(probe.execute("PRAGMA user_version").fetchone()[0])
                    probe.execute(f"PRAGMA user_version = {version}")  # the same value, written again
                    probe.execute("COMMIT")
                finally:
                    probe.close()
            return True
        except (sqlite3.Error, StoreError):
            return False
        finally:
            self._commit_lock.release()


def _run_alone(connection: sqlite3.Connection, job: Union[Job, _GroupJob]) -> bool:
    """Run one job as the whole transaction: True when it ran (the transaction is to be
    committed); otherwise its error is set and the transaction rolled back (where a savepoint
    rolled back and an empty commit came to the same, in two statements more per transaction)."""
    job.result, job.error = None, None
    try:
        job.result = job.work(connection)
        return True
    except Exception as exc:
        job.error = exc
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        return False


def _run_fast(connection: sqlite3.Connection, jobs: Sequence[Union[Job, _GroupJob]]) -> bool:
    """Run a group of store writes without savepoints (see :class:`WriteWork`): True when every
    one of them ran; otherwise everything they wrote is rolled back and a new transaction begun,
    for the group to be run again one savepoint per write."""
    try:
        attempts: List[Any] = []
        for job in jobs:
            job.result = job.work.fast(connection, attempts)
        insert_attempts(connection, attempts)
        return True
    except Exception:  # which write, and whether the database itself failed, the careful run says
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.execute("BEGIN IMMEDIATE")
        return False
