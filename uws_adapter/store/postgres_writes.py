"""What the PostgreSQL store writes for a group of callbacks and refused documents, in one
transaction (:func:`commit_writes`).

De-duplication is the events table's unique constraint: ``INSERT ... ON CONFLICT DO NOTHING``,
then a separate statement counts the attempt. A re-send racing on another instance waits on the
constraint for that instance's commit, then finds the event in the next statement (a new snapshot
under READ COMMITTED) and is stored once and counted as an attempt. The writes of a group are run
in the order of their event keys, so two instances' groups lock rows in the same order and cannot
deadlock on one another.

The fast path runs the whole group in a pipeline (one round trip per stage, not per statement).
If a value is refused (a NUL character, a lone surrogate: what PostgreSQL text cannot hold; a key
too long for its index) the
group is rolled back and written again one savepoint per write, so that only the poisoned
callback becomes a dead letter (as :mod:`.sqlite_writes` does) and its neighbours are stored.
Failures of the database itself (connection, disk, lock timeout) propagate: nothing of the group
is acknowledged, and the carrier re-sends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from uws_adapter.errors import StoreError
from uws_adapter.store.dead_letters import keep_letter
from uws_adapter.store.interfaces import POISONED, CallbackWrite, DeadLetterWrite, Outcome, Write
from uws_adapter.store.rows import CallbackRow, callback_row
from uws_adapter.store.sql import POSTGRES, Sql
from uws_adapter.store.unlisted import NEW_EVENT_MARK, mark_args

if TYPE_CHECKING:  # psycopg is imported lazily: `import uws_adapter` must not need it
    import psycopg

_log = logging.getLogger("uws_adapter.store")

_NEW_EVENT = """
WITH ev AS (
    INSERT INTO events (service, request_id, device, action, status, succeeded, fault_code, callback,
                        content_hash, received_at, unlisted)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {mark})
    ON CONFLICT (service, request_id, device, action) DO NOTHING
    RETURNING id
), attempt AS (
    INSERT INTO attempts (event_id, callback_count, content_hash, received_at)
    SELECT id, %s, %s, %s FROM ev
), runs AS (
    INSERT INTO handler_queue (event_id, handler, next_at)
    SELECT ev.id, name, %s FROM ev, unnest(%s::text[]) AS name
)
SELECT id FROM ev
""".format(mark=NEW_EVENT_MARK.replace("?", "%s"))
# A separate statement from _NEW_EVENT: one statement's snapshot cannot see the row another
# instance committed while this one waited on the constraint.
_RESEND = """
WITH ev AS (
    SELECT id, content_hash FROM events WHERE service = %s AND request_id = %s AND device = %s AND action = %s
), flagged AS (
    UPDATE events SET differs = TRUE WHERE id = (SELECT id FROM ev) AND content_hash <> %s AND NOT differs
), attempt AS (
    INSERT INTO attempts (event_id, callback_count, content_hash, received_at)
    SELECT id, %s, %s, %s FROM ev
    RETURNING event_id
)
SELECT event_id FROM attempt
"""


def is_database_failure(exc: BaseException) -> bool:
    """A failure of the database itself (worth a re-send), not of the values written.

    A program limit (SQLSTATE class 54, an OperationalError to psycopg) is the values' doing: a key
    too long for its index (a RequestId or device of about 2,700 bytes that do not compress) is
    refused on every re-send, so it is a poisoned callback (a dead letter), not a reason for 503."""
    import psycopg
    from psycopg import errors

    if isinstance(exc, errors.ProgramLimitExceeded):
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def _new_event_args(row: CallbackRow, write: CallbackWrite, now: float) -> Tuple[Any, ...]:
    callback = write.callback
    return (
        *row.key, callback.status, callback.succeeded, row.fault_code, row.text, row.digest, now,
        *mark_args(row.key[1]), callback.callback_count, row.digest, now,
        now, list(write.handlers),
    )  # fmt: skip


def _resend_args(row: CallbackRow, write: CallbackWrite, now: float) -> Tuple[Any, ...]:
    return (*row.key, row.digest, write.callback.callback_count, row.digest, now)


def _dead_letter(cursor: psycopg.Cursor[Any], write: DeadLetterWrite, now: float) -> int:
    db = Sql(cursor, POSTGRES)
    return keep_letter(db, write.body, write.media_type, write.reason, now, cap=write.max_total, set_cap=True)


def _order(writes: Sequence[Write], rows: Dict[int, CallbackRow]) -> List[int]:
    """Positions of ``writes`` in the order to run them: callbacks by event key (one lock order for
    every instance), then dead letters."""

    def key(position: int) -> Tuple[int, Tuple[str, ...]]:
        return (0, rows[position].key) if position in rows else (1, ())

    return sorted(range(len(writes)), key=key)


def _rows(writes: Sequence[Write]) -> Dict[int, CallbackRow]:
    return {i: callback_row(w.callback) for i, w in enumerate(writes) if isinstance(w, CallbackWrite)}


def commit_writes(
    connection: psycopg.Connection[Any], writes: Sequence[Write], clock: Callable[[], float]
) -> List[Outcome]:
    """Store ``writes`` in one transaction on ``connection`` (autocommit mode), committed before
    this returns; one outcome per write. Raises what the database itself raised."""
    for write in writes:
        if not isinstance(write, (CallbackWrite, DeadLetterWrite)):
            raise TypeError(f"not a store write: {write!r}")
    try:
        return _fast(connection, writes, clock())
    except Exception as exc:
        if is_database_failure(exc):
            raise
        # A value was refused somewhere in the group (rolled back): find it, one savepoint each.
        return _careful(connection, writes, clock())


def _fast(connection: psycopg.Connection[Any], writes: Sequence[Write], now: float) -> List[Outcome]:
    outcomes = [Outcome() for _ in writes]
    rows = _rows(writes)
    order = _order(writes, rows)
    callbacks = [i for i in order if i in rows]
    # The transaction outside the pipeline: BEGIN, the inserts (executemany sends a group's
    # statements in one go), the re-sends' attempts, COMMIT: four or five waits on the server
    # whatever the group's size. The other way round (a transaction opened inside the pipeline)
    # psycopg nests a second pipeline in the transaction, and a group waited nine times: each wait
    # costs CPU (a poll and a wake-up), and small groups paid it per callback (profiled: 650 us of
    # CPU per group of one, issue 19).
    with connection.transaction(), connection.pipeline():
        cursor = connection.cursor()
        if callbacks:
            new_args = [_new_event_args(rows[i], _callback_write(writes[i]), now) for i in callbacks]
            inserted = _each_result(cursor, _NEW_EVENT, new_args)
            resends = []
            for i, found in zip(callbacks, inserted):
                if found is not None:
                    outcomes[i].result = (int(found[0]), True)
                else:
                    resends.append(i)
            if resends:
                resend_args = [_resend_args(rows[i], _callback_write(writes[i]), now) for i in resends]
                for i, found in zip(resends, _each_result(cursor, _RESEND, resend_args)):
                    if found is None:
                        raise StoreError("an event vanished between its insert and its re-send's attempt")
                    outcomes[i].result = (int(found[0]), False)
        for i in order:
            write = writes[i]
            if isinstance(write, DeadLetterWrite):
                outcomes[i].result = _dead_letter(cursor, write, now)
    return outcomes


def _callback_write(write: Write) -> CallbackWrite:
    assert isinstance(write, CallbackWrite)
    return write


def _each_result(
    cursor: psycopg.Cursor[Any], query: str, args: List[Tuple[Any, ...]]
) -> List[Optional[Tuple[Any, ...]]]:
    """The first row (or None) of each execution of ``query``, run once per ``args``."""
    cursor.executemany(query, args, returning=True)
    found: List[Optional[Tuple[Any, ...]]] = []
    while True:
        found.append(cursor.fetchone())
        if not cursor.nextset():
            return found


def _careful(connection: psycopg.Connection[Any], writes: Sequence[Write], now: float) -> List[Outcome]:
    outcomes = [Outcome() for _ in writes]
    rows = _rows(writes)
    with connection.transaction():
        cursor = connection.cursor()
        for i in _order(writes, rows):
            write = writes[i]
            try:
                with connection.transaction():  # a savepoint
                    if isinstance(write, CallbackWrite):
                        outcomes[i].result = _one_callback(cursor, write, rows[i], now)
                    else:
                        assert isinstance(write, DeadLetterWrite)
                        outcomes[i].result = _dead_letter(cursor, write, now)
            except Exception as exc:
                if is_database_failure(exc):
                    raise
                if not isinstance(write, CallbackWrite):
                    outcomes[i].error = exc
                    continue
                outcomes[i].result = _poisoned(cursor, write, exc, now)
    return outcomes


def _one_callback(cursor: psycopg.Cursor[Any], write: CallbackWrite, row: CallbackRow, now: float) -> Tuple[int, bool]:
    cursor.execute(_NEW_EVENT, _new_event_args(row, write, now))
    found = cursor.fetchone()
    if found is not None:
        return int(found[0]), True
    cursor.execute(_RESEND, _resend_args(row, write, now))
    found = cursor.fetchone()
    if found is None:
        raise StoreError("an event vanished between its insert and its re-send's attempt")
    return int(found[0]), False


def _poisoned(cursor: psycopg.Cursor[Any], write: CallbackWrite, exc: BaseException, now: float) -> Tuple[int, bool]:
    """Keep a callback whose values PostgreSQL refused as a dead letter, to be acknowledged: it
    would be refused on every re-send until the carrier gives up."""
    callback = write.callback
    reason = f"callback {callback.request_id[:80]!r} could not be stored as an event: {type(exc).__name__}"
    letter = keep_letter(Sql(cursor, POSTGRES), write.dead_letter(), write.media_type, reason, now)
    _log.warning("%s; kept as dead letter %d", reason, letter)
    return POISONED, False
