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

import sqlite3
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.store.dead_letters import keep_letter, keep_poisoned
from uws_adapter.store.interfaces import POISONED, CallbackWrite, DeadLetterWrite, Write
from uws_adapter.store.rows import callback_row
from uws_adapter.store.sql import SQLITE, Sql
from uws_adapter.store.unlisted import NEW_EVENT_MARK, mark_args

# A callback's statements, made once: the connection's statement cache is keyed by the text, which
# an f-string in the call built (and hashed) anew for every callback.
_INSERT_EVENT = (
    "INSERT OR IGNORE INTO events (service, request_id, device, action, status, succeeded, fault_code,"
    f" callback, content_hash, received_at, unlisted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NEW_EVENT_MARK})"
)
_QUEUE_RUNS = "INSERT INTO handler_queue (event_id, handler, next_at) VALUES (?, ?, ?)"
_KNOWN_EVENT = "SELECT id, content_hash FROM events WHERE service = ? AND request_id = ? AND device = ? AND action = ?"
_INSERT_ATTEMPT = "INSERT INTO attempts (event_id, callback_count, content_hash, received_at) VALUES (?, ?, ?, ?)"


class WriteWork:
    """A write's transaction, run by the store in one of two ways. A group is first run
    :meth:`fast`: every write's statements with no savepoint at all, any failure raised. Only if one
    of them raised is the group rolled back and run again, each write called in a savepoint of its
    own (a poisoned callback then becomes a dead letter in a savepoint of its own too), so that one
    bad write never undoes the others. Both runs write the same rows: a write may run twice.

    In the fast run a write leaves its attempt's values in ``attempts`` (four each) for the group to
    insert at its end in one multi-row statement (:func:`insert_attempts`): CPython's ``sqlite3``
    lets the GIL go around each statement, and the committer, holding the write lock, then waits
    for the event loop's thread to let it go again."""

    __slots__ = ()

    def __call__(self, db: sqlite3.Connection) -> Any:
        raise NotImplementedError

    def fast(self, db: sqlite3.Connection, attempts: List[Any]) -> Any:
        raise NotImplementedError


class CallbackWork(WriteWork):
    """The store transaction for one callback: insert its event (or count a re-send), its attempt,
    and its handler runs. ``document`` (the body as received) is kept, redacted, as a dead letter if
    the callback's values cannot be stored; the result is then ``(POISONED, False)``."""

    __slots__ = ("callback", "clock", "handlers", "media_type", "row", "write")

    def __init__(
        self,
        callback: CallbackRequest,
        handlers: Sequence[str] = (),
        *,
        document: Optional[bytes] = None,
        media_type: Optional[str] = None,
        clock: Callable[[], float] = time.time,
        write: Optional[CallbackWrite] = None,
    ) -> None:
        self.callback = callback
        # The receiver's own write when it is this callback's (work_for): not made a second time.
        if write is None or write.callback is not callback:
            write = CallbackWrite(callback, tuple(handlers), document, media_type)
        self.write = write
        self.handlers = write.handlers
        self.media_type = media_type
        self.clock = clock
        self.row = callback_row(callback)

    def fast(self, db: sqlite3.Connection, attempts: List[Any]) -> Tuple[int, bool]:
        return self._store_event(db, self.clock(), attempts)

    def __call__(self, db: sqlite3.Connection) -> Tuple[int, bool]:
        db.execute("SAVEPOINT event")
        try:
            stored = self._store_event(db, self.clock())
        except sqlite3.OperationalError:
            raise  # the database itself (disk, lock, I/O): worth a re-send
        except Exception as exc:  # these values cannot be stored, now or on any re-send
            db.execute("ROLLBACK TO event")
            db.execute("RELEASE event")
            keep_poisoned(Sql(db, SQLITE), self.write, exc, self.clock())
            return POISONED, False
        db.execute("RELEASE event")
        return stored

    def _store_event(
        self, db: sqlite3.Connection, now: float, attempts: Optional[List[Any]] = None
    ) -> Tuple[int, bool]:
        """The event (or its re-send's mark), its handler runs, and its attempt: inserted here, or
        its values appended to ``attempts`` (the fast run's, see :class:`WriteWork`)."""
        callback, row = self.callback, self.row
        cursor = db.execute(
            _INSERT_EVENT,
            (
                *row.key,
                callback.status,
                int(callback.succeeded),
                row.fault_code,
                row.text,
                row.digest,
                now,
                *mark_args(row.key[1]),
            ),
        )
        new = cursor.rowcount == 1
        if new:
            event_id = int(cursor.lastrowid or 0)
            if self.handlers:  # a receiver without handlers queues nothing: no statement at all
                db.executemany(
                    _QUEUE_RUNS,
                    [(event_id, name, now) for name in self.handlers],
                )
        else:
            event_id, first_digest = db.execute(_KNOWN_EVENT, row.key).fetchone()
            if first_digest != row.digest:
                db.execute("UPDATE events SET differs = 1 WHERE id = ?", (event_id,))
        if attempts is None:
            db.execute(_INSERT_ATTEMPT, (event_id, callback.callback_count, row.digest, now))
        else:
            attempts += (event_id, callback.callback_count, row.digest, now)
        return event_id, new


class DeadLetterWork(WriteWork):
    """The store transaction that keeps a refused document (redacted and capped by the caller)
    within ``max_total`` bytes of dead letters in all, the oldest rotated out past it (see
    :mod:`.dead_letters`). Returns the dead letter's id, or 0 when it is larger than the cap."""

    __slots__ = ("body", "clock", "content_type", "max_total", "reason")

    def __init__(
        self, body: bytes, kind: Optional[str], reason: str, max_total: Optional[int], clock: Callable[[], float]
    ) -> None:
        self.body, self.content_type, self.reason = body, kind, reason
        self.max_total, self.clock = max_total, clock

    def __call__(self, db: sqlite3.Connection) -> int:
        return keep_letter(Sql(db, SQLITE), self.body, self.content_type, self.reason, self.clock(),
                           cap=self.max_total, set_cap=True)  # fmt: skip

    def fast(self, db: sqlite3.Connection, attempts: List[Any]) -> int:
        return self(db)


#: Attempts inserted by one statement (a larger group takes several): the statement's text is one
#: per count, each kept in the connection's statement cache.
ATTEMPTS_CHUNK = 32
_ATTEMPTS_HEAD = _INSERT_ATTEMPT[: _INSERT_ATTEMPT.index(" VALUES ")] + " VALUES "


def insert_attempts(db: sqlite3.Connection, attempts: List[Any]) -> None:
    """Insert the attempts a group's fast run left (four values each), in their order: the same
    rows and ids as one statement each."""
    for start in range(0, len(attempts), 4 * ATTEMPTS_CHUNK):
        values = attempts[start : start + 4 * ATTEMPTS_CHUNK]
        db.execute(_ATTEMPTS_HEAD + ", ".join(["(?, ?, ?, ?)"] * (len(values) // 4)), values)


def work_for(write: Write, clock: Callable[[], float]) -> WriteWork:
    """The SQLite transaction for a backend-neutral write."""
    if isinstance(write, CallbackWrite):
        return CallbackWork(write.callback, write.handlers, document=write.document, media_type=write.media_type,
                            clock=clock, write=write)  # fmt: skip
    if isinstance(write, DeadLetterWrite):
        return DeadLetterWork(write.body, write.media_type, write.reason, write.max_total, clock)
    raise TypeError(f"not a store write: {write!r}")
