"""The PostgreSQL store: every store role on one database that several receivers and bridges share
(psycopg 3: the ``postgres`` extra); its connections, schema checks and group commits.

Writes are grouped as in the SQLite store: an event loop commits each group of concurrent callbacks
in one transaction (:meth:`PostgresStore.commit_group`), threads hand their writes to one writer
thread that does the same (:meth:`PostgresStore.apply`); a caller is released only after COMMIT
returned (``synchronous_commit`` as the server has it: keep it on for durable acknowledgements).
What a group writes is in :mod:`.postgres_writes`; the schema and its versions in
:mod:`.postgres_schema`.

The connection URL's password is never shown: not in a repr, a log record nor an error message.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from uws_adapter.errors import InputError, StoreError, install_hint
from uws_adapter.store.core import CommitHealth, Job, SqlCore, another_programs, newer_schema, next_group
from uws_adapter.store.interfaces import Outcome, Write
from uws_adapter.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION, UPGRADE_LOCK, VERSION_TABLE
from uws_adapter.store.postgres_writes import commit_writes, is_database_failure
from uws_adapter.store.sql import (
    POSTGRES,
    Sql,
    is_postgres_url,  # one rule for what names a PostgreSQL store
)
from uws_adapter.waits import check_seconds

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresStore", "check_url", "is_postgres_url", "read_schema_version", "redact_url"]

T = TypeVar("T")


def check_url(url: str) -> Dict[str, Any]:
    """``url``'s parts, or :class:`InputError` saying what is wrong without a word of the driver's
    message, which quotes the offending part of the URL — often the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        return dict(conninfo_to_dict(url))
    except Exception:
        raise InputError(
            "database URL",
            "a postgresql:// URL that cannot be read (not shown: it may hold the password)",
            "write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE, with a '%' in the user or password "
            "written %25 (and '@' %40, ':' %3A, '/' %2F): a '%' must start a two-digit hex escape",
        ) from None


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
    check_url(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout))) as db:
            return _schema_version(db)
    except psycopg.Error as exc:
        raise unreachable(f"cannot read the schema of {redact_url(url)}", exc) from None


def _schema_version(db: psycopg.Connection[Any]) -> int:
    found = db.execute("SELECT to_regclass('uws_schema_version') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return 0
    row = db.execute("SELECT max(version) FROM uws_schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


#: The tables of the schema a store writes into (the first of the search path).
_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"


def _check_ours(db: psycopg.Connection[Any], display: str) -> None:
    """A database without a store schema is new (no table: fine) or another program's, into which
    ours must not be written (an ``events`` table of its own would be taken for ours)."""
    if _schema_version(db) == 0:
        tables = [str(row[0]) for row in db.execute(_TABLES).fetchall()]
        if tables:
            fix = "give the URL of a new database (or a search_path of a new schema) or of a uws-adapter store"
            raise another_programs(display, "PostgreSQL database", tables, fix)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(f"a postgresql:// store needs psycopg 3: {install_hint('postgres')}") from None
    return psycopg


class PostgresStore(SqlCore):
    """Every store role on a PostgreSQL database; ``batch=False`` commits each write alone (the
    baseline in benchmarks). ``upgrade=True`` brings the schema up to this release's first (what
    ``uws-adapter db upgrade`` does); otherwise a database on another schema is refused."""

    dialect = POSTGRES

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
        check_url(url)  # before anything quotes it
        self._url = url
        self.display = redact_url(url)
        # Both given to the server or the driver as whole milliseconds or seconds: NaN or infinity was a raw
        # ValueError or OverflowError at the first connection.
        self.lock_timeout = check_seconds("lock_timeout", lock_timeout, "10")
        self.connect_timeout = check_seconds("connect_timeout", connect_timeout, "10")
        self.clock = clock
        self.max_batch = max_batch if batch else 1
        self._local = threading.local()
        self._connections: List[Any] = []
        self._connections_lock = threading.Lock()
        self._jobs: queue.Queue[Optional[Job]] = queue.Queue()
        self._closed = False
        self._health = CommitHealth()
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
                # No JIT: the store's statements are short, and compiling the budget check's took
                # 1.7 s of its 2.2 s when stale statistics made the planner think it large.
                options=f"{given} -c lock_timeout={int(self.lock_timeout * 1000)} -c jit=off".strip(),
                application_name="uws-adapter",
            )  # fmt: skip
        except pg.Error as exc:
            raise unreachable(f"cannot connect to the store {self.display}", exc) from None
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

    # Schema --------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version the database holds (0: none yet)."""
        return self._run("read the schema version", _schema_version)

    def check_schema(self) -> None:
        version = self.schema_version()
        if version == 0:  # said before "run db upgrade", which would refuse it
            self._run("read the schema version", lambda db: _check_ours(db, self.display))
        if version > SCHEMA_VERSION:
            raise newer_schema(self.display, version, SCHEMA_VERSION)
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
                _check_ours(db, self.display)
                db.execute(VERSION_TABLE)
                version = _schema_version(db)
                if version > SCHEMA_VERSION:
                    raise newer_schema(self.display, version, SCHEMA_VERSION)
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
        job = Job(write)
        self._jobs.put(job)
        return job.wait(timeout, _first_line)

    def _write_loop(self) -> None:
        while True:
            jobs = next_group(self._jobs, self.max_batch)
            if jobs is None:
                return
            for job, outcome in zip(jobs, self._commit_or_fail([job.work for job in jobs])):
                job.finish(outcome.result, outcome.error)

    def commit_group(self, writes: Sequence[Write]) -> List[Outcome]:
        """Store ``writes`` in one transaction in the calling thread (on a connection of its own),
        committed before this returns; one outcome per write."""
        if self._closed:
            raise StoreError("the store is closed")
        return self._commit_or_fail(writes)

    def _commit_or_fail(self, writes: Sequence[Write]) -> List[Outcome]:
        try:
            outcomes = self._run("store a group of writes", lambda db: commit_writes(db, writes, self.clock))
            self._health.record(True, self.clock())
            return outcomes
        except Exception as exc:  # nothing of the group is committed: every write failed
            self._health.record(False, self.clock())
            error = exc if isinstance(exc, StoreError) else StoreError(f"could not store: {_first_line(exc)}")
            return [Outcome(error=error) for _ in writes]

    def ready(self) -> bool:
        """Whether a callback can be committed now: no commit failed in the last few seconds
        (:data:`~uws_adapter.store.core.READY_MEMORY`), and a probe write goes through — a row
        inserted and rolled back, which no other session's row lock can hold up (the probe once
        updated the shared schema row, and waited on whoever held it) and a read-only server
        refuses — bounded by ``lock_timeout`` (2 s at most). A connection the server dropped is
        opened again once, as the next callback's commit would. False rather than an error."""
        if self._closed or self._health.failing(self.clock()):
            return False
        psycopg = _psycopg()
        wait = int(min(self.lock_timeout, 2.0) * 1000)
        for _ in range(2):
            try:
                connection = self._connection()
            except StoreError:  # the server cannot be reached
                return False
            try:
                with connection.transaction(force_rollback=True):
                    connection.execute(f"SET LOCAL statement_timeout = {wait}")
                    connection.execute("INSERT INTO uws_schema_version (version) VALUES (0)")
                return True
            except psycopg.Error:
                dropped = connection.broken or connection.closed
                self._drop(connection)
                if not dropped:
                    return False
        return False

    # What the SQL core needs ---------------------------------------------------------------------

    def _read(self, what: str, work: Callable[[Sql], T]) -> T:
        return self._run(what, lambda db: work(Sql(db, POSTGRES)))

    def _snapshot(self, what: str, work: Callable[[Sql], T]) -> T:
        def read(db: psycopg.Connection[Any]) -> T:
            with db.transaction():
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return work(Sql(db, POSTGRES))

        return self._run(what, read)

    def _transact(self, what: str, work: Callable[[Sql], T], *, durable: bool = True) -> T:
        def write(db: psycopg.Connection[Any]) -> T:
            with db.transaction():
                if not durable:  # committed, not waited for on the WAL flush (see SqlCore._transact)
                    db.execute("SET LOCAL synchronous_commit TO off")
                return work(Sql(db, POSTGRES))

        return self._run(what, write)


#: What to check when a connection fails, by the words of libpq's message (all of them must be in
#: it; English, the driver's language unless the client sets another): the first that matches.
_CONNECT_FIXES = (
    (
        ("password authentication failed",),
        "check the user and password in the database URL (--db), or PGPASSWORD / ~/.pgpass",
    ),
    (("no password supplied",), "give the password in the database URL (--db), or PGPASSWORD / ~/.pgpass"),
    (("role ", "does not exist"), "check the user name in the database URL (--db)"),
    (("database ", "does not exist"), "check the database name in the URL (--db), or create the database"),
    (("no pg_hba.conf entry",), "the server refuses this user from this host: allow it in the server's pg_hba.conf"),
    (("could not translate host name",), "check the host name in the database URL (--db)"),
    (("connection refused",), "check the host and port in the database URL (--db), and that the server runs there"),
    (
        ("timeout expired",),
        "check the host and port in the database URL (--db), and that no firewall drops the connection",
    ),
)


def unreachable(prefix: str, exc: BaseException) -> StoreError:
    """The one way a connection the server refused (or never answered) is reported: ``prefix``
    (which names the store without its password), the driver's first line, and what to check."""
    text = str(exc).lower()
    fix = next(
        (fix for words, fix in _CONNECT_FIXES if all(word in text for word in words)),
        "check the database URL (--db) and that the server accepts connections from this host",
    )
    return StoreError(f"{prefix}: {_first_line(exc)}; {fix}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
