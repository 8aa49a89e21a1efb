"""The callbacks the budget counts beside the log (store/unlisted.py), on SQLite and PostgreSQL:
whatever the order of sends, callbacks, confirmations, releases and requests recorded again, the
check's reading equals the plain definition (every succeeded callback of the window whose request
lists no devices); and the reading visits the unlisted callbacks only, not every callback of the
day (counted, not timed: SQLite's virtual machine steps, PostgreSQL's rows of the plan)."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import json
import random
from typing import Any, List, Set, Tuple

from conftest import ManualClock
from older_stores import sqlite_at_version
from pgserver import location  # noqa: F401 (fixture)

from uws_adapter.model.callbacks import CallbackRequest, ReportedDevice
from uws_adapter.model.devices import Device
from uws_adapter.store import Backend, open_store
from uws_adapter.store.sql import Sql
from uws_adapter.store.unlisted import REMEMBERED, UNLISTED_EVENTS, callbacks

START = 1_800_000_000.0
# The definition: what the budget counted before the events were marked (a scan of the day).
_EVERY_ONE = (
    "SELECT e.request_id, e.device, e.received_at FROM events e WHERE e.received_at > ?"
    " AND e.succeeded = TRUE AND e.service != 'NiddService' AND e.action != ''"
    " AND NOT EXISTS (SELECT 1 FROM requests r JOIN request_identifiers i ON i.request_id = r.request_id"
    " WHERE coalesce(r.known_as, r.request_id) = e.request_id)"
)


def _callback(request_id: str, imei: int, status: str = "Success", service: str = "CarrierService") -> CallbackRequest:
    return CallbackRequest(
        request_id, (ReportedDevice("IMEI", str(350000000000000 + imei)),), service=service, action="Suspend",
        status=status,
    )  # fmt: skip


def _rows(store: Backend, query: Any, since: float) -> List[Tuple[str, str, float]]:
    found = store._read("read", lambda db: query(db, since))  # type: ignore[attr-defined]
    return sorted((str(r[0]), str(r[1]), float(r[2])) for r in found)


def _same(store: Backend, since: float) -> int:
    expected = _rows(store, lambda db, at: db.all(_EVERY_ONE, (at,)), since)
    assert _rows(store, callbacks, since) == expected
    return len(expected)


def _device(n: int) -> Device:
    return Device.parse(f"IMEI:{350000000000000 + n}")


def test_the_reading_is_the_definition_whatever_the_order(location: str) -> None:
    rng = random.Random(19)
    clock = ManualClock(START)
    ids = [f"req-{n}" for n in range(6)]
    pending: List[str] = []
    found = 0
    with open_store(location, clock=clock) as store:
        for _ in range(160):
            clock.advance(rng.choice([1.0, 600.0, 3 * 3600.0, 20 * 3600.0]))
            choice = rng.random()
            request_id = rng.choice(ids)
            devices = [_device(rng.randrange(8)) for _ in range(rng.randrange(1, 3))]
            if choice < 0.35:  # a callback: of a sent request, a query, another tool's, a reservation
                target = rng.choice([*ids, "someone-else", *pending[:1]])
                store.add_callback(_callback(target, rng.randrange(8), rng.choice(["Success", "Success", "Failed"])))
            elif choice < 0.5:  # recorded with devices, or as a query (none): forgets what it named
                store.record_request(request_id, "Suspend", devices if rng.random() < 0.6 else ())
            elif choice < 0.65 or not pending:
                reservation = store.reserve_request("Suspend", devices)
                assert reservation is not None
                pending.append(reservation)
            elif choice < 0.85:  # confirmed under a RequestId, perhaps one recorded before
                store.confirm_request(pending.pop(rng.randrange(len(pending))), request_id)
            else:
                store.release_request(pending.pop(rng.randrange(len(pending))))
            for since in (clock() - 24 * 3600.0, clock() - 3 * 24 * 3600.0, 0.0):
                found += _same(store, since)
        assert found > 100  # the histories did have callbacks to count


def test_a_callback_before_its_request_is_confirmed_and_a_request_recorded_again_as_a_query(location: str) -> None:
    clock = ManualClock(START)
    with open_store(location, clock=clock) as store:
        reservation = store.reserve_request("Suspend", [_device(1)])
        assert reservation is not None
        store.add_callback(_callback("R1", 1))  # the carrier answered before the RequestId was recorded
        assert _same(store, 0.0) == 1
        store.confirm_request(reservation, "R1")
        assert _same(store, 0.0) == 0  # counted from the log now
        store.record_request("R1", "Query", ())  # the id recorded again with no devices: its callback counts
        assert _same(store, 0.0) == 1
        store.record_request("R1", "Suspend", [_device(1)])
        assert _same(store, 0.0) == 0
        # Long after: the forgotten request's row is dropped, its events marked by what the log says.
        store.record_request("R1", "Query", ())
        clock.advance(REMEMBERED + 1)
        store.record_request("R2", "Suspend", [_device(2)])
        store.record_request("R2", "Suspend", [_device(3)])  # recorded again with devices: not remembered
        store.record_request("R2", "Query", ())  # a forgetting: the old row goes
        left = store._read("read", lambda db: db.all("SELECT request_id FROM budget_demoted"))  # type: ignore[attr-defined]
        assert [r[0] for r in left] == ["R2"]
        assert _same(store, 0.0) == 1


def _listed_history(store: Backend, callbacks_stored: int) -> None:
    """``callbacks_stored`` succeeded callbacks of requests the log lists devices for."""
    for start in range(0, callbacks_stored, 50):
        request_id = f"listed-{start}"
        numbers = range(start, min(start + 50, callbacks_stored))
        store.record_request(request_id, "Suspend", [_device(n) for n in numbers])
        for n in numbers:
            store.add_callback(_callback(request_id, n))


def _work(db: Sql, since: float) -> int:
    """What one reading visits: SQLite's virtual machine steps (in hundreds), or the rows
    PostgreSQL's plan read and dropped."""
    if db.dialect.name == "sqlite":
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        db.connection.set_progress_handler(count, 100)
        try:
            callbacks(db, since)
        finally:
            db.connection.set_progress_handler(None, 0)
        return steps[0]
    db.run("ANALYZE events")  # as autovacuum does: without statistics the planner guesses
    plan = db.one("EXPLAIN (ANALYZE, FORMAT JSON) " + UNLISTED_EVENTS, (since,))
    assert plan is not None
    document = plan[0] if not isinstance(plan[0], str) else json.loads(plan[0])

    def rows(node: Any) -> int:
        own = 0
        if "Scan" in node.get("Node Type", "") and node.get("Relation Name") == "events":
            own = int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))
            own += int(node.get("Rows Removed by Filter", 0)) + int(node.get("Rows Removed by Index Recheck", 0))
        return own + sum(rows(child) for child in node.get("Plans", []))

    return rows(document[0]["Plan"])


def test_a_reading_visits_the_unlisted_callbacks_only(location: str) -> None:
    clock = ManualClock(START)
    with open_store(location, clock=clock) as store:
        read: Any = store._read  # type: ignore[attr-defined]
        since = START - 24 * 3600.0
        store.add_callback(_callback("a-query", 9000))
        store.record_request("a-query", "Query", ())
        empty = read("count", lambda db: _work(db, since))
        _listed_history(store, 2000)
        full = read("count", lambda db: _work(db, since))
        assert _same(store, since) == 1
        # Before: every callback of the day was visited (2,000 more rows, thousands more steps).
        assert full <= empty + 20, (empty, full)


def test_the_marks_of_an_older_store_are_made_on_upgrade(tmp_path: Any) -> None:

    from uws_adapter.store.sqlite_schema import SCHEMA_VERSION

    path = tmp_path / "v7.db"
    old = sqlite_at_version(path, 7)
    old.execute("INSERT INTO requests (request_id, action, api, sent_at, devices) VALUES ('listed', 'Suspend', 'soap', ?, '[]')",
                (START - 60,))  # fmt: skip
    old.execute("INSERT INTO request_identifiers VALUES ('listed', 'IMEI:350000000000001', 0)")
    for request_id in ("listed", "unlisted"):
        old.execute(
            "INSERT INTO events (service, request_id, device, action, status, succeeded, callback, content_hash,"
            " received_at) VALUES ('CarrierService', ?, 'IMEI:350000000000001', 'Suspend', 'Success', 1, '{}', 'x', ?)",
            (request_id, START - 30),
        )
    old.close()
    assert SCHEMA_VERSION >= 8
    with open_store(path, clock=ManualClock(START)) as store:
        marks: Set[Tuple[str, int]] = {
            (str(r[0]), int(r[1]))
            for r in store._read("read", lambda db: db.all("SELECT request_id, unlisted FROM events"))  # type: ignore[attr-defined]
        }
        assert marks == {("listed", 0), ("unlisted", 1)}
        assert _same(store, 0.0) == 1
