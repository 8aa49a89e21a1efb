-- The store schema of uws-adapter 0.1.0 (no user_version): a database of that release.

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
