"""The budget check's summary: per identity, how it was named and how many requests named it per day,
kept up to date in the transaction that records or forgets a request, so that the check reads a row
or two per identity instead of every request of every line (see :mod:`.core`).

**What is kept.** ``budget_identities``: per identity, the key of the device it was first named as
(its identities sorted, ``|``-joined, as :func:`~uws_adapter.model.devices.device_key`), that key's
size, and ``several`` once any request named it as part of another set (never cleared).
``budget_days``: per identity and UTC day (``floor(sent_at / 86400)``), the requests in the log
naming it whose ``sent_at`` falls on that day.

**Why it is exact.** A device whose every identity was only ever named as exactly that device
(``several`` false, one key, of the device's size) has a line of those identities only, and every
request naming any of them names all of them: its actions after ``since`` are the requests naming
any one of its identities sent after ``since``, at most the sum of that identity's days from
``since``'s day on (the days count whole days: an upper bound, never less). A device whose
identities were never named has no recorded requests. Every other device, and every device whose
bound reaches the budget, is counted from the rows as before: the summary only decides which lines
need no rows. The counts move with ``sent_at`` (a confirmation on another day moves them) and go
down when a request is forgotten; a count that would go below 0 stays at 0 (too high is safe,
too low never happens).

**Locks.** On PostgreSQL the counters are rows that concurrent transactions update: each statement
takes them in (day, identity) order and a transaction goes from the earlier day to the later, so
two transactions never wait on each other in a circle.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Sequence, Set, Tuple

from uws_adapter.model.devices import Device, identity
from uws_adapter.store.sql import Sql

__all__ = ["DAY", "MIGRATION_POSTGRES", "MIGRATION_SQLITE", "add_request", "day_of", "move_request", "risky",
           "take_request"]  # fmt: skip

#: The counters' bucket, in seconds.
DAY = 24 * 60 * 60

_TABLES = """
CREATE TABLE IF NOT EXISTS budget_identities (
    identifier TEXT PRIMARY KEY,
    device_key TEXT NOT NULL,
    members INTEGER NOT NULL,
    several {boolean} NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_days (
    identifier TEXT NOT NULL,
    day BIGINT NOT NULL,
    actions BIGINT NOT NULL,
    PRIMARY KEY (identifier, day)
);
"""
# Built from the rows already logged: each (request, device position) is a device key.
_FILL = """
INSERT INTO budget_days (identifier, day, actions)
    SELECT i.identifier, {day}, count(DISTINCT i.request_id) FROM request_identifiers i
    JOIN requests r ON r.request_id = i.request_id GROUP BY i.identifier, {day};
INSERT INTO budget_identities (identifier, device_key, members, several)
    SELECT i.identifier, min(k.device_key), min(k.members),
        count(DISTINCT k.device_key) > 1 OR count(DISTINCT k.members) > 1
    FROM request_identifiers i JOIN ({keys}) k ON k.request_id = i.request_id AND k.device = i.device
    GROUP BY i.identifier
"""
# A key built in another order than Python's sorted() would only mark its identities as named in
# several ways: their lines are then counted from the rows, never miscounted.
_SQLITE_KEYS = (
    "SELECT request_id, device, group_concat(identifier, '|') AS device_key, count(*) AS members FROM"
    " (SELECT request_id, device, identifier FROM request_identifiers ORDER BY request_id, device, identifier)"
    " GROUP BY request_id, device"
)
_POSTGRES_KEYS = (
    "SELECT request_id, device, string_agg(identifier, '|' ORDER BY identifier COLLATE \"C\") AS device_key,"
    " count(*) AS members FROM request_identifiers GROUP BY request_id, device"
)
#: The statements that add the summary to a store, built from what it logged already.
MIGRATION_SQLITE = _TABLES.format(boolean="INTEGER") + _FILL.format(
    day="CAST(r.sent_at / 86400 AS INTEGER)", keys=_SQLITE_KEYS
)
MIGRATION_POSTGRES = _TABLES.format(boolean="BOOLEAN") + _FILL.format(
    day="CAST(floor(r.sent_at / 86400) AS BIGINT)", keys=_POSTGRES_KEYS
)


def day_of(when: float) -> int:
    return int(when // DAY)


def _count(db: Sql, changes: Sequence[Tuple[str, int]], delta: int) -> None:
    """Add ``delta`` to each (identity, day) counter, in (day, identity) order."""
    greatest = db.dialect.greatest
    db.insert_rows(
        "INSERT INTO budget_days (identifier, day, actions) {rows}"
        f" ON CONFLICT (identifier, day) DO UPDATE SET actions = {greatest}(budget_days.actions + ({delta}), 0)",
        ("identifier", "day", "actions"), ("text", "bigint", "bigint"),
        [(name, day, max(delta, 0)) for day, name in sorted((d, n) for n, d in changes)],
    )  # fmt: skip


def add_request(db: Sql, devices: Sequence[Device], now: float) -> None:
    """Count a request naming ``devices``, sent at ``now`` (recorded in the same transaction)."""
    keys: Dict[str, Set[str]] = defaultdict(set)
    for device in devices:
        names = sorted({identity(i.kind, i.identifier) for i in device.identifiers})
        key = "|".join(names)
        for name in names:
            keys[name].add(key)
    if not keys:
        return
    rows = []
    for name in sorted(keys):
        key = min(keys[name])
        rows.append((name, key, key.count("|") + 1, len(keys[name]) > 1))
    db.insert_rows(
        "INSERT INTO budget_identities (identifier, device_key, members, several) {rows}"
        " ON CONFLICT (identifier) DO UPDATE SET several = TRUE WHERE NOT budget_identities.several"
        " AND (excluded.several OR budget_identities.device_key <> excluded.device_key)",
        ("identifier", "device_key", "members", "several"), ("text", "text", "integer", "boolean"), rows,
    )  # fmt: skip
    _count(db, [(name, day_of(now)) for name in keys], 1)


def _identities(db: Sql, request_id: str) -> List[str]:
    rows = db.all("SELECT identifier FROM request_identifiers WHERE request_id = ?", (request_id,))
    return sorted({str(row[0]) for row in rows})


def take_request(db: Sql, request_id: str) -> None:
    """Uncount the request ``request_id`` (about to be forgotten in the same transaction)."""
    sent = db.one("SELECT sent_at FROM requests WHERE request_id = ?", (request_id,))
    if sent is not None:
        _count(db, [(name, day_of(float(sent[0]))) for name in _identities(db, request_id)], -1)


def move_request(db: Sql, request_id: str, now: float) -> None:
    """The request ``request_id`` is to be sent at ``now`` from now on: its counts follow it when
    that is another day (the earlier day first)."""
    sent = db.one("SELECT sent_at FROM requests WHERE request_id = ?", (request_id,))
    if sent is None or day_of(float(sent[0])) == day_of(now):
        return
    names = _identities(db, request_id)
    before, after = day_of(float(sent[0])), day_of(now)
    for day, delta in sorted(((before, -1), (after, 1))):
        _count(db, [(name, day) for name in names], delta)


def risky(db: Sql, wanted: str, args: Tuple[object, ...], since: float, spare: int) -> Set[int]:
    """The positions of the ``wanted`` table (pos, identifier) whose device may have ``spare``
    actions or more after ``since``: every one the summary cannot clear (see the module)."""
    rows = db.all(
        "SELECT x.pos FROM (SELECT w.pos AS pos, k.identifier AS named, k.device_key AS device_key,"
        " k.members AS members, CASE WHEN k.several THEN 1 ELSE 0 END AS several,"
        " (SELECT coalesce(sum(d.actions), 0) FROM budget_days d WHERE d.identifier = w.identifier AND d.day >= ?)"
        f" AS recent FROM {wanted} LEFT JOIN budget_identities k ON k.identifier = w.identifier) x"
        " GROUP BY x.pos HAVING count(x.named) > 0 AND (count(x.named) < count(*) OR max(x.several) = 1"
        " OR count(DISTINCT x.device_key) > 1 OR max(x.members) <> count(*) OR max(x.recent) >= ?)",
        (day_of(since), *args, spare),
    )
    return {int(row[0]) for row in rows}
