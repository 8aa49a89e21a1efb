"""The callbacks the budget counts beside the log: succeeded callbacks of requests the log lists no
devices for (queries, whose lines are known from their callbacks only, and requests sent by other
tools), found without visiting the callbacks of the requests it lists (see :mod:`.core`).

**What is kept.** Each event says whether its request had no devices in the log (``unlisted``)
when the event was stored, and again whenever that request's devices are recorded or confirmed
(:func:`listed`); only the unlisted events are in the partial index the check reads, so a
reservation visits the day's unlisted callbacks, never the day's others (docs/performance.md). A
request whose devices are forgotten and not recorded again (its id recorded again as a query's, or
confirmed over by a reservation without devices) has its events marked unlisted again
(:func:`forgotten`) and is remembered in ``budget_demoted`` for two days.

**Why it is exact.** The read still asks the log whether each event's request lists devices, as
before: an event marked unlisted whose request is listed is left out there (marked too many is
only slower). Marked listed while its request lists none cannot happen on SQLite (one writer at a
time); on PostgreSQL a callback stored while another transaction forgets its request's devices may
keep the mark it took before (neither transaction sees the other's rows): the check therefore also
reads the events of the requests forgotten in the last two days, whatever their mark, and a
request's remembered row is dropped only after its events have been marked again, when no
transaction of its time can still run. A callback stored while its request's devices are confirmed
may likewise keep an unlisted mark: only slower, and only that day. A reservation reads the marks,
the forgotten requests and the log in several statements, each seeing what is committed when it
starts: a forgetting takes turns with the reservations (:mod:`.core`), or a request forgotten
between two of them would be counted by none (tests/store/test_budget_interleavings.py).
"""

from __future__ import annotations

from typing import List, Tuple

from uws_adapter.store.names import listed_as
from uws_adapter.store.sql import Row, Sql

__all__ = [
    "MIGRATION_POSTGRES", "MIGRATION_SQLITE", "NEW_EVENT_MARK", "PENDING", "REMEMBERED", "UNLISTED_EVENTS",
    "callbacks", "event_mark", "forgotten", "listed", "mark_args",
]  # fmt: skip

#: How long a forgotten request is remembered (see the module), in seconds: far longer than any
#: transaction of the store runs.
REMEMBERED = 2 * 24 * 60 * 60

_MIGRATION = """
ALTER TABLE events ADD COLUMN {if_not}unlisted {boolean} NOT NULL DEFAULT TRUE;
UPDATE events SET unlisted = FALSE
    WHERE EXISTS (SELECT 1 FROM request_identifiers i WHERE i.request_id = events.request_id);
CREATE INDEX IF NOT EXISTS events_unlisted ON events (received_at) WHERE unlisted = TRUE;
CREATE TABLE IF NOT EXISTS budget_demoted (request_id TEXT PRIMARY KEY, at {real} NOT NULL)
"""
#: The statements that mark the events already stored, and add the index and the table.
MIGRATION_SQLITE = _MIGRATION.format(if_not="", boolean="INTEGER", real="REAL")
MIGRATION_POSTGRES = _MIGRATION.format(if_not="IF NOT EXISTS ", boolean="BOOLEAN", real="DOUBLE PRECISION")


#: The id prefix of a reservation (a request not yet confirmed: see :mod:`.core`).
PENDING = "pending:"
#: The value of a new event's ``unlisted``, with :func:`mark_args` as its arguments. A
#: reservation's id (never sent to the carrier) is marked unlisted whatever the log says: its
#: devices are forgotten when it is released, and that forgetting is not remembered.
NEW_EVENT_MARK = f"(? OR NOT {listed_as('?')})"


def mark_args(request_id: str) -> Tuple[bool, str, str]:
    """The arguments of :data:`NEW_EVENT_MARK` for an event of the request ``request_id``."""
    return request_id.startswith(PENDING), request_id, request_id


def event_mark(column: str) -> str:
    """:data:`NEW_EVENT_MARK` of the request id in the SQL expression ``column`` (PostgreSQL: a
    group's events written by one statement, each row's mark its own); ``column`` is not ``i``
    nor ``r``, the aliases of :func:`.names.listed_as`."""
    return f"(starts_with({column}, '{PENDING}') OR NOT {listed_as(column)})"


_COUNTED = (
    " AND e.received_at > ? AND e.succeeded = TRUE AND e.service != 'NiddService' AND e.action != ''"
    f" AND NOT {listed_as('e.request_id')}"
)
_SELECT = "SELECT e.request_id, e.device, e.received_at FROM events e WHERE "
#: The callbacks of the events marked unlisted (the partial index's), ``since`` its argument.
UNLISTED_EVENTS = _SELECT + "e.unlisted = TRUE" + _COUNTED


def callbacks(db: Sql, since: float) -> List[Row]:
    """(request id, device key, received_at) of the succeeded callbacks received after ``since`` of
    requests the log lists no devices for: their lines are counted from these."""
    found = db.all(UNLISTED_EVENTS, (since,))
    # The requests remembered (most often none) in a statement of their own, their ids bound: in
    # one statement PostgreSQL's planner, which had never seen the table filled, read the day's
    # events first.
    remembered = [str(row[0]) for row in db.all("SELECT request_id FROM budget_demoted")]
    if remembered:
        found += db.all_in(_SELECT + "{} AND e.unlisted = FALSE" + _COUNTED, "e.request_id", remembered, (since,))
    return found


def listed(db: Sql, request_id: str) -> None:
    """The request ``request_id`` may list devices now (recorded or confirmed in this transaction):
    its events are marked listed if it does."""
    db.run(
        f"UPDATE events SET unlisted = FALSE WHERE request_id = ? AND unlisted = TRUE AND {listed_as('?')}",
        (request_id, request_id, request_id),
    )


def forgotten(db: Sql, request_id: str, now: float) -> None:
    """The devices of the request ``request_id`` are being forgotten in this transaction: its
    events are marked unlisted (:func:`listed` marks them again if it is recorded anew) and it is
    remembered (see the module). Rows remembered longer than :data:`REMEMBERED` are dropped, their
    events marked by what the log says now."""
    db.run("UPDATE events SET unlisted = TRUE WHERE request_id = ? AND unlisted = FALSE", (request_id,))
    db.run(
        "INSERT INTO budget_demoted (request_id, at) VALUES (?, ?)"
        " ON CONFLICT (request_id) DO UPDATE SET at = excluded.at",
        (request_id, now),
    )
    old = [str(row[0]) for row in db.all("SELECT request_id FROM budget_demoted WHERE at < ?", (now - REMEMBERED,))]
    for name in old:
        db.run(
            f"UPDATE events SET unlisted = TRUE WHERE request_id = ? AND unlisted = FALSE AND NOT {listed_as('?')}",
            (name, name, name),
        )
        db.run("DELETE FROM budget_demoted WHERE request_id = ?", (name,))
