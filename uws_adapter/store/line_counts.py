"""The budget check's summary: one row per identity saying how it was named and how many requests
named it on its last day and the day before, kept up to date in the transaction that records, moves
or forgets a request, so that the check reads one row per identity instead of every request of
every line (see :mod:`.core`).

**What is kept** (``budget_identities``): the key of the device the identity was first named as
(its identities sorted, ``|``-joined, as :func:`~uws_adapter.model.devices.device_key`), that key's
size, ``several`` once any request named it as part of another set (never cleared), and the
requests naming it on ``day`` (``actions``) and on ``day - 1`` (``prior``), days being UTC days
(``floor(sent_at / 86400)``) and ``day`` the latest one seen.

**Why it is exact.** A device whose every identity was only ever named as exactly that device
(``several`` false, one key, of the device's size) has a line of those identities only, and every
request naming any of them names all of them: its actions after ``since`` are the requests naming
any one of its identities sent after ``since``, which each identity's two days bound from above
(whole days: never less) as long as ``since``'s day is one of them or the day after. A device whose
identities were never named has no recorded requests. Every other device, and every device whose
bound reaches the budget, is counted from the rows as before: the summary only decides which lines
need no rows. The counts move with ``sent_at`` (a confirmation on another day moves them) and go
down when a request is forgotten, never below 0; a request on a day older than the two kept is
added to the day before (too high is safe, too low never happens).

**Locks.** On PostgreSQL the rows are updated by concurrent transactions: each statement takes them
in identity order, so two statements never wait on each other in a circle.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Collection, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from uws_adapter.model.devices import Device
from uws_adapter.store.sql import Sql

__all__ = [
    "DAY", "MIGRATION_POSTGRES", "MIGRATION_SQLITE", "PROBE_RATIO", "add_request", "day_of", "device_of",
    "identities_of", "move_request", "risky", "take_request",
]  # fmt: skip

#: The counters' bucket, in seconds.
DAY = 24 * 60 * 60

_TABLE = """
CREATE TABLE IF NOT EXISTS budget_identities (
    identifier TEXT PRIMARY KEY,
    device_key TEXT NOT NULL,
    members INTEGER NOT NULL,
    several {boolean} NOT NULL,
    day INTEGER NOT NULL,
    actions INTEGER NOT NULL,
    prior INTEGER NOT NULL
){clustered};
"""
# Days and counts are INTEGER: PostgreSQL sums those as bigint, BIGINT ones as numeric (slower).
# SQLite keeps the rows in their key's b-tree (WITHOUT ROWID): one b-tree written per row, not two.
# Built from the rows already logged: each (request, device position) is a device key; the days
# of an identity's requests give its last day and the one before.
_FILL = """
INSERT INTO budget_identities (identifier, device_key, members, several, day, actions, prior)
    SELECT n.identifier, n.device_key, n.members, n.several, coalesce(t.day, 0),
        coalesce(sum(CASE WHEN d.day = t.day THEN d.n ELSE 0 END), 0),
        coalesce(sum(CASE WHEN d.day = t.day - 1 THEN d.n ELSE 0 END), 0)
    FROM (SELECT i.identifier AS identifier, min(k.device_key) AS device_key, min(k.members) AS members,
            count(DISTINCT k.device_key) > 1 OR count(DISTINCT k.members) > 1 AS several
        FROM request_identifiers i JOIN ({keys}) k ON k.request_id = i.request_id AND k.device = i.device
        GROUP BY i.identifier) n
    LEFT JOIN ({days}) d ON d.identifier = n.identifier
    LEFT JOIN (SELECT e.identifier AS identifier, max(e.day) AS day FROM ({days}) e GROUP BY e.identifier) t
        ON t.identifier = n.identifier
    GROUP BY n.identifier, n.device_key, n.members, n.several, t.day
"""
_DAYS = (
    "SELECT i.identifier AS identifier, {day} AS day, count(DISTINCT i.request_id) AS n FROM request_identifiers i"
    " JOIN requests r ON r.request_id = i.request_id GROUP BY i.identifier, {day}"
)
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
MIGRATION_SQLITE = _TABLE.format(boolean="INTEGER", clustered=" WITHOUT ROWID") + _FILL.format(
    keys=_SQLITE_KEYS, days=_DAYS.format(day="CAST(r.sent_at / 86400 AS INTEGER)")
)
MIGRATION_POSTGRES = _TABLE.format(boolean="BOOLEAN", clustered="") + _FILL.format(
    keys=_POSTGRES_KEYS, days=_DAYS.format(day="CAST(floor(r.sent_at / 86400) AS INTEGER)")
)

# One request more on ``excluded.day``: a later day shifts the buckets (the last day's count becomes
# the day before's when it is the next day, else both start again); a day older than the two kept
# is added to the day before (too high, never too low).
_ADD = (
    "INSERT INTO budget_identities (identifier, device_key, members, several, day, actions, prior) {{rows}}"
    " ON CONFLICT (identifier) DO UPDATE SET several = (budget_identities.several OR excluded.several"
    " OR budget_identities.device_key <> excluded.device_key),"
    " day = {greatest}(budget_identities.day, excluded.day),"
    " actions = CASE WHEN excluded.day > budget_identities.day THEN 1"
    " WHEN excluded.day = budget_identities.day THEN budget_identities.actions + 1"
    " ELSE budget_identities.actions END,"
    " prior = CASE WHEN excluded.day = budget_identities.day + 1 THEN budget_identities.actions"
    " WHEN excluded.day > budget_identities.day + 1 THEN 0"
    " WHEN excluded.day = budget_identities.day THEN budget_identities.prior"
    " ELSE budget_identities.prior + 1 END"
)


def day_of(when: float) -> int:
    return int(when // DAY)


def add_request(db: Sql, groups: Iterable[Iterable[str]], now: float) -> None:
    """Count a request sent at ``now`` (recorded or moved in the same transaction) for each
    identity of ``groups`` (a device's identities each)."""
    day = day_of(now)
    keys: Dict[str, Set[str]] = defaultdict(set)
    for group in groups:
        names = sorted(set(group))
        key = device_of(names)
        for name in names:
            keys[name].add(key)
    rows = []
    for name in sorted(keys):
        key = min(keys[name])
        rows.append((name, key, key.count("|") + 1, len(keys[name]) > 1, day, 1, 0))
    db.insert_rows(
        _ADD.format(greatest=db.dialect.greatest),
        ("identifier", "device_key", "members", "several", "day", "actions", "prior"),
        ("text", "text", "integer", "boolean", "integer", "integer", "integer"), rows,
    )  # fmt: skip


def _take(db: Sql, groups: Iterable[Iterable[str]], day: int) -> None:
    """One request less on ``day`` for each identity of ``groups`` (in identity order: see the module)."""
    greatest = db.dialect.greatest
    for where, listed in db.lists("identifier", sorted({name for group in groups for name in group})):
        db.run(
            "UPDATE budget_identities SET"
            f" actions = CASE WHEN day = ? THEN {greatest}(actions - 1, 0) ELSE actions END,"
            f" prior = CASE WHEN day - 1 = ? THEN {greatest}(prior - 1, 0) ELSE prior END"
            f" WHERE {where} AND day >= ? AND day <= ? + 1",
            (day, day, *listed, day, day),
        )


def _groups(db: Sql, request_id: str) -> List[List[str]]:
    """The identities of each device of the request ``request_id``, from its rows."""
    groups: Dict[int, List[str]] = defaultdict(list)
    for name, position in db.all("SELECT identifier, device FROM request_identifiers WHERE request_id = ?",
                                 (request_id,)):  # fmt: skip
        groups[int(position)].append(str(name))
    return list(groups.values())


def device_of(names: Sequence[str]) -> str:
    """The key a device of the identities ``names`` is kept under (``device_key`` of the summary)."""
    return "|".join(sorted(names))


def identities_of(devices: Sequence[Device]) -> List[List[str]]:
    """The identities of each of ``devices``, each once (computed once per request: 10,000 lines
    are 20,000 normalisations). What :func:`~uws_adapter.model.devices.identity` does, less what a
    :class:`~uws_adapter.model.devices.DeviceIdentifier` has done already (its kind upper-case and
    stripped, its value stripped) and with no de-duplication (a device names each kind once, so
    its identities differ): half the time for 10,000 lines."""
    return [[f"{i.kind}:{i.identifier.upper()}" for i in device.identifiers] for device in devices]


def take_request(db: Sql, request_id: str) -> None:
    """Uncount the request ``request_id`` (about to be forgotten in the same transaction)."""
    sent = db.one("SELECT sent_at FROM requests WHERE request_id = ?", (request_id,))
    if sent is not None:
        _take(db, _groups(db, request_id), day_of(float(sent[0])))


def move_request(db: Sql, request_id: str, now: float, sent_at: Optional[float] = None) -> None:
    """The request ``request_id`` counts as sent at ``now`` from now on: its counts follow it when
    that is another day. ``sent_at``: when it counts as sent until now, if the caller read it."""
    if sent_at is None:
        sent = db.one("SELECT sent_at FROM requests WHERE request_id = ?", (request_id,))
        if sent is None:
            return
        sent_at = float(sent[0])
    if day_of(sent_at) == day_of(now):
        return
    groups = _groups(db, request_id)
    _take(db, groups, day_of(sent_at))
    add_request(db, groups, now)


# A summary row ``k`` that does not clear the device ``{key}`` it was looked up for (see risky()).
_KEEPS = (
    "k.device_key <> {key} OR k.several OR k.day >= ? + 2"
    " OR CASE WHEN k.day >= ? THEN k.actions ELSE 0 END + CASE WHEN k.day > ? THEN k.prior ELSE 0 END >= ?"
)
# PostgreSQL: the keys as one string, split on the server into keys and each key into its
# identities (a third of the text the (key, identity) pairs took, one statement), joined to the
# summary as the planner likes (a hash of the whole summary: the fastest while it is small), or
# (past PROBE_RATIO) each looked up by its key: a LATERAL ... LIMIT 1 is never made a hash join.
_POSTGRES_RISKY = (
    "SELECT DISTINCT w.device_key FROM unnest({keys}) AS w(device_key)"
    " CROSS JOIN LATERAL unnest(string_to_array(w.device_key, '|')) AS i(identifier)"
    " {join} WHERE " + _KEEPS.format(key="w.device_key")
)
_HASHED = "JOIN budget_identities k ON k.identifier = i.identifier"
_PROBED = "CROSS JOIN LATERAL (SELECT * FROM budget_identities k WHERE k.identifier = i.identifier LIMIT 1) k"
#: PostgreSQL looks each wanted identity up by its key once the summary holds more than this many
#: rows per identity wanted: its planner, costing a lookup as a read from disk, hash-joined the
#: whole summary instead (a million rows: 0.5-0.65 s for 10,000 lines, where their 20,000 lookups
#: take 55-70 ms; a summary of 20,000 rows: the hash 26-46 ms, the lookups 62-113 ms).
PROBE_RATIO = 10.0
# SQLite, a device of one or two identities: its key alone is bound, its identities cut from it
# (the first is '' for a device of one, and no identity is ''); LEFT JOINs keep the written order.
_PAIRED_KEEPS = "(k.identifier IS NOT NULL AND (" + _KEEPS.format(key="w.device_key") + "))"
_SQLITE_RISKY = (
    "WITH w(device_key) AS (VALUES {rows}) SELECT w.device_key FROM w"
    " LEFT JOIN budget_identities a ON a.identifier = substr(w.device_key, 1, instr(w.device_key, '|') - 1)"
    " LEFT JOIN budget_identities b ON b.identifier = substr(w.device_key, instr(w.device_key, '|') + 1)"
    " WHERE " + _PAIRED_KEEPS.replace("k.", "a.") + " OR " + _PAIRED_KEEPS.replace("k.", "b.")
)
# SQLite, a device of three identities or more (rare): a row per identity, with its device's key.
_SQLITE_RISKY_EACH = (
    "{with_wanted} SELECT DISTINCT w.device_key FROM w CROSS JOIN budget_identities k"
    " ON k.identifier = w.identifier WHERE " + _KEEPS.format(key="w.device_key")
)


def risky(db: Sql, keys: Collection[str], since: float, spare: int) -> Set[str]:
    """The keys among ``keys`` (devices' keys, :func:`device_of`: their identities, which hold no
    ``|``, sorted and ``|``-joined) whose device may have ``spare`` actions or more after
    ``since``: every one the summary cannot clear (see the module). A device is cleared when none
    of its identities' rows says otherwise: each row names the device's own key, was never named
    otherwise, is recent enough for its two days to cover ``since``, and counts fewer than
    ``spare`` requests there. A row per identity decides by itself (no grouping, and only the
    devices kept come back), and that keeps every device the summary cannot bound: an identity of
    the device without a row beside one with a row means the latter was named without it (its key
    is another); a device cleared has every identity's count under ``spare`` (each at least its
    actions), so their mean is too. The identities are cut from the keys by the database: 10,000
    strings bound where (key, identity) pairs were 40,000 (issue 19)."""
    day = day_of(since)
    checks = (day, day, day, spare)
    if db.dialect.list_limit is None:
        source, bound = db.text_array(list(keys))
        # The planner's estimate of the summary's rows (-1 or 0 before its first ANALYZE: small).
        rows = db.one("SELECT reltuples FROM pg_class WHERE oid = to_regclass('budget_identities')")
        summary = float(rows[0]) if rows is not None else 0.0
        # The identities wanted are counted only when the keys alone do not decide.
        small = summary <= PROBE_RATIO * len(keys) or summary <= PROBE_RATIO * sum(k.count("|") + 1 for k in keys)
        join = _HASHED if small else _PROBED
        return {str(row[0]) for row in db.all(_POSTGRES_RISKY.format(keys=source, join=join), (bound, *checks))}
    found: Set[str] = set()
    few: List[str] = []
    more: List[Tuple[str, str]] = []  # (key, identity) of the devices of three identities or more
    for key in keys:
        if key.count("|") < 2:
            few.append(key)
        else:
            more.extend((key, name) for name in key.split("|"))
    step = db.dialect.list_limit - 2 * len(checks)
    for start in range(0, len(few), step):
        piece = few[start : start + step]
        found.update(
            str(row[0])
            for row in db.all(_SQLITE_RISKY.format(rows=", ".join(["(?)"] * len(piece))), (*piece, *checks, *checks))
        )
    for with_wanted, args in db.texts("w", ("device_key", "identifier"), more):
        found.update(
            str(row[0]) for row in db.all(_SQLITE_RISKY_EACH.format(with_wanted=with_wanted), (*args, *checks))
        )
    return found
