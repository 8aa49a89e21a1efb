"""The SQLite store's schema: its version (``PRAGMA user_version``), the tables of a new file, the
migrations from each earlier version, and the checks made before a file is opened as a store.

Older databases are upgraded in place when a store is opened (one transaction, under the store's
write lock); one written by a newer release is refused, and so is another program's database.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Dict, List, Tuple, Union

from uws_adapter.errors import StoreError
from uws_adapter.store import line_counts, names, unlisted
from uws_adapter.store.core import another_programs, newer_schema

__all__ = ["MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "cannot_open", "check_ours", "read_schema", "upgrade"]

#: The schema this release writes (``PRAGMA user_version``). 0 is 0.1.0's, which had no version.
SCHEMA_VERSION = 10
#: How to go from version N-1 to N, applied in order in one transaction when a store is opened.
MIGRATIONS: Dict[int, str] = {
    1: "CREATE INDEX IF NOT EXISTS handler_queue_by_due ON handler_queue (next_at);",
    # The bridge's legacy sessions (token hashes only) and login lockout, kept across restarts.
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
    # The budget check ties a line's identifiers together by (request, device position): without
    # an index on it each of its rows scanned the whole request (quadratic in a device list's
    # size). Both indexes cover what the check reads, so it never visits the table.
    5: """
        CREATE INDEX IF NOT EXISTS request_identifiers_by_device
            ON request_identifiers (request_id, device, identifier);
        DROP INDEX IF EXISTS request_identifiers_by_identifier;
        CREATE INDEX IF NOT EXISTS request_identifiers_lines ON request_identifiers (identifier, request_id, device);
    """,
    # Dead letters: each one's size as the cap counts it, and the running total of those sizes
    # (see store/dead_letters.py; the sizes of older letters are reckoned here once). Failed
    # legacy LogIns are throttled in memory now: their table goes.
    6: """
        ALTER TABLE dead_letters ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
        UPDATE dead_letters SET size = length(body) + length(CAST(coalesce(content_type, '') || reason AS BLOB)) + 64;
        CREATE TABLE IF NOT EXISTS dead_letter_totals (
            id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL, rotated INTEGER NOT NULL, max_bytes INTEGER
        );
        INSERT OR IGNORE INTO dead_letter_totals SELECT 0, coalesce(sum(size), 0), 0, NULL FROM dead_letters;
        DROP TABLE IF EXISTS bridge_login_failures;
    """,
    # The budget check's summary: per identity, how it was named and its requests per day, kept
    # with every request recorded or forgotten (see store/line_counts.py), built here from the log.
    7: line_counts.MIGRATION_SQLITE,
    # The budget's callbacks of requests the log lists no devices for, found without visiting the
    # others (see store/unlisted.py); the events stored so far are marked here.
    8: unlisted.MIGRATION_SQLITE,
    # A confirmed reservation's rows keep its key; the carrier's RequestId is written beside it
    # (see store/names.py).
    9: names.MIGRATION_SQLITE,
    # The devices of each request in their key's b-tree (WITHOUT ROWID): a rowid table beside its
    # key's index was one b-tree more for every reservation to write (about 0.015 ms of its 0.15).
    10: """
        CREATE TABLE request_identifiers_keyed (
            request_id TEXT NOT NULL,
            identifier TEXT NOT NULL,
            device INTEGER NOT NULL,
            PRIMARY KEY (request_id, identifier)
        ) WITHOUT ROWID;
        INSERT INTO request_identifiers_keyed (request_id, identifier, device)
            SELECT request_id, identifier, device FROM request_identifiers;
        DROP TABLE request_identifiers;
        ALTER TABLE request_identifiers_keyed RENAME TO request_identifiers;
        CREATE INDEX request_identifiers_by_device ON request_identifiers (request_id, device, identifier);
        CREATE INDEX request_identifiers_lines ON request_identifiers (identifier, request_id, device);
    """,
}

#: The tables of version 0, created before the migrations run on a new file.
SCHEMA = """
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


def upgrade(setup: sqlite3.Connection, path: Path) -> None:
    """Create the schema on ``setup``, or bring a database of an earlier release up to this one's;
    refuse one written by a newer release, whose meaning this one cannot know. The caller holds
    the store's write lock."""
    version = int(setup.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise newer_schema(str(path), version, SCHEMA_VERSION)
    if version == SCHEMA_VERSION:
        return
    setup.execute("BEGIN IMMEDIATE")
    setup.execute("CREATE TABLE IF NOT EXISTS _probe (x)")  # fails early on a read-only file
    setup.execute("DROP TABLE _probe")
    for script in [SCHEMA] + [MIGRATIONS[step] for step in range(version + 1, SCHEMA_VERSION + 1)]:
        for statement in script.split(";"):  # executescript would commit on its own
            if statement.strip():
                setup.execute(statement)
    setup.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    setup.execute("COMMIT")


def check_ours(path: Path, lock_timeout: float) -> None:
    """A database without a schema version is new (no table) or 0.1.0's store (its ``events``);
    one with other tables belongs to another program, into which ours must not be written. Read
    before the store's own connection, whose WAL mode would stay in that file's header."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode) or status.st_size == 0:
            return
    except OSError:  # missing or unreadable: the store's own opening says so
        return
    version, tables = read_schema(path, lock_timeout)  # the store's own patience for a lock
    if version == 0 and tables and "events" not in tables:
        fix = "give the path of a new file or of a uws-adapter store"
        raise another_programs(str(path), "SQLite database", tables, fix)


def read_schema(path: Union[str, Path], timeout: float = 5.0) -> Tuple[int, List[str]]:
    """The schema version (``PRAGMA user_version``) and the tables of the SQLite file at ``path``;
    a file that is not a database is the :class:`StoreError` of :func:`cannot_open`."""
    try:
        probe = sqlite3.connect(str(path), timeout=timeout)
        try:
            version = int(probe.execute("PRAGMA user_version").fetchone()[0])
            rows = probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            probe.close()
    except sqlite3.Error as exc:
        raise cannot_open(path, exc) from None
    return version, [str(name) for (name,) in rows]


def cannot_open(path: Union[str, Path], exc: sqlite3.Error) -> StoreError:
    """The one way a SQLite file that cannot be opened (not a database, unreadable) is reported."""
    return StoreError(f"cannot open the store {path}: {exc}")
