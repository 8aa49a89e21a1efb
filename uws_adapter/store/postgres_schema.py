"""The PostgreSQL store's schema, its versions and how to go from one to the next.

The version is the one row of ``uws_schema_version``. Migrations run in one transaction under an
advisory lock, so that two instances upgrading at once take turns and the second finds nothing to
do; they are applied by ``uws-adapter db upgrade --db URL`` (or ``PostgresStore(url,
upgrade=True)``), never behind an operator's back: a store opened on an older schema refuses to
start and says to run the upgrade, and one on a newer schema (written by a later release, whose
meaning this one cannot know) refuses too.
"""

from __future__ import annotations

from typing import Dict

from uws_adapter.store import line_counts, names, unlisted

#: The schema this release writes.
SCHEMA_VERSION = 7
#: Any constant taken by every upgrade (pg_advisory_xact_lock): "uws-adapter" on a phone keypad.
UPGRADE_LOCK = 8_792_332_378

#: version N: the statements that take a database from version N-1 to N.
MIGRATIONS: Dict[int, str] = {
    1: """
CREATE TABLE IF NOT EXISTS events (
    id BIGSERIAL PRIMARY KEY,
    service TEXT NOT NULL,
    request_id TEXT NOT NULL,
    device TEXT NOT NULL,
    action TEXT NOT NULL,
    status TEXT,
    succeeded BOOLEAN NOT NULL,
    fault_code TEXT,
    callback TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    differs BOOLEAN NOT NULL DEFAULT FALSE,
    received_at DOUBLE PRECISION NOT NULL,
    UNIQUE (service, request_id, device, action)
);
CREATE INDEX IF NOT EXISTS events_by_request ON events (request_id);
CREATE INDEX IF NOT EXISTS events_by_received ON events (received_at);
CREATE TABLE IF NOT EXISTS attempts (
    id BIGSERIAL PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES events (id),
    callback_count INTEGER,
    content_hash TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_event ON attempts (event_id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id BIGSERIAL PRIMARY KEY,
    received_at DOUBLE PRECISION NOT NULL,
    content_type TEXT,
    reason TEXT NOT NULL,
    body BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    api TEXT NOT NULL,
    sent_at DOUBLE PRECISION NOT NULL,
    devices TEXT NOT NULL,
    forced BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS request_identifiers (
    request_id TEXT NOT NULL,
    identifier TEXT NOT NULL,
    device INTEGER NOT NULL,
    PRIMARY KEY (request_id, identifier)
);
CREATE INDEX IF NOT EXISTS request_identifiers_by_identifier ON request_identifiers (identifier);
CREATE TABLE IF NOT EXISTS handler_queue (
    event_id BIGINT NOT NULL,
    handler TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at DOUBLE PRECISION NOT NULL,
    claimed_until DOUBLE PRECISION,
    last_error TEXT,
    PRIMARY KEY (event_id, handler)
);
CREATE INDEX IF NOT EXISTS handler_queue_by_due ON handler_queue (next_at);
CREATE TABLE IF NOT EXISTS bridge_sessions (
    token_sha256 TEXT PRIMARY KEY,
    last_used DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS bridge_login_failures (
    username TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_at DOUBLE PRECISION
)
""",
    # The budget check ties a line's identifiers together by (request, device position); see the
    # SQLite store's migration 5.
    2: """
CREATE INDEX IF NOT EXISTS request_identifiers_by_device ON request_identifiers (request_id, device, identifier);
DROP INDEX IF EXISTS request_identifiers_by_identifier;
CREATE INDEX IF NOT EXISTS request_identifiers_lines ON request_identifiers (identifier, request_id, device)
""",
    # Dead letters: each one's size as the cap counts it, and the running total of those sizes
    # (see store/dead_letters.py). Failed legacy LogIns are throttled in memory now.
    3: """
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS size BIGINT NOT NULL DEFAULT 0;
UPDATE dead_letters SET size = octet_length(body) + octet_length(coalesce(content_type, '') || reason) + 64;
CREATE TABLE IF NOT EXISTS dead_letter_totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    bytes BIGINT NOT NULL,
    rotated BIGINT NOT NULL,
    max_bytes BIGINT
);
INSERT INTO dead_letter_totals SELECT 0, coalesce(sum(size), 0), 0, NULL FROM dead_letters ON CONFLICT DO NOTHING;
DROP TABLE IF EXISTS bridge_login_failures
""",
    # The budget check's summary (see store/line_counts.py), built from the log.
    4: line_counts.MIGRATION_POSTGRES,
    # The budget's callbacks of unlisted requests (see store/unlisted.py).
    5: unlisted.MIGRATION_POSTGRES,
    # A confirmed reservation's rows keep its key; the carrier's RequestId is written beside it
    # (see store/names.py).
    6: names.MIGRATION_POSTGRES,
    # What every callback paid for and nothing needs (issue 19, eighth round): the attempts' foreign
    # key ran a trigger per attempt (a lookup of the event through SPI and a KEY SHARE row lock on it,
    # written to the WAL and dirtying its page: 14% of the server's instructions for a group of
    # callbacks), and no query of the store reads events by received_at (the budget's read has its
    # own partial index, events_unlisted). The store writes an attempt only with the id of an event
    # its statement inserted or found, and never deletes an event. (The SQLite store keeps its key.)
    7: """
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_event_id_fkey;
DROP INDEX IF EXISTS events_by_received
""",
}

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS uws_schema_version (version INTEGER NOT NULL)"
