"""What the PostgreSQL store writes for a group of callbacks and refused documents
(:func:`commit_writes`), committed before it returns.

De-duplication is the events table's unique constraint: ``INSERT ... ON CONFLICT DO NOTHING``. A
group's callbacks are one statement (:data:`_GROUP`, the group's values bound as arrays), which is
its own transaction: one wait on the server and one WAL flush per group. It stores the new events
and the attempts of the re-sends whose events its snapshot holds. A re-send racing on another
instance waits on the constraint for that instance's commit, and the statement's snapshot, taken
before, cannot see the event: such callbacks (and a group's duplicates, and re-sends whose content
differs, whose events are flagged) are stored next by a statement per callback (:data:`_RESEND`,
under READ COMMITTED a new snapshot), in a transaction of their own, before any callback of the
group is answered: each is stored once and counted as an attempt. The callbacks of a group are
written in the order of their event keys, so two instances' groups lock rows in the same order and
cannot deadlock on one another.

If a value is refused (a NUL character, a lone surrogate: what PostgreSQL text cannot hold; a key
too long for its index) the group's statement fails whole and the group is written again one
savepoint per write, so that only the poisoned callback becomes a dead letter (as
:mod:`.sqlite_writes` does) and its neighbours are stored. Failures of the database itself
(connection, disk, lock timeout) propagate: nothing of the group is acknowledged, and the carrier
re-sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from uws_adapter.errors import StoreError
from uws_adapter.store.dead_letters import keep_letter, keep_poisoned
from uws_adapter.store.interfaces import POISONED, CallbackWrite, DeadLetterWrite, Outcome, Write
from uws_adapter.store.rows import CallbackRow, callback_row
from uws_adapter.store.sql import POSTGRES, Sql
from uws_adapter.store.unlisted import NEW_EVENT_MARK, event_mark, mark_args

if TYPE_CHECKING:  # psycopg is imported lazily: `import uws_adapter` must not need it
    import psycopg


def _event_of(key: str, *, outer: bool = False) -> str:
    """A join to ``e``, the stored event (its id, content_hash, differs) of the event key in the
    row ``key`` (service, request_id, device, action), if any: the first key at or after it in the
    unique index's order, compared. A plan only that index serves, whatever the statistics: with a
    plain equality, the plan cached on a new, empty table went by events_by_request, and read every
    event of the request for each callback (a benchmark's request held all of them). ``outer``:
    every row of ``key`` is kept, ``e``'s columns NULL where no event has its key."""
    columns = "service, request_id, device, action"
    own = ", ".join(f"{key}.{c}" for c in columns.split(", "))
    lookup = (
        f"JOIN LATERAL (SELECT id, {columns}, content_hash, differs FROM events"
        f" WHERE ({columns}) >= ({own}) ORDER BY {columns} LIMIT 1) e"
    )
    same = f"(e.service, e.request_id, e.device, e.action) = ({own})"
    return f"LEFT {lookup} ON {same}" if outer else f"CROSS {lookup} WHERE {same}"


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
WITH k AS (
    SELECT %s::text AS service, %s::text AS request_id, %s::text AS device, %s::text AS action
), ev AS (
    SELECT e.id, e.content_hash FROM k {event}
), flagged AS (
    UPDATE events SET differs = TRUE WHERE id = (SELECT id FROM ev) AND content_hash <> %s AND NOT differs
), attempt AS (
    INSERT INTO attempts (event_id, callback_count, content_hash, received_at)
    SELECT id, %s, %s, %s FROM ev
    RETURNING event_id
)
SELECT event_id FROM attempt
""".format(event=_event_of("k"))


#: The columns of a group's callbacks, each bound as one array (:data:`_GROUP`).
_COLUMNS = (
    "service", "request_id", "device", "action", "status", "succeeded", "fault_code", "callback", "content_hash",
    "callback_count",
)  # fmt: skip
_TYPES = ("text",) * 5 + ("boolean", "text", "text", "text", "integer")
# A group of callbacks (distinct event keys, in key order) in one statement, its own transaction:
# one wait on the server and one WAL flush per group, where a statement per callback in a
# transaction waited four or five times (issue 19). Each callback's event is looked up first
# (``known``, in the statement's snapshot); only those it does not find go to the insert, so a
# re-send costs one index lookup and its attempt, not a speculative insert, a conflict check and
# the ``unlisted`` mark's two lookups (issue 19, eighth round: 8% of the server's instructions a
# group). It stores the new events (their attempts and handler runs) and the attempts of the
# re-sends it finds and need not flag, and answers (n, event id, new) for those. What it cannot
# see or must flag it leaves to _RESEND: an event another instance committed while this insert
# waited on the constraint (the snapshot is older: the insert does nothing), and a re-send whose
# content differs (its row lock taken after the inserts, as before).
_GROUP_TEMPLATE = """
WITH input AS (
    SELECT g.*, e.id AS known, (e.content_hash = g.content_hash OR e.differs) AS same
    FROM unnest({arrays}) WITH ORDINALITY AS g({columns}, n) {lookup}
), ev AS (
    INSERT INTO events (service, request_id, device, action, status, succeeded, fault_code, callback,
                        content_hash, received_at, unlisted)
    SELECT service, request_id, device, action, status, succeeded, fault_code, callback, content_hash,
           %(now)s, {mark}
    FROM input g WHERE known IS NULL ORDER BY n
    ON CONFLICT (service, request_id, device, action) DO NOTHING
    RETURNING id, service, request_id, device, action
), new AS (
    SELECT g.n, ev.id, g.callback_count, g.content_hash FROM ev JOIN input g USING (service, request_id, device, action)
), seen AS (
    SELECT n, known AS id, callback_count, content_hash FROM input WHERE same
), attempt AS (
    INSERT INTO attempts (event_id, callback_count, content_hash, received_at)
    SELECT id, callback_count, content_hash, %(now)s FROM (SELECT * FROM new UNION ALL SELECT * FROM seen) a ORDER BY n
){runs}
SELECT n, id, TRUE FROM new UNION ALL SELECT n, id, FALSE FROM seen
"""
# The handler runs of the new events, only in the statement of a group that has handlers: an
# insert into a table, even of no rows, is a table and its indexes opened and locked per group.
_RUNS = """, runs AS (
    INSERT INTO handler_queue (event_id, handler, next_at)
    SELECT new.id, h.name, %(now)s
    FROM new JOIN unnest({handler_arrays}) AS h(n, name) USING (n)
)"""


def _array(name: str, kind: str) -> str:
    """The argument ``name`` as an array of ``kind``: in psycopg's binary format (in its text
    format psycopg escaped every quote of the stored JSON with a regular expression, about 100 us a
    callback), behind a scalar subquery, whose value the planner does not look into. A plan made
    for a group's own arrays then costs what the generic plan costs, and PostgreSQL keeps the
    generic one (made once per connection); bound plainly, a plan made for each group's arrays
    looked cheaper, and the server planned the statement again for every group (0.55 ms of
    planning, more than the statement's run)."""
    return f"(SELECT %({name})b::{kind}[])"


_GROUP_PARTS = dict(
    arrays=", ".join(_array(name, kind) for name, kind in zip(_COLUMNS, _TYPES)),
    columns=", ".join(_COLUMNS),
    mark=event_mark("g.request_id"),
    lookup=_event_of("g", outer=True),
)
#: A group's statement, without handlers (the common case) and with them.
_GROUP = _GROUP_TEMPLATE.format(**_GROUP_PARTS, runs="")
_GROUP_RUNS = _GROUP_TEMPLATE.format(
    **_GROUP_PARTS,
    runs=_RUNS.format(handler_arrays=f"{_array('handler_n', 'integer')}, {_array('handler_name', 'text')}"),
)


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
    """Store ``writes`` on ``connection`` (autocommit mode), committed before this returns: the
    group in one transaction, the re-sends it leaves (rare) in another; one outcome per write.
    Raises what the database itself raised."""
    for write in writes:
        if not isinstance(write, (CallbackWrite, DeadLetterWrite)):
            raise TypeError(f"not a store write: {write!r}")
    now = clock()
    rows = _rows(writes)
    try:
        outcomes, resends = _fast(connection, writes, rows, now)
    except Exception as exc:
        if is_database_failure(exc):
            raise
        # A value was refused somewhere in the group (rolled back): find it, one savepoint each.
        return _careful(connection, writes, clock())
    # After the group's commit: a failure here fails the group (its callbacks are sent again), and
    # never runs it again one savepoint each, which would count its stored attempts twice.
    _resends(connection, writes, rows, resends, outcomes, now)
    return outcomes


def _fast(
    connection: psycopg.Connection[Any], writes: Sequence[Write], rows: Dict[int, CallbackRow], now: float
) -> Tuple[List[Outcome], List[int]]:
    """The group in one transaction; its outcomes, and the positions of the callbacks left to
    :func:`_resends` (see :data:`_GROUP`)."""
    outcomes = [Outcome() for _ in writes]
    order = _order(writes, rows)
    callbacks = [i for i in order if i in rows]
    letters = [i for i in order if i not in rows]
    first: Dict[Tuple[str, ...], int] = {}
    for i in callbacks:
        first.setdefault(rows[i].key, i)
    group = list(first.values())  # in key order, each event key once
    args = _group_args(group, rows, writes, now)
    statement = _GROUP_RUNS if args["handler_n"] else _GROUP
    found: List[Tuple[Any, ...]] = []
    if letters:  # rare: the callbacks' statement and the dead letters in one transaction
        with connection.transaction():
            found = connection.execute(statement, args).fetchall() if group else []
            cursor = connection.cursor()
            for i in letters:
                outcomes[i].result = _dead_letter(cursor, _letter_write(writes[i]), now)
    elif group:
        # The common group: one statement outside a transaction block (autocommit), so its own
        # transaction, which the server commits (and flushes, under synchronous_commit) before it
        # says it is ready for the next query; psycopg returns only then.
        found = connection.execute(statement, args).fetchall()
    for n, event_id, new in found:
        outcomes[group[n - 1]].result = (int(event_id), bool(new))
    return outcomes, [i for i in callbacks if outcomes[i].result is None]


def _resends(
    connection: psycopg.Connection[Any], writes: Sequence[Write], rows: Dict[int, CallbackRow], resends: List[int],
    outcomes: List[Outcome], now: float,
) -> None:  # fmt: skip
    """The callbacks :data:`_GROUP` left (rare: a group's duplicate, an event another instance
    committed meanwhile, a re-send to flag), in key order, in a transaction of their own."""
    if not resends:
        return
    with connection.transaction(), connection.pipeline():
        cursor = connection.cursor()
        args = [_resend_args(rows[i], _callback_write(writes[i]), now) for i in resends]
        cursor.executemany(_RESEND, args, returning=True)
        for i, found in zip(resends, _results(cursor)):
            if found is None:
                raise StoreError("an event vanished between its insert and its re-send's attempt")
            outcomes[i].result = (int(found[0]), False)


def _group_args(group: List[int], rows: Dict[int, CallbackRow], writes: Sequence[Write], now: float) -> Dict[str, Any]:
    columns: Dict[str, List[Any]] = {name: [] for name in _COLUMNS}
    handler_n: List[int] = []
    handler_name: List[str] = []
    for n, i in enumerate(group, 1):
        row, write = rows[i], _callback_write(writes[i])
        callback = write.callback
        values = (*row.key, callback.status, callback.succeeded, row.fault_code, row.text, row.digest,
                  callback.callback_count)  # fmt: skip
        for name, value in zip(_COLUMNS, values):
            columns[name].append(value)
        for handler in write.handlers:
            handler_n.append(n)
            handler_name.append(handler)
    return {**columns, "now": now, "handler_n": handler_n, "handler_name": handler_name}


def _callback_write(write: Write) -> CallbackWrite:
    assert isinstance(write, CallbackWrite)
    return write


def _letter_write(write: Write) -> DeadLetterWrite:
    assert isinstance(write, DeadLetterWrite)
    return write


def _results(cursor: psycopg.Cursor[Any]) -> List[Optional[Tuple[Any, ...]]]:
    """The first row (or None) of each execution of the cursor's last ``executemany``."""
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
                # These values cannot be stored, now or on any re-send: kept, to be acknowledged.
                keep_poisoned(Sql(cursor, POSTGRES), write, exc, now)
                outcomes[i].result = (POISONED, False)
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
