"""The SQLite store, implementing every role of :mod:`uws_adapter.store.interfaces`: callbacks
(one event per service, RequestId, device and action, every delivery attempt kept), dead letters,
the handler queue, the requests the clients sent, and the bridge's sessions.

WAL mode with full synchronous commits. Writes go through one writer thread that commits queued
jobs in groups (or, for a caller with a committer thread of its own such as the ASGI receiver,
through :meth:`Store.commit_group` on that thread's connection): each job runs in its own savepoint,
and every caller is released only after the COMMIT of its group returned, so nothing is
acknowledged before it is durable while one fsync serves many concurrent callbacks. What a job
writes is in :mod:`uws_adapter.store.sqlite_writes`. Waits for the write lock are bounded
(``lock_timeout``). The schema carries its version (``PRAGMA user_version``): older databases are
upgraded in place when opened, newer ones refused.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

try:
    import fcntl
except ImportError:  # Windows: one process per store there
    fcntl = None  # type: ignore[assignment]

from uws_adapter.errors import StoreError, UwsAdapterError
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import Device, identity
from uws_adapter.store.dead_letters import DeadLetterReads, Execute
from uws_adapter.store.interfaces import EventPages, Outcome, RequestStatus, StoredEvent, Write
from uws_adapter.store.sqlite_sessions import SqliteSessions
from uws_adapter.store.sqlite_writes import callback_work, handler_gave_up_work, work_for
from uws_adapter.store.tracking_rows import recent_line_actions, request_status

__all__ = ["RequestStatus", "Store", "StoreError", "StoredEvent", "Work"]

T = TypeVar("T")
#: A unit of store work: runs inside the writer's transaction, returns its result.
Work = Callable[[sqlite3.Connection], Any]

#: The schema this release writes (``PRAGMA user_version``). 0 is 0.1.0's, which had no version.
SCHEMA_VERSION = 5
#: How to go from version N-1 to N, applied in order in one transaction when a store is opened.
_MIGRATIONS: Dict[int, str] = {
    1: "CREATE INDEX IF NOT EXISTS handler_queue_by_due ON handler_queue (next_at);",
    # The bridge's legacy sessions (token hashes only) and login lockout (dropped in 5).
    2: """
        CREATE TABLE IF NOT EXISTS bridge_sessions (token_sha256 TEXT PRIMARY KEY, last_used REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS bridge_login_failures (
            username TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_at REAL
        );
    """,
    # The budget guard: requests sent over the budget on purpose, and the lookups it makes (the
    # requests naming an identity; the callbacks of the last 24 hours).
    3: """
        ALTER TABLE requests ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX IF NOT EXISTS request_identifiers_by_identifier ON request_identifiers (identifier);
        CREATE INDEX IF NOT EXISTS events_by_received ON events (received_at);
    """,
    # Handler runs are claimed (leased) before they run, so that two processes sharing the file
    # never run the same one at once.
    4: "ALTER TABLE handler_queue ADD COLUMN claimed_until REAL;",
    # Dead letters: each one's size as the cap counts it, and the running total of those sizes
    # (see store/dead_letters.py; the sizes of older letters are reckoned here once). Failed
    # legacy LogIns are throttled in memory now: their table goes.
    5: """
        ALTER TABLE dead_letters ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
        UPDATE dead_letters SET size = length(body) + length(CAST(coalesce(content_type, '') || reason AS BLOB)) + 64;
        CREATE TABLE IF NOT EXISTS dead_letter_totals (
            id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL, rotated INTEGER NOT NULL, max_bytes INTEGER
        );
        INSERT OR IGNORE INTO dead_letter_totals SELECT 0, coalesce(sum(size), 0), 0, NULL FROM dead_letters;
        DROP TABLE IF EXISTS bridge_login_failures;
    """,
}
#: How long a provisioning action counts against a line's daily budget.
DAY = 24 * 60 * 60
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    request_id TEXT NOT NULL,
    device TEXT NOT NULL,
    action TEXT NOT NULL,
    status TEXT,
    succeeded INTEGER NOT NULL,
    fault_code TEXT,
    callback TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    differs INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    UNIQUE (service, request_id, device, action)
);
CREATE INDEX IF NOT EXISTS events_by_request ON events (request_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events (id),
    callback_count INTEGER,
    content_hash TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    content_type TEXT,
    reason TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    api TEXT NOT NULL,
    sent_at REAL NOT NULL,
    devices TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_identifiers (
    request_id TEXT NOT NULL,
    identifier TEXT NOT NULL,
    device INTEGER NOT NULL,
    PRIMARY KEY (request_id, identifier)
);
CREATE TABLE IF NOT EXISTS handler_queue (
    event_id INTEGER NOT NULL,
    handler TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    PRIMARY KEY (event_id, handler)
);
"""


@dataclass
class _Job:
    work: Callable[[sqlite3.Connection], Any]
    durable: bool = True
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Optional[BaseException] = None


class _FileLock:
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
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(f"another writer held the store's write lock for over {self.timeout} s") from None
                # A commit holds the lock for about one fsync: short pauses, growing while it lasts.
                time.sleep(pause)
                pause = min(pause * 2, 0.005)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Store(SqliteSessions, DeadLetterReads, EventPages):
    """A SQLite file; ``batch=False`` commits each write alone (the baseline in benchmarks)."""

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
        if synchronous.upper() not in ("FULL", "EXTRA", "NORMAL"):
            raise UwsAdapterError(f"synchronous={synchronous!r}: use FULL, EXTRA or NORMAL")
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        #: Wall-clock time for what is stored and for handler back-off (injected by tests).
        self.clock = clock
        self.synchronous = synchronous.upper()
        self.max_batch = max_batch if batch else 1
        self._jobs: queue.Queue[Optional[_Job]] = queue.Queue()
        self._local = threading.local()
        self._closed = False
        self._commit_lock = threading.Lock()
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot open the store {self.path}: the folder {self.path.parent} does not exist")
        lock_path = Path(f"{self.path}.writelock")
        lock_existed = lock_path.exists()
        self._file_lock = _FileLock(lock_path, lock_timeout)
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
        """Create the schema, or bring a database of an earlier release up to this one's in place;
        refuse one written by a newer release, whose meaning this one cannot know."""
        try:
            setup = self._connect()  # reads the file: a file that is not a database fails here
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None
        try:
            with self._file_lock:
                version = int(setup.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has store schema {version}, written by a newer uws-adapter; this release "
                        f"reads schema {SCHEMA_VERSION} at most: upgrade uws-adapter, or use another database"
                    )
                if version == SCHEMA_VERSION:
                    return
                setup.execute("BEGIN IMMEDIATE")
                setup.execute("CREATE TABLE IF NOT EXISTS _probe (x)")  # fails early on a read-only file
                setup.execute("DROP TABLE _probe")
                for statement in _SCHEMA.split(";"):  # executescript would commit on its own
                    if statement.strip():
                        setup.execute(statement)
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step].split(";"):
                        if statement.strip():
                            setup.execute(statement)
                setup.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                setup.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None
        finally:
            setup.close()

    @staticmethod
    def schema_version(path: Union[str, Path]) -> int:
        """The schema version of the database at ``path`` (0 for one written by 0.1.0)."""
        connection = sqlite3.connect(str(path))
        try:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=self.lock_timeout
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            self._writer.join(timeout=10)
            self._file_lock.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Writing -------------------------------------------------------------------------------------

    def write(self, work: Callable[[sqlite3.Connection], T], *, timeout: float = 30.0, durable: bool = True) -> T:
        """Run ``work`` in the writer's transaction; return once it is committed durably.

        ``durable=False``: committed (atomic, seen by every process, kept when a process dies) but
        not fsynced on its own: a power loss or an OS crash may undo it until the next durable
        commit or checkpoint fsyncs the write-ahead log (SQLite WAL with ``synchronous=NORMAL``).
        For what need not survive a power loss at the price of an fsync (about a millisecond, and
        several on a busy disk): the bridge's sessions, the request log."""
        if self._closed:
            raise StoreError("the store is closed")
        job = _Job(work, durable)
        if not durable:  # no fsync to share with a group: committed here, without two thread switches
            self._commit_here([job])
        else:
            self._jobs.put(job)
            if not job.done.wait(timeout):
                raise StoreError(f"no commit within {timeout} s")
        if job.error is not None:
            raise StoreError(f"could not store: {job.error}") from job.error
        result: T = job.result
        return result

    def _write_loop(self) -> None:
        connection = self._connect()
        while True:
            first = self._jobs.get()
            if first is None:
                connection.close()
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)
                    break
                jobs.append(more)
            self._commit(connection, jobs)

    def apply(self, write: Write, *, timeout: float = 30.0) -> Any:
        """Store ``write`` through the writer thread's group commit; return its result once it is
        committed durably, or raise :class:`StoreError`."""
        return self.write(work_for(write, self.clock), timeout=timeout)

    def commit_group(self, writes: Sequence[Write]) -> List[Outcome]:
        """Store ``writes`` in one transaction in the calling thread (on a connection of its own),
        each in its own savepoint, committed durably: for a caller with its own committer thread,
        which must not hand every group to the writer thread."""
        jobs = [_Job(work_for(write, self.clock)) for write in writes]
        self._commit_here(jobs)
        return [Outcome(job.result, job.error) for job in jobs]

    def _commit_here(self, jobs: List[_Job]) -> None:
        """Commit ``jobs`` in the calling thread, on its own connection."""
        connection: Optional[sqlite3.Connection] = getattr(self._local, "writer", None)
        if connection is None:
            if self._closed:
                raise StoreError("the store is closed")
            connection = self._connect()
            self._local.writer = connection
        self._commit(connection, jobs)
        failed = next((job.error for job in jobs if isinstance(job.error, sqlite3.OperationalError)), None)
        if failed is not None:  # the connection may be unusable now: the next group opens another
            connection.close()
            self._local.writer = None

    def _commit(self, connection: sqlite3.Connection, jobs: List[_Job]) -> None:
        # Writers in this process take turns on a lock, and writers in other processes (gunicorn
        # or uvicorn workers) on a file lock: both wake at once when it is free, where SQLite's own
        # busy handler would sleep in steps of up to 100 ms.
        if not self._commit_lock.acquire(timeout=self.lock_timeout):
            error = StoreError(f"no turn to commit within {self.lock_timeout} s")
            for job in jobs:
                job.error = error
                job.done.set()
            return
        try:
            with self._file_lock:
                self._commit_locked(connection, jobs)
        except StoreError as exc:  # the file lock was not had in time: nothing was written
            for job in jobs:
                job.error = exc
                job.done.set()
        finally:
            self._commit_lock.release()

    def _commit_locked(self, connection: sqlite3.Connection, jobs: List[_Job]) -> None:
        relaxed = self.synchronous != "NORMAL" and not any(job.durable for job in jobs)
        try:
            if relaxed:  # a group of non-durable writes only: committed without an fsync
                connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("BEGIN IMMEDIATE")
            for job in jobs:
                connection.execute("SAVEPOINT job")
                try:
                    job.result = job.work(connection)
                    connection.execute("RELEASE job")
                except Exception as exc:  # one bad job must not undo the others
                    connection.execute("ROLLBACK TO job")
                    connection.execute("RELEASE job")
                    job.error = exc
            connection.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nothing of this group is durable
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for job in jobs:
                job.error = job.error or exc
        finally:
            if relaxed:
                connection.execute(f"PRAGMA synchronous={self.synchronous}")
        for job in jobs:
            job.done.set()

    def add_callback(self, callback: CallbackRequest, handlers: Sequence[str] = ()) -> Tuple[int, bool]:
        """Store a callback durably; returns (event id, whether it is a new event). A re-send adds
        an attempt, and flags the event when its content differs from the first delivery."""
        return self.write(callback_work(callback, handlers, clock=self.clock))

    def record_request(
        self, request_id: str, action: str, devices: Sequence[Device], *, api: str = "soap", forced: bool = False
    ) -> None:
        """Remember a sent request so that the tracker knows which devices to expect (and the
        budget guard what each line was sent); ``forced``: sent over the budget on purpose.

        Committed without an fsync of its own (``durable=False``): a process that dies keeps it;
        a power loss may lose it until the next durable commit (the request's callbacks, which
        the budget guard counts as well), for a millisecond or more off every request sent."""
        names = [str(d) for d in devices]

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO requests (request_id, action, api, sent_at, devices, forced)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (request_id, action, api, self.clock(), json.dumps(names), int(forced)),
            )
            db.executemany(
                "INSERT OR IGNORE INTO request_identifiers (request_id, identifier, device) VALUES (?, ?, ?)",
                [
                    (request_id, identity(i.kind, i.identifier), position)
                    for position, device in enumerate(devices)
                    for i in device.identifiers
                ],
            )

        self.write(work, durable=False)

    def _dead_letter_write(self, work: Callable[[Execute], T]) -> T:
        return self.write(lambda db: work(db.execute))

    # Reading -------------------------------------------------------------------------------------

    def _dead_letter_rows(self, sql: str, args: Sequence[Any]) -> List[Any]:
        return self._reader().execute(sql, args).fetchall()

    def _reader(self) -> sqlite3.Connection:
        connection: Optional[sqlite3.Connection] = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def events(self, *, request_id: Optional[str] = None, after_id: int = 0, limit: int = 1000) -> List[StoredEvent]:
        """Events in arrival order, after ``after_id`` (poll with the last id you saw)."""
        where, args = "e.id > ?", [after_id]
        if request_id is not None:
            where += " AND e.request_id = ?"
            args.append(request_id)  # type: ignore[arg-type]
        rows = (
            self._reader()
            .execute(
                "SELECT e.id, e.callback, (SELECT count(*) FROM attempts a WHERE a.event_id = e.id),"
                f" e.differs, e.received_at FROM events e WHERE {where} ORDER BY e.id LIMIT ?",
                (*args, limit),
            )
            .fetchall()
        )
        return [StoredEvent(r[0], CallbackRequest.from_dict(json.loads(r[1])), r[2], bool(r[3]), r[4]) for r in rows]

    def due_handlers(self, limit: int = 500) -> List[Tuple[int, str, int]]:
        """(event id, handler name, attempts so far) of handler runs that are due (a look only)."""
        now = self.clock()
        rows = self._reader().execute(
            "SELECT event_id, handler, attempts FROM handler_queue WHERE next_at <= ?"
            " AND coalesce(claimed_until, 0) <= ? ORDER BY event_id LIMIT ?",
            (now, now, limit),
        )
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    def claim_handlers(
        self, limit: int = 50, *, lease: float = 300.0, names: Optional[Sequence[str]] = None
    ) -> List[Tuple[int, str, int]]:
        """Claim due runs for ``lease`` seconds, in the writer's transaction: processes sharing the
        file take turns on its write lock, so no two claim the same run."""
        now = self.clock()
        only = "" if names is None else f" AND handler IN ({', '.join('?' for _ in names)})"

        def work(db: sqlite3.Connection) -> List[Tuple[int, str, int]]:
            rows = db.execute(
                "SELECT event_id, handler, attempts FROM handler_queue WHERE next_at <= ?"
                f" AND coalesce(claimed_until, 0) <= ?{only} ORDER BY event_id LIMIT ?",
                (now, now, *(names or ()), limit),
            ).fetchall()
            db.executemany(
                "UPDATE handler_queue SET claimed_until = ? WHERE event_id = ? AND handler = ?",
                [(now + lease, r[0], r[1]) for r in rows],
            )
            return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

        if names is not None and not names:
            return []
        return self.write(work)

    def release_handlers(self, runs: Sequence[Tuple[int, str]]) -> None:
        if runs:
            self.write(
                lambda db: db.executemany(
                    "UPDATE handler_queue SET claimed_until = NULL WHERE event_id = ? AND handler = ?", list(runs)
                )
            )

    def handler_done(self, event_id: int, handler: str) -> None:
        self.write(
            lambda db: db.execute("DELETE FROM handler_queue WHERE event_id = ? AND handler = ?", (event_id, handler))
        )

    def handler_failed(self, event_id: int, handler: str, error: str, delay: float) -> None:
        self.write(
            lambda db: db.execute(
                "UPDATE handler_queue SET attempts = attempts + 1, next_at = ?, claimed_until = NULL, last_error = ?"
                " WHERE event_id = ? AND handler = ?",
                (self.clock() + delay, error[:500], event_id, handler),
            )
        )

    def handler_gave_up(self, event_id: int, handler: str, reason: str) -> None:
        """Take a handler run off the queue for good, kept among the dead letters with ``reason``."""
        self.write(handler_gave_up_work(event_id, handler, reason, self.clock()))

    def recent_actions(self, identities: Sequence[str], since: float) -> Dict[str, List[Tuple[str, float]]]:
        """Per identity, the ``(request id, when)`` of its line's provisioning actions after
        ``since``: device-list requests from the log, succeeded callbacks of every other request
        (see :meth:`uws_adapter.store.interfaces.RequestLog.recent_actions`)."""
        wanted = set(identities)
        if not wanted:
            return {}
        db = self._reader()

        def linked(names: List[str]) -> Iterator[Sequence[Any]]:
            for chunk in _chunks(names):
                yield from db.execute(
                    "SELECT a.identifier, b.identifier FROM request_identifiers a JOIN request_identifiers b"
                    " ON b.request_id = a.request_id AND b.device = a.device AND b.identifier != a.identifier"
                    f" WHERE a.identifier IN ({','.join('?' * len(chunk))})",
                    chunk,
                )

        def requests(names: List[str]) -> Iterator[Sequence[Any]]:
            for chunk in _chunks(names):
                yield from db.execute(
                    "SELECT i.identifier, r.request_id, r.sent_at FROM request_identifiers i"
                    " JOIN requests r ON r.request_id = i.request_id"
                    f" WHERE i.identifier IN ({','.join('?' * len(chunk))}) AND r.sent_at > ?",
                    (*chunk, since),
                )

        # Every source in one snapshot, so that a request recorded in between is not half seen.
        db.execute("BEGIN")
        try:
            return recent_line_actions(
                wanted,
                linked,
                requests,
                # A query's lines are known only from its callbacks; so are those of requests sent
                # by other tools. Callbacks of device-list requests in this log are counted above.
                db.execute(
                    "SELECT e.request_id, e.device, e.received_at FROM events e WHERE e.received_at > ?"
                    " AND e.succeeded = 1 AND e.service != 'NiddService' AND e.action != ''"
                    " AND NOT EXISTS (SELECT 1 FROM request_identifiers i WHERE i.request_id = e.request_id)",
                    (since,),
                ).fetchall(),
            )
        finally:
            db.execute("COMMIT")

    def handler_backlog(self) -> Dict[str, Tuple[int, Optional[float]]]:
        """Per handler name: runs queued, and when the oldest of their events was received."""
        rows = self._reader().execute(
            "SELECT q.handler, count(*), min(e.received_at) FROM handler_queue q"
            " LEFT JOIN events e ON e.id = q.event_id GROUP BY q.handler"
        )
        return {str(r[0]): (int(r[1]), float(r[2]) if r[2] is not None else None) for r in rows}

    def ready(self) -> bool:
        """Whether the store answers and takes a write: a write transaction that is rolled back.
        It takes its turn on the write locks as a commit does, so a probe never makes a commit
        wait in SQLite's busy handler."""
        if self._closed:
            return False
        wait = min(self.lock_timeout, 2.0)
        if not self._commit_lock.acquire(timeout=wait):
            return False
        try:
            with self._file_lock:
                probe = sqlite3.connect(str(self.path), isolation_level=None, timeout=wait)
                try:
                    probe.execute("BEGIN IMMEDIATE")  # the write lock: refused on a read-only file or folder
                    probe.execute("CREATE TABLE _ready_probe (x)")
                    probe.execute("ROLLBACK")
                finally:
                    probe.close()
            return True
        except (sqlite3.Error, StoreError):
            return False
        finally:
            self._commit_lock.release()

    def counts(self) -> Dict[str, int]:
        db = self._reader()
        return {
            table: int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("events", "attempts", "dead_letters", "requests", "handler_queue")
        }

    def status(self, request_id: str) -> RequestStatus:
        """Per device of a request: succeeded, failed (fault code) or still pending."""
        db = self._reader()
        sent = db.execute(
            "SELECT action, devices, sent_at FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        identifiers = db.execute(
            "SELECT identifier, device FROM request_identifiers WHERE request_id = ?", (request_id,)
        ).fetchall()
        events = db.execute(
            "SELECT device, succeeded, fault_code, action, received_at FROM events"
            " WHERE request_id = ? AND service != 'NiddService'",
            (request_id,),
        ).fetchall()
        return request_status(request_id, sent, identifiers, events)


def _chunks(names: List[str], size: int = 500) -> Iterator[List[str]]:
    """``names`` in pieces that SQLite's bound-parameter limit takes."""
    for start in range(0, len(names), size):
        yield names[start : start + size]
