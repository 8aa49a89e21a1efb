"""The name a recorded request is known by, apart from the key of its rows.

A request's rows (``requests``, ``request_identifiers``) are keyed by the id it was first recorded
under: a reservation's ``pending:<uuid>`` (see :mod:`.core`) keeps that key for the rest of its
life. When it is confirmed, the carrier's RequestId (or the ``outcome-unknown:`` stand-in) is
written beside the key, in ``requests.known_as``; a request recorded under its RequestId at once,
and a reservation not yet confirmed, have none there and are known by their key. So a request's name
is ``coalesce(known_as, request_id)``, and every lookup by RequestId (tracking, the replacement of
an older request, the budget's listing of callbacks in :mod:`.unlisted`) goes through the
statements here.

Why: a confirmation writes one row and one entry of a partial index, where renaming the key
rewrote the request's rows and their indexes (docs/performance.md); a reservation writes no entry
there (one per reservation cost about as much as the confirmation saved).

Names are unique: whatever records or confirms a request under a name forgets the request known by
it first, in the same transaction, after taking turns on the name (:func:`turn_of`). Why the turn:
the partial unique index holds only the names a confirmation gave, so on PostgreSQL (READ
COMMITTED) a RequestId recorded while a reservation is confirmed under it conflicted with nothing,
neither transaction saw the other's row when it looked the name up, and both committed: two
requests known by one name (the rename used to meet the other row in the primary key); and two
transactions recording one name at once both forgot the request it named, uncounting it twice from
its lines' summary (:mod:`.line_counts`: too low, so the budget check could clear a line over it).
SQLite commits one write at a time: the turn costs it nothing.
"""

from __future__ import annotations

import hashlib
from typing import Optional

from uws_adapter.store.sql import Sql

__all__ = [
    "CONFIRMED_SAME_DAY", "KEY_OF", "MIGRATION_POSTGRES", "MIGRATION_SQLITE", "NAME", "RESERVED_AT", "key_of",
    "listed_as", "turn_of",
]  # fmt: skip

#: The name of the request of the row ``r`` of ``requests``.
NAME = "coalesce(r.known_as, r.request_id)"

#: The key (``request_id``) of the request known as the name bound twice (``(name, name)``).
KEY_OF = (
    "SELECT request_id FROM requests WHERE known_as = ?"
    " UNION ALL SELECT request_id FROM requests WHERE request_id = ? AND known_as IS NULL LIMIT 1"
)


def key_of(db: Sql, name: str) -> Optional[str]:
    """The key of the rows of the request known as ``name``, if any."""
    row = db.one(KEY_OF, (name, name))
    return None if row is None else str(row[0])


#: When the reservation bound once was made, while it is not confirmed: such a request is known by
#: its key (one probe of the key, where :data:`KEY_OF` probes the name first, then the key).
RESERVED_AT = "SELECT sent_at FROM requests WHERE request_id = ? AND known_as IS NULL"

#: Name the reservation bound third by the name bound first, as sent at the time bound second, when
#: it is not confirmed yet and was made in ``[fourth, fifth)`` (the day of the second: its budget
#: counts stay on their day). No row changed: it is not such a reservation (see ``core``).
CONFIRMED_SAME_DAY = (
    "UPDATE requests SET known_as = ?, sent_at = ? WHERE request_id = ? AND known_as IS NULL"
    " AND sent_at >= ? AND sent_at < ?"
)


def turn_of(name: str) -> int:
    """The key (a signed 64-bit integer) the transactions that record or confirm a request under
    ``name`` take turns on (:meth:`.sql.Sql.take_turns`); another name's rarely, and then only
    waits."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def listed_as(name: str) -> str:
    """The condition "the request known as ``name`` lists devices in the log", ``name`` an SQL
    expression (a column, or ``?``) that appears twice: bound twice when it is a placeholder."""
    rows = "SELECT 1 FROM requests r JOIN request_identifiers i ON i.request_id = r.request_id WHERE"
    return f"(EXISTS ({rows} r.known_as = {name}) OR EXISTS ({rows} r.request_id = {name} AND r.known_as IS NULL))"


_MIGRATION = """
ALTER TABLE requests ADD COLUMN {if_not}known_as TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS requests_by_name ON requests (known_as) WHERE known_as IS NOT NULL
"""
#: The statements that add the names: every request recorded so far is known by its key.
MIGRATION_SQLITE = _MIGRATION.format(if_not="")
MIGRATION_POSTGRES = _MIGRATION.format(if_not="IF NOT EXISTS ")
