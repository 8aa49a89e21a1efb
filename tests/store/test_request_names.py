"""A request's rows keep the key they were recorded under (a reservation's ``pending:<uuid>``) and
the RequestId it is known by is a column beside it (see uws_adapter/store/core.py): every lookup by
RequestId finds a confirmed reservation, and finds nothing under its reservation's id, on both
backends."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, List, Sequence

import pytest
from older_stores import sqlite_at_version
from pgserver import location  # noqa: F401 (a fixture)

from uws_adapter.model.callbacks import CallbackRequest, ReportedDevice
from uws_adapter.model.devices import Device, identity
from uws_adapter.store import Backend, open_store
from uws_adapter.store.sql import Sql
from uws_adapter.store.sqlite import Store
from uws_adapter.store.sqlite_schema import SCHEMA_VERSION
from uws_adapter.store.unlisted import callbacks

START = 1_800_000_000.0
ONE, TWO, THREE = (Device.parse(f"IMEI:35000000000000{n}") for n in (1, 2, 3))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _read(store: Backend, work: Callable[[Sql], List[Sequence[Any]]]) -> List[Sequence[Any]]:
    found: List[Sequence[Any]] = store._read("test", work)  # type: ignore[union-attr]
    return found


def _rows(store: Backend, sql: str) -> List[Sequence[Any]]:
    return _read(store, lambda db: db.all(sql))


def _read_callbacks(store: Backend) -> List[Sequence[Any]]:
    return _read(store, lambda db: callbacks(db, START - 86400))


def _callback(request_id: str, device: Device) -> CallbackRequest:
    return CallbackRequest(
        request_id, (ReportedDevice("IMEI", device.identifiers[0].identifier),), service="CarrierService",
        action="Suspend", status="Success",
    )  # fmt: skip


def test_a_confirmed_reservation_is_found_by_its_request_id_and_keeps_its_rows(location: str) -> None:
    clock = Clock()
    with open_store(location, clock=clock) as store:
        reservation = store.reserve_request("Suspend", [ONE, TWO], api="rest", since=START - 86400)
        assert reservation is not None
        assert reservation.startswith("pending:")
        store.add_callback(_callback("R1", ONE))  # the callback may come before the confirmation
        assert [row[0] for row in _read_callbacks(store)] == ["R1"]  # counted from the callback meanwhile
        clock.now += 5
        store.confirm_request(reservation, "R1")

        status = store.status("R1")
        assert (status.total, status.succeeded, status.pending) == (2, (str(ONE),), (str(TWO),))
        assert status.sent_at == START + 5
        assert store.status(reservation).total == 0  # nothing is known by the reservation's id now
        assert store.recent_actions([identity("IMEI", "350000000000002")], START - 1) == {
            "IMEI:350000000000002": [("R1", START + 5)]
        }
        assert _read_callbacks(store) == []  # listed now: counted from the log, once
        # What the confirmation wrote: the name beside the key, not the rows renamed.
        assert {str(r[0]) for r in _rows(store, "SELECT request_id FROM request_identifiers")} == {reservation}
        assert [tuple(r) for r in _rows(store, "SELECT request_id, known_as FROM requests")] == [(reservation, "R1")]


def test_a_request_id_recorded_again_replaces_the_confirmed_request(location: str) -> None:
    clock = Clock()
    with open_store(location, clock=clock) as store:
        first = store.reserve_request("Suspend", [ONE], api="rest", since=START - 86400)
        assert first is not None
        store.confirm_request(first, "R1")
        clock.now += 10
        store.record_request("R1", "Restore", [TWO])  # the same RequestId again: it replaces the first
        assert store.status("R1").pending == (str(TWO),)
        assert store.recent_actions([identity("IMEI", "350000000000001")], START - 1) == {}
        clock.now += 10
        second = store.reserve_request("Suspend", [THREE], api="rest", since=START - 86400)
        assert second is not None
        store.confirm_request(second, "R1")  # and a reservation confirmed under it replaces that one
        assert store.status("R1").pending == (str(THREE),)
        assert store.recent_actions([identity("IMEI", "350000000000002")], START - 1) == {}
        assert store.counts()["requests"] == 1
        assert {str(r[0]) for r in _rows(store, "SELECT request_id FROM request_identifiers")} == {second}

        # A confirmation of a reservation released, or confirmed already, changes nothing.
        store.confirm_request(second, "R2")
        store.confirm_request("pending:gone", "R2")
        assert store.status("R2").total == 0
        assert store.status("R1").total == 1


def test_an_unknown_outcome_is_known_by_its_stand_in_and_a_release_forgets_its_rows(location: str) -> None:
    clock = Clock()
    with open_store(location, clock=clock) as store:
        kept = store.reserve_request("Suspend", [ONE], api="rest", since=START - 86400)
        released = store.reserve_request("Suspend", [TWO], api="rest", since=START - 86400)
        assert kept is not None
        assert released is not None
        stand_in = "outcome-unknown:" + kept.partition(":")[2]
        store.confirm_request(kept, stand_in)
        store.release_request(released)
        assert store.status(stand_in).pending == (str(ONE),)
        assert store.recent_actions([identity("IMEI", "350000000000001"), identity("IMEI", "350000000000002")],
                                    START - 1) == {"IMEI:350000000000001": [(stand_in, START)]}  # fmt: skip
        assert {str(r[0]) for r in _rows(store, "SELECT request_id FROM request_identifiers")} == {kept}


@pytest.mark.parametrize("version", [8, 9])
def test_an_older_sqlite_store_keeps_its_requests_known_by_their_ids(tmp_path: Path, version: int) -> None:
    """Schema 9 adds the names (nothing to rewrite: every request so far is known by its key),
    schema 10 moves the devices into their key's b-tree: the rows stay and are found as before."""
    path = tmp_path / "old.db"
    old = sqlite_at_version(path, version)
    old.execute(
        "INSERT INTO requests (request_id, action, api, sent_at, devices) VALUES ('R0', 'Suspend', 'soap', ?, ?)",
        (START, '["IMEI:350000000000001", "IMEI:350000000000002"]'),
    )
    old.executemany(
        "INSERT INTO request_identifiers (request_id, identifier, device) VALUES ('R0', ?, ?)",
        [("IMEI:350000000000001", 0), ("IMEI:350000000000002", 1)],
    )
    old.close()
    with Store(path, clock=Clock()) as store:
        assert store.status("R0").pending == (str(ONE), str(TWO))
        assert store.recent_actions([identity("IMEI", "350000000000002")], START - 1) == {
            "IMEI:350000000000002": [("R0", START)]
        }
        store.record_request("R0", "Restore", [THREE])  # recorded again under its id: replaced
        assert store.status("R0").pending == (str(THREE),)
        schema = dict(_rows(store, "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'request_identifiers'"))
    assert Store.schema_version(path) == SCHEMA_VERSION
    assert "WITHOUT ROWID" in schema["request_identifiers"]
    assert {"request_identifiers_by_device", "request_identifiers_lines"} <= set(schema)


def test_a_callback_may_come_before_sent_at_which_is_when_the_answer_was_recorded(location: str) -> None:
    # status --json showed sent_at after last_callback_at: the carrier (and the emulator) queues a
    # request's callbacks as it accepts it, before its answer reaches the client, which confirms the
    # request (sent_at) only then. Kept so: the budget counts a request from that later time, never
    # from before the carrier could have had it (docs/cli-notes.md says what sent_at is).
    clock = Clock()
    with open_store(location, clock=clock) as store:
        reservation = store.reserve_request("Suspend", [ONE])
        assert reservation is not None
        clock.now += 1.0
        store.add_callback(CallbackRequest("req-fast", (ReportedDevice("IMEI", ONE.identifiers[0].identifier),),
                                           service="CarrierService", action="Suspend", status="Success"))  # fmt: skip
        clock.now += 1.0
        store.confirm_request(reservation, "req-fast")
        status = store.status("req-fast")
    assert status.last_callback_at == START + 1.0
    assert status.sent_at == START + 2.0


MIDNIGHT = 20834 * 86400.0  # a UTC day's first second, after START


@pytest.mark.parametrize(
    ("reserved_at", "confirmed_at"),
    [
        (MIDNIGHT - 0.001, MIDNIGHT),  # the day before: its count moves to the confirmation's day
        (MIDNIGHT, MIDNIGHT + 86399.999),  # the same day, at both its ends: it stays
        (MIDNIGHT + 10, MIDNIGHT + 5),  # the wall clock stepped back: still the same day
    ],
)
def test_a_confirmation_counts_the_request_on_the_day_it_is_sent_from_now_on(
    location: str, reserved_at: float, confirmed_at: float
) -> None:
    """The one-statement confirmation (a reservation made on the confirmation's day) and the one
    that moves the budget counts (another day) leave the summary as the log says."""
    clock = Clock()
    with open_store(location, clock=clock) as store:
        clock.now = reserved_at
        reservation = store.reserve_request("Suspend", [ONE], api="rest", since=reserved_at - 86400)
        assert reservation is not None
        clock.now = confirmed_at
        store.confirm_request(reservation, "R1")
        assert store.status("R1").sent_at == confirmed_at
        assert [tuple(r) for r in _rows(store, "SELECT identifier, day, actions, prior FROM budget_identities")] == [
            ("IMEI:350000000000001", int(confirmed_at // 86400), 1, 0)
        ]
        assert store.recent_actions([identity("IMEI", "350000000000001")], confirmed_at - 86400) == {
            "IMEI:350000000000001": [("R1", confirmed_at)]
        }


def test_a_reservation_confirmed_on_its_day_is_named_in_one_statement(tmp_path: Path) -> None:
    """Its time is not read first (issue 19.3): the name looked up, the row named, its callbacks
    marked. A reservation of another day, or a name taken, goes the longer way (the test above,
    test_a_request_id_recorded_again_replaces_the_confirmed_request)."""
    with Store(tmp_path / "s.db", clock=Clock()) as store:
        reservation = store.reserve_request("Suspend", [ONE], api="rest", since=START - 86400)
        assert reservation is not None
        seen: List[str] = []
        store._shared.writer.set_trace_callback(seen.append)  # type: ignore[union-attr]
        store.confirm_request(reservation, "R1")
        store._shared.writer.set_trace_callback(None)  # type: ignore[union-attr]
        assert store.status("R1").pending == (str(ONE),)
    inside = seen[seen.index("BEGIN IMMEDIATE") + 1 : seen.index("COMMIT")]
    assert [statement.split()[0] for statement in inside] == ["SELECT", "UPDATE", "UPDATE"]
    assert "UPDATE requests SET known_as" in inside[1]
