"""What the store writes for each document the receiver takes: the transaction for a callback
(one event per service, RequestId, device and action; one attempt per delivery; its handler runs)
and for a refused document (a dead letter). Each is a function of a connection, run by the store's
writer inside a group commit (:meth:`Store.write`, :meth:`Store.commit_group`).

A callback whose values the database cannot hold is not lost: the same transaction keeps it as a
dead letter instead (:data:`POISONED`), so that it can be acknowledged rather than refused on every
re-send until the carrier gives up. Only failures of the database itself (disk full, lock, I/O)
propagate, for a 503 and a re-send.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Callable, Optional, Sequence, Tuple

from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.store.dead_letters import keep_letter
from uws_adapter.store.interfaces import POISONED, CallbackWrite, DeadLetterWrite, Write
from uws_adapter.store.rows import callback_row
from uws_adapter.store.sql import SQLITE, Sql

_log = logging.getLogger("uws_adapter.store")


def callback_work(
    callback: CallbackRequest,
    handlers: Sequence[str] = (),
    *,
    document: Optional[bytes] = None,
    media_type: Optional[str] = None,
    clock: Callable[[], float] = time.time,
) -> Callable[[sqlite3.Connection], Tuple[int, bool]]:
    """The store transaction for one callback: insert its event (or count a re-send), its attempt,
    and its handler runs. ``document`` (the body as received) is kept, redacted, as a dead letter if
    the callback's values cannot be stored; the result is then ``(POISONED, False)``."""
    poisoned = CallbackWrite(callback, tuple(handlers), document, media_type)
    row = callback_row(callback)
    form, digest, key, fault_code = row.form, row.digest, row.key, row.fault_code

    def work(db: sqlite3.Connection) -> Tuple[int, bool]:
        db.execute("SAVEPOINT event")
        try:
            stored = store_event(db, clock())
        except sqlite3.OperationalError:
            raise  # the database itself (disk, lock, I/O): worth a re-send
        except Exception as exc:  # these values cannot be stored, now or on any re-send
            db.execute("ROLLBACK TO event")
            db.execute("RELEASE event")
            reason = f"callback {callback.request_id[:80]!r} could not be stored as an event: {type(exc).__name__}"
            letter = keep_letter(Sql(db, SQLITE), poisoned.dead_letter(), media_type, reason, clock())
            _log.warning("%s; kept as dead letter %d", reason, letter)
            return POISONED, False
        db.execute("RELEASE event")
        return stored

    def store_event(db: sqlite3.Connection, now: float) -> Tuple[int, bool]:
        cursor = db.execute(
            "INSERT OR IGNORE INTO events (service, request_id, device, action, status, succeeded, fault_code,"
            " callback, content_hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, callback.status, int(callback.succeeded), fault_code, json.dumps(form), digest, now),
        )
        new = cursor.rowcount == 1
        if new:
            event_id = int(cursor.lastrowid or 0)
            if handlers:  # a receiver without handlers queues nothing: no statement at all
                db.executemany(
                    "INSERT INTO handler_queue (event_id, handler, next_at) VALUES (?, ?, ?)",
                    [(event_id, name, now) for name in handlers],
                )
        else:
            event_id, first_digest = db.execute(
                "SELECT id, content_hash FROM events"
                " WHERE service = ? AND request_id = ? AND device = ? AND action = ?",
                key,
            ).fetchone()
            if first_digest != digest:
                db.execute("UPDATE events SET differs = 1 WHERE id = ?", (event_id,))
        db.execute(
            "INSERT INTO attempts (event_id, callback_count, content_hash, received_at) VALUES (?, ?, ?, ?)",
            (event_id, callback.callback_count, digest, now),
        )
        return event_id, new

    return work


def dead_letter_work(
    body: bytes,
    content_type: Optional[str],
    reason: str,
    *,
    max_total: Optional[int] = None,
    clock: Callable[[], float] = time.time,
) -> Callable[[sqlite3.Connection], int]:
    """The store transaction that keeps a refused document (redacted and capped by the caller)
    within ``max_total`` bytes of dead letters in all, the oldest rotated out past it (see
    :mod:`.dead_letters`). Returns the dead letter's id, or 0 when it is larger than the cap."""

    def work(db: sqlite3.Connection) -> int:
        return keep_letter(Sql(db, SQLITE), body, content_type, reason, clock(), cap=max_total, set_cap=True)

    return work


def work_for(write: Write, clock: Callable[[], float]) -> Callable[[sqlite3.Connection], object]:
    """The SQLite transaction for a backend-neutral write."""
    if isinstance(write, CallbackWrite):
        return callback_work(write.callback, write.handlers, document=write.document, media_type=write.media_type,
                             clock=clock)  # fmt: skip
    if isinstance(write, DeadLetterWrite):
        return dead_letter_work(write.body, write.media_type, write.reason, max_total=write.max_total, clock=clock)
    raise TypeError(f"not a store write: {write!r}")
