"""The PostgreSQL store: every store role on one database that several receivers and bridges share.

    store = PostgresStore("postgresql://uws@db.example/uws")     # psycopg 3: pip install 'uws-adapter[postgres]'

Writes are grouped as in the SQLite store: an event loop commits each group of concurrent callbacks
in one transaction (:meth:`PostgresStore.commit_group`), threads hand their writes to one writer
thread that does the same (:meth:`PostgresStore.apply`); a caller is released only after COMMIT
returned (``synchronous_commit`` as the server has it: keep it on for durable acknowledgements).
What a group writes is in :mod:`.postgres_writes`; the schema and its versions in
:mod:`.postgres_schema`.

The handler and relay queue is shared by every instance: :meth:`claim_handlers` takes due runs with
``FOR UPDATE SKIP LOCKED`` and leases them (``claimed_until``), so that two instances never run the
same one at once, and a run whose claimer died is taken again once its lease is out.

The connection URL's password is never shown: not in a repr, a log record nor an error message.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from uws_adapter.errors import StoreError
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import Device, identity
from uws_adapter.store.dead_letters import DeadLetterReads, Execute
from uws_adapter.store.interfaces import CallbackWrite, EventPages, Outcome, RequestStatus, StoredEvent, Write
from uws_adapter.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION, UPGRADE_LOCK, VERSION_TABLE
from uws_adapter.store.postgres_writes import commit_writes, is_database_failure, keep_dead_letter
from uws_adapter.store.tracking_rows import recent_line_actions, request_status

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresStore", "is_postgres_url", "read_schema_version", "redact_url"]

T = TypeVar("T")
_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(text: str) -> bool:
    return text.strip().lower().startswith(_SCHEMES)


def redact_url(url: str) -> str:
    """``url`` without its password (and without any other parameter but host, port, database and
    user), fit for a log record or an error message."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:  # not even parseable: show nothing of it
        return "postgresql://(unparseable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host') or ''}{port}/{parts.get('dbname') or ''}"


def read_schema_version(url: str, *, connect_timeout: float = 10.0) -> int:
    """The schema version of the database at ``url`` (0: none), without refusing any."""
    psycopg = _psycopg()
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout))) as db:
            return _schema_version(db)
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the schema of {redact_url(url)}: {_first_line(exc)}") from None


def _schema_version(db: psycopg.Connection[Any]) -> int:
    found = db.execute("SELECT to_regclass('uws_schema_version') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return 0
    row = db.execute("SELECT max(version) FROM uws_schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("a postgresql:// store needs psycopg 3: pip install 'uws-adapter[postgres]'") from None
    return psycopg


class _Job:
    def __init__(self, write: Write) -> None:
        self.write = write
        self.done = threading.Event()
        self.outcome = Outcome()


class PostgresStore(DeadLetterReads, EventPages):
    """Every store role on a PostgreSQL database; ``batch=False`` commits each write alone (the
    baseline in benchmarks). ``upgrade=True`` brings the schema up to this release's first (what
    ``uws-adapter db upgrade`` does); otherwise a database on another schema is refused."""

    def __init__(
        self,
        url: str,
        *,
        batch: bool = True,
        max_batch: int = 512,
        lock_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        upgrade: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _psycopg()
        self._url = url
        self.display = redact_url(url)
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.max_batch = max_batch if batch else 1
        self._local = threading.local()
        self._connections: List[Any] = []
        self._connections_lock = threading.Lock()
        self._jobs: queue.Queue[Optional[_Job]] = queue.Queue()
        self._closed = False
        #: (schema before, after) of the upgrade run on opening (``upgrade=True``).
        self.last_upgrade = (SCHEMA_VERSION, SCHEMA_VERSION)
        try:
            if upgrade:
                self.last_upgrade = self.upgrade()
            self.check_schema()
        except BaseException:
            self._close_connections()
            raise
        self._writer = threading.Thread(target=self._write_loop, daemon=True, name="uws-store-writer")
        self._writer.start()

    def __repr__(self) -> str:
        return f"PostgresStore({self.display!r})"

    # Connections ---------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        pg = _psycopg()
        from psycopg.conninfo import conninfo_to_dict

        try:
            given = str(conninfo_to_dict(self._url).get("options") or "")
            connection = pg.connect(
                self._url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)),
                # A write waiting on another instance's lock fails in time (a 503 and a re-send),
                # never hangs; the server's own settings decide durability (synchronous_commit).
                # The URL's own options (a search_path, say) are kept.
                options=f"{given} -c lock_timeout={int(self.lock_timeout * 1000)}".strip(),
                application_name="uws-adapter",
            )  # fmt: skip
        except pg.Error as exc:
            raise StoreError(f"cannot connect to the store {self.display}: {_first_line(exc)}") from None
        with self._connections_lock:
            self._connections.append(connection)
        opened: psycopg.Connection[Any] = connection
        return opened

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError("the store is closed")
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self._connect()
            self._local.connection = connection
        chosen: psycopg.Connection[Any] = connection
        return chosen

    def _drop(self, connection: Any) -> None:
        """Forget a connection that failed: the next use of this thread opens another."""
        with contextlib.suppress(Exception):  # already broken; nothing to release
            connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._connections_lock:
            if connection in self._connections:
                self._connections.remove(connection)

    def _run(self, what: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` on this thread's connection; a database error becomes a StoreError."""
        psycopg = _psycopg()
        connection = self._connection()
        try:
            return work(connection)
        except psycopg.Error as exc:
            if is_database_failure(exc):
                self._drop(connection)
            raise StoreError(f"could not {what} in {self.display}: {_first_line(exc)}") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join(timeout=10)
        self._close_connections()

    def _close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(Exception):  # closing what may be broken already
                connection.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Schema --------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version the database holds (0: none yet)."""

        return self._run("read the schema version", _schema_version)

    def check_schema(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.display} has store schema {version}, written by a newer uws-adapter; this release "
                f"reads schema {SCHEMA_VERSION} at most: upgrade uws-adapter, or use another database"
            )
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"{self.display} has store schema {version} and this release needs {SCHEMA_VERSION}: "
                "run `uws-adapter db upgrade --db URL` with this database's URL first"
            )

    def upgrade(self) -> Tuple[int, int]:
        """Apply the migrations this database lacks, in one transaction; returns (from, to)."""

        def migrate(db: psycopg.Connection[Any]) -> Tuple[int, int]:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (UPGRADE_LOCK,))  # one upgrader at a time
                db.execute(VERSION_TABLE)
                row = db.execute("SELECT max(version) FROM uws_schema_version").fetchone()
                version = int(row[0]) if row and row[0] is not None else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.display} has store schema {version}, newer than this release's "
                        f"{SCHEMA_VERSION}: upgrade uws-adapter instead"
                    )
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step].split(";"):
                        if statement.strip():
                            db.execute(statement)
                if version < SCHEMA_VERSION:
                    db.execute("DELETE FROM uws_schema_version")
                    db.execute("INSERT INTO uws_schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
                return version, SCHEMA_VERSION

        return self._run("upgrade the schema", migrate)

    # Writing -------------------------------------------------------------------------------------

    def apply(self, write: Write, *, timeout: float = 30.0) -> Any:
        """Store ``write`` through the writer thread's group commit; return its result once it is
        committed, or raise :class:`StoreError`."""
        if self._closed:
            raise StoreError("the store is closed")
        job = _Job(write)
        self._jobs.put(job)
        if not job.done.wait(timeout):
            raise StoreError(f"no commit within {timeout} s")
        if job.outcome.error is not None:
            raise StoreError(f"could not store: {_first_line(job.outcome.error)}") from None
        return job.outcome.result

    def add_callback(self, callback: CallbackRequest, handlers: Sequence[str] = ()) -> Tuple[int, bool]:
        """Store a callback; (event id, whether it is a new event)."""
        result: Tuple[int, bool] = self.apply(CallbackWrite(callback, tuple(handlers)))
        return result

    def _write_loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
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
            for job, outcome in zip(jobs, self._commit_or_fail([job.write for job in jobs])):
                job.outcome = outcome
                job.done.set()

    def commit_group(self, writes: Sequence[Write]) -> List[Outcome]:
        """Store ``writes`` in one transaction in the calling thread (on a connection of its own),
        committed before this returns; one outcome per write."""
        if self._closed:
            raise StoreError("the store is closed")
        return self._commit_or_fail(writes)

    def _commit_or_fail(self, writes: Sequence[Write]) -> List[Outcome]:
        try:
            return self._run("store a group of writes", lambda db: commit_writes(db, writes, self.clock))
        except Exception as exc:  # nothing of the group is committed: every write failed
            error = exc if isinstance(exc, StoreError) else StoreError(f"could not store: {_first_line(exc)}")
            return [Outcome(error=error) for _ in writes]

    def record_request(
        self, request_id: str, action: str, devices: Sequence[Device], *, api: str = "soap", forced: bool = False
    ) -> None:
        """Remember a sent request so that the tracker knows which devices to expect (and the
        budget guard what each line was sent); ``forced``: sent over the budget on purpose."""
        names = json.dumps([str(d) for d in devices])
        identifiers = [
            (request_id, identity(i.kind, i.identifier), position)
            for position, device in enumerate(devices)
            for i in device.identifiers
        ]

        def work(db: psycopg.Connection[Any]) -> None:
            with db.transaction(), db.cursor() as cursor:
                # As on SQLite: committed, not waited for on the WAL flush (a server crash may lose
                # the last ones; the request's callbacks count for the budget as well).
                cursor.execute("SET LOCAL synchronous_commit TO off")
                cursor.execute(
                    "INSERT INTO requests (request_id, action, api, sent_at, devices, forced)"
                    " VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (request_id) DO UPDATE SET action = EXCLUDED.action, api = EXCLUDED.api,"
                    " sent_at = EXCLUDED.sent_at, devices = EXCLUDED.devices, forced = EXCLUDED.forced",
                    (request_id, action, api, self.clock(), names, forced),
                )
                cursor.executemany(
                    "INSERT INTO request_identifiers (request_id, identifier, device) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    identifiers,
                )

        self._run("record the request", work)

    def recent_actions(self, identities: Sequence[str], since: float) -> Dict[str, List[Tuple[str, float]]]:
        """Per identity, the ``(request id, when)`` of its line's provisioning actions after
        ``since``, across every instance sharing the log (see
        :meth:`uws_adapter.store.interfaces.RequestLog.recent_actions`)."""
        wanted = set(identities)
        if not wanted:
            return {}

        def read(db: psycopg.Connection[Any]) -> Dict[str, List[Tuple[str, float]]]:
            # One snapshot for every query: a request recorded in between is not half seen.
            db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return recent_line_actions(
                    wanted,
                    lambda names: db.execute(
                        "SELECT a.identifier, b.identifier FROM request_identifiers a JOIN request_identifiers b"
                        " ON b.request_id = a.request_id AND b.device = a.device AND b.identifier <> a.identifier"
                        " WHERE a.identifier = ANY(%s)",
                        (names,),
                    ).fetchall(),
                    lambda names: db.execute(
                        "SELECT i.identifier, r.request_id, r.sent_at FROM request_identifiers i"
                        " JOIN requests r ON r.request_id = i.request_id"
                        " WHERE i.identifier = ANY(%s) AND r.sent_at > %s",
                        (names, since),
                    ).fetchall(),
                    # A query's lines are known only from its callbacks; so are those of requests
                    # sent by other tools. Callbacks of device-list requests are counted above.
                    db.execute(
                        "SELECT e.request_id, e.device, e.received_at FROM events e WHERE e.received_at > %s"
                        " AND e.succeeded AND e.service <> 'NiddService' AND e.action <> ''"
                        " AND NOT EXISTS (SELECT 1 FROM request_identifiers i WHERE i.request_id = e.request_id)",
                        (since,),
                    ).fetchall(),
                )
            finally:
                db.execute("COMMIT")

        return self._run("count recent actions", read)

    def ready(self) -> bool:
        """Whether the database answers and takes a write now: a row lock taken and rolled back,
        bounded by ``lock_timeout`` (2 s at most); False rather than an error."""
        if self._closed:
            return False
        wait = int(min(self.lock_timeout, 2.0) * 1000)

        def probe(db: psycopg.Connection[Any]) -> bool:
            with db.transaction(force_rollback=True):
                db.execute(f"SET LOCAL statement_timeout = {wait}")
                db.execute("UPDATE uws_schema_version SET version = version")  # refused read-only
            return True

        try:
            return self._run("probe the store", probe)
        except StoreError:
            return False

    def handler_backlog(self) -> Dict[str, Tuple[int, Optional[float]]]:
        """Per handler name: runs queued, and when the oldest of their events was received."""
        rows = self._run(
            "read the handler backlog",
            lambda db: db.execute(
                "SELECT q.handler, count(*), min(e.received_at) FROM handler_queue q"
                " LEFT JOIN events e ON e.id = q.event_id GROUP BY q.handler"
            ).fetchall(),
        )
        return {str(r[0]): (int(r[1]), float(r[2]) if r[2] is not None else None) for r in rows}

    # The handler and relay queue -------------------------------------------------------------------

    def due_handlers(self, limit: int = 500) -> List[Tuple[int, str, int]]:
        now = self.clock()
        rows = self._run(
            "read the handler queue",
            lambda db: db.execute(
                "SELECT event_id, handler, attempts FROM handler_queue WHERE next_at <= %s"
                " AND (claimed_until IS NULL OR claimed_until <= %s) ORDER BY event_id LIMIT %s",
                (now, now, limit),
            ).fetchall(),
        )
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    def claim_handlers(
        self, limit: int = 50, *, lease: float = 300.0, names: Optional[Sequence[str]] = None
    ) -> List[Tuple[int, str, int]]:
        """Claim due runs for ``lease`` seconds; SKIP LOCKED lets instances claim side by side
        without waiting on each other's rows or taking the same one."""
        now = self.clock()
        only = "" if names is None else " AND handler = ANY(%(names)s)"
        query = (
            "UPDATE handler_queue q SET claimed_until = %(until)s FROM ("
            " SELECT event_id, handler FROM handler_queue"
            " WHERE next_at <= %(now)s AND (claimed_until IS NULL OR claimed_until <= %(now)s)" + only +
            " ORDER BY next_at, event_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due"
            " WHERE q.event_id = due.event_id AND q.handler = due.handler"
            " RETURNING q.event_id, q.handler, q.attempts"
        )  # fmt: skip
        args = {"until": now + lease, "now": now, "limit": limit, "names": list(names or ())}
        rows = self._run("claim handler runs", lambda db: db.execute(query, args).fetchall())
        return sorted((int(r[0]), str(r[1]), int(r[2])) for r in rows)

    def release_handlers(self, runs: Sequence[Tuple[int, str]]) -> None:
        if runs:
            self._run(
                "give back handler runs",
                lambda db: db.cursor().executemany(
                    "UPDATE handler_queue SET claimed_until = NULL WHERE event_id = %s AND handler = %s", list(runs)
                ),
            )

    def handler_done(self, event_id: int, handler: str) -> None:
        self._run(
            "record a handler run",
            lambda db: db.execute(
                "DELETE FROM handler_queue WHERE event_id = %s AND handler = %s", (event_id, handler)
            ),
        )

    def handler_failed(self, event_id: int, handler: str, error: str, delay: float) -> None:
        self._run(
            "record a failed handler run",
            lambda db: db.execute(
                "UPDATE handler_queue SET attempts = attempts + 1, next_at = %s, claimed_until = NULL,"
                " last_error = %s WHERE event_id = %s AND handler = %s",
                (self.clock() + delay, _text(error)[:500], event_id, handler),
            ),
        )

    def handler_gave_up(self, event_id: int, handler: str, reason: str) -> None:
        """Take a handler run off the queue for good, kept among the dead letters with ``reason``."""
        now = self.clock()

        def work(db: psycopg.Connection[Any]) -> None:
            with db.transaction(), db.cursor() as cursor:
                row = cursor.execute("SELECT callback FROM events WHERE id = %s", (event_id,)).fetchone()
                cursor.execute("DELETE FROM handler_queue WHERE event_id = %s AND handler = %s", (event_id, handler))
                why = _text(f"handler {handler!r} gave up on event {event_id}: {reason}")[:500]
                keep_dead_letter(cursor, (row[0] if row else "").encode("utf-8"), "application/json", why, now)

        self._run("record a handler that gave up", work)

    # Reading -------------------------------------------------------------------------------------

    def events(self, *, request_id: Optional[str] = None, after_id: int = 0, limit: int = 1000) -> List[StoredEvent]:
        """Events in arrival order, after ``after_id`` (poll with the last id you saw)."""
        where, args = "e.id > %s", [after_id]
        if request_id is not None:
            where += " AND e.request_id = %s"
            args.append(request_id)  # type: ignore[arg-type]
        query = (
            "SELECT e.id, e.callback, (SELECT count(*) FROM attempts a WHERE a.event_id = e.id),"
            f" e.differs, e.received_at FROM events e WHERE {where} ORDER BY e.id LIMIT %s"
        )
        rows = self._run("read events", lambda db: db.execute(query, (*args, limit)).fetchall())
        return [StoredEvent(r[0], CallbackRequest.from_dict(json.loads(r[1])), r[2], bool(r[3]), r[4]) for r in rows]

    def counts(self) -> Dict[str, int]:
        def count(db: psycopg.Connection[Any]) -> Dict[str, int]:
            tables = ("events", "attempts", "dead_letters", "requests", "handler_queue")
            return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # type: ignore[index]

        return self._run("count rows", count)

    def status(self, request_id: str) -> RequestStatus:
        """Per device of a request: succeeded, failed (fault code) or still pending."""

        def read(db: psycopg.Connection[Any]) -> RequestStatus:
            sent = db.execute(
                "SELECT action, devices, sent_at FROM requests WHERE request_id = %s", (request_id,)
            ).fetchone()
            identifiers = db.execute(
                "SELECT identifier, device FROM request_identifiers WHERE request_id = %s", (request_id,)
            ).fetchall()
            events = db.execute(
                "SELECT device, succeeded, fault_code, action, received_at FROM events"
                " WHERE request_id = %s AND service != 'NiddService'",
                (request_id,),
            ).fetchall()
            return request_status(request_id, sent, identifiers, events)

        return self._run("read the request's status", read)

    # Dead letters, for the operator (uws-adapter dead-letters) ---------------------------------------

    def _dead_letter_rows(self, sql: str, args: Sequence[Any]) -> List[Any]:
        return self._run("read the dead letters", lambda db: db.execute(sql.replace("?", "%s"), args).fetchall())

    def _dead_letter_write(self, work: Callable[[Execute], T]) -> T:
        def run(db: psycopg.Connection[Any]) -> T:
            with db.transaction(), db.cursor() as cursor:
                return work(lambda sql, args: cursor.execute(sql.replace("?", "%s"), args))

        return self._run("purge the dead letters", run)

    # The bridge's sessions --------------------------------------------------------------------------

    def open_session(self, token_sha256: str, now: float, forget_before: Optional[float]) -> None:
        def work(db: psycopg.Connection[Any]) -> None:
            with db.transaction():
                db.execute("SET LOCAL synchronous_commit TO off")  # as on SQLite: committed, not flushed
                if forget_before is not None:
                    db.execute("DELETE FROM bridge_sessions WHERE last_used < %s", (forget_before,))
                db.execute("INSERT INTO bridge_sessions (token_sha256, last_used) VALUES (%s, %s)", (token_sha256, now))

        self._run("record the session", work)

    def session_last_used(self, token_sha256: str) -> Optional[float]:
        def read(db: psycopg.Connection[Any]) -> Optional[float]:
            query = "SELECT last_used FROM bridge_sessions WHERE token_sha256 = %s"
            row = db.execute(query, (token_sha256,)).fetchone()
            return None if row is None else float(row[0])

        return self._run("read the session", read)

    def touch_session(self, token_sha256: str, now: float) -> None:
        def work(db: psycopg.Connection[Any]) -> None:
            with db.transaction():
                db.execute("SET LOCAL synchronous_commit TO off")
                db.execute(
                    "UPDATE bridge_sessions SET last_used = greatest(last_used, %s) WHERE token_sha256 = %s",
                    (now, token_sha256),
                )

        self._run("note the session's use", work)

    def close_session(self, token_sha256: str) -> None:
        self._run(
            "forget the session",
            lambda db: db.execute("DELETE FROM bridge_sessions WHERE token_sha256 = %s", (token_sha256,)),
        )


def _text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it (no NUL, no lone surrogate)."""
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
