"""The SQL core: every store role but the callback write hot path, written once against the dialect
of :mod:`.sql` (reads, tracking, the request log and the budget reservations, the handler queue of
:mod:`.handler_queue`, the bridge's session rows). A backend mixes :class:`SqlCore` in and gives it
connections and transactions (:class:`.sql.SqlAccess`); its own module keeps only those, its
locking, its migrations and the hot path (:mod:`.sqlite_writes`, :mod:`.postgres_writes`).

The budget reservation: a device-list request is recorded *before* it is sent, as a pending request
(``pending:<uuid>``) written in the same transaction as the count of its lines' recent actions, and
that transaction takes turns with every other reservation (SQLite: the write lock of the file;
PostgreSQL: an advisory lock), so that two senders — threads, processes or instances — never both
see a line's last free action. The sender then confirms it under the carrier's RequestId, releases it
when the request provably never left, or keeps it (``outcome-unknown:<uuid>``) when the outcome is
unknown: the carrier may have acted on it.

A confirmed reservation keeps its id as the key of its rows; the carrier's RequestId is written
beside it (:mod:`.names`), and every lookup by RequestId goes by that name.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

from uws_adapter.errors import StoreError, shown
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import Device
from uws_adapter.store import dead_letters as dead_letter_sql
from uws_adapter.store import line_counts, unlisted
from uws_adapter.store.dead_letters import DeadLetter, DeadLetterTotals, letter_of, purge
from uws_adapter.store.handler_queue import HandlerQueueSql, pg_text
from uws_adapter.store.interfaces import CallbackWrite, EventPages, RequestStatus, StoredEvent, Write
from uws_adapter.store.names import CONFIRMED_SAME_DAY, RESERVED_AT, key_of, turn_of
from uws_adapter.store.sql import Sql, bound_int, bound_limit, bound_text
from uws_adapter.store.tracking_rows import LineActions, line_actions, request_status

__all__ = [
    "BUDGET_LOCK", "PENDING", "READY_MEMORY", "UNKNOWN", "Admit", "CommitHealth", "Job", "LineActions", "SqlCore",
    "newer_schema", "next_group", "pg_text", "stored",
]  # fmt: skip

T = TypeVar("T")
J = TypeVar("J")
S = TypeVar("S", bound="SqlCore")
#: Decides a reservation from its lines' recent actions: None refuses it (nothing is written),
#: otherwise whether it goes out over the budget on purpose (recorded as forced).
Admit = Callable[[LineActions], Optional[bool]]
#: The request id prefix of a reservation not yet confirmed (:data:`.unlisted.PENDING`), and of
#: one whose outcome is unknown.
PENDING, UNKNOWN = unlisted.PENDING, "outcome-unknown:"
#: The key budget reservations take turns on (PostgreSQL's advisory lock): "budget" on a keypad.
BUDGET_LOCK = 283_348
_TABLES = ("events", "attempts", "dead_letters", "requests", "handler_queue")


#: How long a failed commit keeps a store not ready (unless a later commit succeeds), in seconds:
#: a readiness probe then says what the last callbacks met, not what one probe got through.
READY_MEMORY = 5.0


class CommitHealth:
    """How the last commit went, for a readiness probe (plain assignments: safe across threads)."""

    def __init__(self) -> None:
        self.failed_at: Optional[float] = None

    def record(self, ok: bool, now: float) -> None:
        self.failed_at = None if ok else now

    def failing(self, now: float) -> bool:
        """The last commit failed less than :data:`READY_MEMORY` seconds ago."""
        return self.failed_at is not None and 0 <= now - self.failed_at < READY_MEMORY


def newer_schema(shown: str, version: int, supported: int) -> StoreError:
    """The refusal of a store written by a newer release, whose meaning this one cannot know."""
    return StoreError(
        f"{shown} has store schema {version}, written by a newer uws-adapter; this release reads schema "
        f"{supported} at most: upgrade uws-adapter, or use another database"
    )


def another_programs(shown_as: str, kind: str, tables: Sequence[str], fix: str) -> StoreError:
    """The refusal of a database that holds ``tables`` but no store schema: another program's,
    into which ours must not be written. The names are the database's: one with a control
    character (a line break, a terminal escape) or a long one is quoted as an error quotes a
    value; plain ones are shown as they are."""
    listed = ", ".join(t if t.isprintable() and len(t) <= 80 else shown(t) for t in sorted(tables)[:5])
    listed += ", ..." if len(tables) > 5 else ""
    return StoreError(
        f"cannot open the store {shown_as}: it is another program's {kind} (tables: {listed}), not a uws-adapter"
        f" store; {fix}"
    )


class Job:
    """One write handed to a backend's writer thread, and how it went."""

    def __init__(self, work: Any, durable: bool = True) -> None:
        self.work = work  # what the backend's writer runs: a function of a connection, or a Write
        self.durable = durable  # False: committed, but no fsync of its own (see Store.write)
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None

    def finish(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        self.result, self.error = result, error
        self.done.set()

    def wait(self, timeout: float, describe: Callable[[BaseException], str] = str) -> Any:
        """Its result once committed; StoreError when it failed or no commit came within ``timeout``."""
        if not self.done.wait(timeout):
            raise StoreError(f"no commit within {timeout} s")
        return stored(self.result, self.error, describe)


def stored(result: Any, error: Optional[BaseException], describe: Callable[[BaseException], str] = str) -> Any:
    """A committed write's ``result``, or the StoreError of its ``error``."""
    if error is not None:
        raise StoreError(f"could not store: {describe(error)}") from error
    return result


def next_group(jobs: queue.Queue[Optional[J]], max_batch: int) -> Optional[List[J]]:
    """The next group for a writer thread: the first job (waiting for it) and up to ``max_batch`` in
    all of those queued behind it; None when the writer is to stop (the sentinel None, which stays
    queued for the next call when it follows jobs)."""
    first = jobs.get()
    if first is None:
        return None
    group = [first]
    while len(group) < max_batch:
        try:
            more = jobs.get_nowait()
        except queue.Empty:
            break
        if more is None:
            jobs.put(None)
            break
        group.append(more)
    return group


class SqlCore(HandlerQueueSql, EventPages):
    """The store roles written once; a backend provides the connections (:class:`.sql.SqlAccess`)
    and the hot path."""

    def apply(self, write: Write, *, timeout: float = 30.0) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Callbacks and events --------------------------------------------------------------------------

    def add_callback(self, callback: CallbackRequest, handlers: Sequence[str] = ()) -> Tuple[int, bool]:
        """Store a callback durably; (event id, whether it is a new event). A re-send adds an
        attempt, and flags the event when its content differs from the first delivery."""
        result: Tuple[int, bool] = self.apply(CallbackWrite(callback, tuple(handlers)))
        return result

    def events(self, *, request_id: Optional[str] = None, after_id: int = 0, limit: int = 1000) -> List[StoredEvent]:
        """Events in arrival order, after ``after_id`` (poll with the last id you saw)."""
        after_id, limit = bound_int("after_id", after_id), bound_limit(limit)
        request_id = bound_text("request_id", request_id)
        where, args = "e.id > ?", [after_id]
        if request_id is not None:
            where += " AND e.request_id = ?"
            args.append(request_id)  # type: ignore[arg-type]
        query = (
            "SELECT e.id, e.callback, (SELECT count(*) FROM attempts a WHERE a.event_id = e.id),"
            f" e.differs, e.received_at FROM events e WHERE {where} ORDER BY e.id LIMIT ?"
        )
        rows = self._read("read events", lambda db: db.all(query, (*args, limit)))
        return [
            StoredEvent(int(r[0]), CallbackRequest.from_dict(json.loads(r[1])), int(r[2]), bool(r[3]), float(r[4]))
            for r in rows
        ]

    def counts(self) -> Dict[str, int]:
        """Rows per table."""

        def count(db: Sql) -> Dict[str, int]:
            return {table: int((db.one(f"SELECT count(*) FROM {table}") or (0,))[0]) for table in _TABLES}

        return self._read("count rows", count)

    def status(self, request_id: str) -> RequestStatus:
        """Per device of a request: succeeded, failed (fault code) or still pending."""
        bound_text("request_id", request_id)
        return self._snapshot("read the request's status", lambda db: request_status(db, request_id))

    # The request log and the budget reservations ---------------------------------------------------
    # Committed without an fsync of their own (durable=False): every process and instance sees them at
    # once and a process that dies keeps them, so the budget stays exact; a power loss or an OS crash
    # may undo the last ones until the next durable commit (the request's callbacks, which the budget
    # counts as well). An fsync here cost each request sent a millisecond or more.

    def record_request(
        self, request_id: str, action: str, devices: Sequence[Device], *, api: str = "soap", forced: bool = False
    ) -> None:
        """Remember a sent request (``forced``: over the budget on purpose); one recorded under the
        same id before is replaced, its devices included."""
        self._transact(
            "record the request",
            lambda db: _insert_request(db, request_id, action, devices, api, self.clock(), forced),
            durable=False,
        )

    def recent_actions(self, identities: Sequence[str], since: float) -> LineActions:
        """See :meth:`uws_adapter.store.interfaces.RequestLog.recent_actions`."""
        wanted = sorted(set(identities))
        if not wanted:
            return {}
        return self._snapshot("count recent actions", lambda db: line_actions(db, wanted, since))

    def device_actions(self, devices: Sequence[Device], since: float, *, at_least: int = 1) -> LineActions:
        """See :meth:`uws_adapter.store.interfaces.RequestLog.device_actions`."""
        names = line_counts.identities_of(devices)
        return self._snapshot("count recent actions", lambda db: _lines_at_risk(db, names, since, at_least))

    def reserve_request(
        self, action: str, devices: Sequence[Device], *, api: str = "soap", since: Optional[float] = None,
        admit: Admit = lambda found: False, at_least: int = 1,
    ) -> Optional[str]:  # fmt: skip
        """Reserve a device-list request before it is sent (see the module and
        :meth:`uws_adapter.store.interfaces.RequestLog.reserve_request`)."""
        reservation = f"{PENDING}{uuid.uuid4()}"
        names = line_counts.identities_of(devices)  # once: the check and the record both need them

        def work(db: Sql) -> Optional[str]:
            db.take_turns(BUDGET_LOCK)
            forced = admit(_lines_at_risk(db, names, since, at_least) if since is not None else {})
            if forced is None:
                return None
            # A fresh id: nothing was ever recorded under it, so there is nothing to forget first.
            _insert_request(db, reservation, action, devices, api, self.clock(), forced, names, fresh=True)
            return reservation

        return self._transact("reserve the request", work, durable=False)

    def confirm_request(self, reservation: str, request_id: str) -> None:
        """The reserved request went out and is known as ``request_id`` from now on (an older
        request recorded under that id is replaced, as :meth:`record_request` does)."""

        def work(db: Sql) -> None:
            now = self.clock()
            if reservation.startswith(PENDING) and request_id != reservation:
                db.take_turns(turn_of(request_id))  # before the name is looked up (see .names)
                day = line_counts.day_of(now) * line_counts.DAY
                if key_of(db, request_id) is None and db.run(
                    CONFIRMED_SAME_DAY, (request_id, now, reservation, day, day + line_counts.DAY)
                ):
                    # Most often: a reservation not yet confirmed, made today (its counts stay on
                    # their day), named by a RequestId nothing is known by, in one statement (issue 19.3).
                    unlisted.listed(db, request_id)  # its callbacks may have come first
                    return
            # A reservation not yet confirmed is known by its key: one look finds it and when it was
            # made. Anything else (released, or confirmed already) is looked up by its name.
            row = db.one(RESERVED_AT, (reservation,)) if reservation.startswith(PENDING) else None
            key: Optional[str] = reservation if row is not None else key_of(db, reservation)
            if key is None:  # released, or confirmed already: nothing is known by that name
                return
            db.take_turns(turn_of(request_id))  # before the name is looked up (see .names)
            # Most often nothing was recorded under the carrier's new RequestId: one look says so,
            # where forgetting it read and deleted by that id four times over.
            if request_id != reservation and key_of(db, request_id) is not None:
                relisted = db.one("SELECT 1 FROM request_identifiers WHERE request_id = ? LIMIT 1", (key,))
                _forget_request(db, request_id, now, relisted=relisted is not None)
            line_counts.move_request(db, key, now, float(row[0]) if row is not None else None)
            # Its rows keep their key (see .names): only its name and time change.
            db.run("UPDATE requests SET known_as = ?, sent_at = ? WHERE request_id = ?", (request_id, now, key))
            unlisted.listed(db, request_id)  # its callbacks may have come first

        self._transact("confirm the request", work, durable=False)

    def release_request(self, reservation: str) -> None:
        """The reserved request provably never left: its lines' reservation is given back."""

        def work(db: Sql) -> None:
            _forget_request(db, reservation, self.clock(), relisted=False)

        self._transact("release the reservation", work, durable=False)

    # The bridge's session rows (the policy is uws_adapter.bridge.sessions) ------------------------
    # Committed without an fsync of their own but LogOut's: a power loss may undo the last ones, and
    # a legacy client then logs in again; a logout undone would bring a token back.

    def open_session(self, token_sha256: str, now: float, forget_before: Optional[float]) -> None:
        def work(db: Sql) -> None:
            if forget_before is not None:
                db.run("DELETE FROM bridge_sessions WHERE last_used < ?", (forget_before,))
            db.run("INSERT INTO bridge_sessions (token_sha256, last_used) VALUES (?, ?)", (token_sha256, now))

        self._transact("record the session", work, durable=False)

    def session_last_used(self, token_sha256: str) -> Optional[float]:
        row = self._glance(
            "read the session",
            lambda db: db.one("SELECT last_used FROM bridge_sessions WHERE token_sha256 = ?", (token_sha256,)),
        )
        return None if row is None else float(row[0])

    def touch_session(self, token_sha256: str, now: float) -> None:
        self._transact(
            "note the session's use",
            lambda db: db.run(
                f"UPDATE bridge_sessions SET last_used = {db.dialect.greatest}(last_used, ?) WHERE token_sha256 = ?",
                (now, token_sha256),
            ),
            durable=False,
        )

    def close_session(self, token_sha256: str) -> None:
        self._transact(
            "forget the session",
            lambda db: db.run("DELETE FROM bridge_sessions WHERE token_sha256 = ?", (token_sha256,)),
        )

    # Dead letters, for the operator (uws-adapter dead-letters; see .dead_letters) -----------------

    def dead_letters(self, *, after_id: int = 0, limit: int = 100, bodies: bool = False) -> List[DeadLetter]:
        """Letters in the order they were kept, after ``after_id``; with their bodies if ``bodies``."""
        after_id, limit = bound_int("after_id", after_id), bound_limit(limit)
        query = dead_letter_sql.LIST.format(", body" if bodies else "")
        rows = self._read("read the dead letters", lambda db: db.all(query, (after_id, limit)))
        return [letter_of(row) for row in rows]

    def dead_letter(self, letter_id: int) -> Optional[DeadLetter]:
        """One letter with its body (as stored: redacted when it was kept), or None."""
        letter_id = bound_int("letter_id", letter_id)
        row = self._read("read the dead letter", lambda db: db.one(dead_letter_sql.ONE, (letter_id,)))
        return letter_of(row) if row is not None else None

    def dead_letter_totals(self) -> DeadLetterTotals:
        row = self._read("read the dead letters' total", lambda db: db.one(dead_letter_sql.TOTALS))
        assert row is not None  # the schema's one row
        return DeadLetterTotals(int(row[0]), int(row[1]), None if row[2] is None else int(row[2]))

    def purge_dead_letters(self, *, ids: Sequence[int] = (), before: Optional[float] = None) -> int:
        """Delete the letters ``ids``, or those kept before ``before`` (neither: all); how many."""
        ids = [bound_int("ids", letter_id) for letter_id in ids]
        return self._transact("purge the dead letters", lambda db: purge(db, ids, before))


def _insert_request(
    db: Sql, request_id: str, action: str, devices: Sequence[Device], api: str, now: float, forced: bool,
    names: Optional[List[List[str]]] = None, *, fresh: bool = False,
) -> None:  # fmt: skip
    """Record a request, replacing one recorded under the same id (its devices included);
    ``names``: the identities of each device (:func:`.line_counts.identities_of`), if known;
    ``fresh``: the id was made just now (a reservation's), so none can be recorded under it."""
    names = line_counts.identities_of(devices) if names is None else names
    if not fresh:
        db.take_turns(turn_of(request_id))  # before the name is looked up (see .names)
        _forget_request(db, request_id, now, relisted=bool(names))
    db.run(
        "INSERT INTO requests (request_id, action, api, sent_at, devices, forced) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (request_id) DO UPDATE SET known_as = NULL, action = excluded.action, api = excluded.api,"
        " sent_at = excluded.sent_at, devices = excluded.devices, forced = excluded.forced",
        (request_id, action, api, now, json.dumps([str(d) for d in devices]), forced),
    )
    db.insert_rows(
        "INSERT INTO request_identifiers (request_id, identifier, device) {rows} ON CONFLICT DO NOTHING",
        ("request_id", "identifier", "device"), ("text", "text", "integer"),
        [(request_id, name, position) for position, group in enumerate(names) for name in group],
    )  # fmt: skip
    line_counts.add_request(db, names, now)
    if names and not request_id.startswith(PENDING):  # no callback carries a reservation's id
        unlisted.listed(db, request_id)


def _forget_request(db: Sql, request_id: str, now: float, *, relisted: bool) -> None:
    """Forget the request known as ``request_id``, its devices included; ``relisted``: it is
    recorded again with devices in this transaction (its callbacks stay counted from the log)."""
    key = key_of(db, request_id)
    if key is None:
        return
    if (
        not relisted
        and not request_id.startswith(PENDING)
        and db.one("SELECT 1 FROM request_identifiers WHERE request_id = ? LIMIT 1", (key,))
    ):
        # A reservation reads the marks, the forgotten requests and the log in several statements
        # (PostgreSQL's READ COMMITTED): a request whose devices are forgotten between two of them
        # would be counted by none. So this takes turns with the reservations, before any row lock
        # (no cycle with them); rare: a RequestId recorded again without devices.
        db.take_turns(BUDGET_LOCK)
        unlisted.forgotten(db, request_id, now)
    line_counts.take_request(db, key)
    db.run("DELETE FROM request_identifiers WHERE request_id = ?", (key,))
    db.run("DELETE FROM requests WHERE request_id = ?", (key,))


def _lines_at_risk(db: Sql, names: List[List[str]], since: float, at_least: int) -> LineActions:
    """:func:`.tracking_rows.line_actions` of the devices whose line may have ``at_least`` actions. The callbacks'
    requests, which the log's counts do not see, can add at most as many as there are, so a device
    is left out only when its requests and all of them together stay under ``at_least``. Its
    requests are bounded first from the summary (:mod:`.line_counts`: a row or two per identity);
    on SQLite the devices it cannot clear are counted exactly in one query, and only the devices
    kept after that are read row by row."""
    callbacks = unlisted.callbacks(db, since)
    spare = at_least - len({row[0] for row in callbacks})
    if spare > 0 and names:
        keys = [line_counts.device_of(group) for group in names]
        kept_keys = line_counts.risky(db, list(dict.fromkeys(keys)), since, spare)
        names = [group for group, key in zip(names, keys) if key in kept_keys]
        if names and db.dialect.count_first:
            kept = _counted(db, [(p, name) for p, group in enumerate(names) for name in group], since, spare)
            names = [group for p, group in enumerate(names) if p in kept]
    return line_actions(db, sorted({name for group in names for name in group}), since, callbacks) if names else {}


def _counted(db: Sql, pairs: Sequence[Tuple[int, str]], since: float, spare: int) -> Set[int]:
    """The positions among ``pairs`` whose line had ``spare`` requests or more after ``since``,
    counted in one query (distinct requests over the lines of its identifiers, as
    :func:`.tracking_rows.line_actions` counts them)."""
    wanted, args = db.pairs("budget_wanted", "w", pairs)
    join = db.dialect.ordered_join  # from the wanted identities outwards, one index step each
    rows = db.all(
        # The identifiers of each device's line first (once each), then their requests.
        f"WITH line AS (SELECT DISTINCT w.pos AS pos, b.identifier AS member FROM {wanted}"
        f" {join} request_identifiers a ON a.identifier = w.identifier"
        f" {join} request_identifiers b ON b.request_id = a.request_id AND b.device = a.device)"
        f" SELECT line.pos FROM line {join} request_identifiers i ON i.identifier = line.member"
        f" {join} requests r ON r.request_id = i.request_id AND r.sent_at > ?"
        " GROUP BY line.pos HAVING count(DISTINCT i.request_id) >= ?",
        (*args, since, spare),
    )
    return {int(row[0]) for row in rows}
