"""The stores (SQLite and PostgreSQL): group commit, de-duplication, tracking of sent requests."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import List

import pytest
from pgserver import location  # noqa: F401 (a fixture)

from uws_adapter import CallbackFault, CallbackRequest, Device, NiddResult, ReportedDevice
from uws_adapter.model.devices import device_key
from uws_adapter.store import open_store
from uws_adapter.store.sqlite import SCHEMA_VERSION, Store, StoreError


def _cb(n: int, request_id: str = "r1", *, count: int = 1, failed: bool = False) -> CallbackRequest:
    return CallbackRequest(
        request_id,
        devices=(
            ReportedDevice("IMEI", f"{350000000000000 + n}"),
            ReportedDevice("ICCID", f"{89148000000000000000 + n}"),
        ),
        service="CarrierService",
        action="Suspend",
        status="Failed" if failed else "Success",
        callback_count=count,
        fault=CallbackFault("REQUEST_FAILED.DeviceNotFound") if failed else None,
    )


@pytest.mark.parametrize("batch", [True, False], ids=["group-commit", "one-commit-each"])
def test_concurrent_writers_are_all_committed(location: str, batch: bool) -> None:
    with open_store(location, batch=batch) as store:
        results: List[bool] = []

        def write(worker: int) -> None:
            for n in range(50):
                results.append(store.add_callback(_cb(worker * 1000 + n))[1])

        threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results.count(True) == 400
    # a fresh connection sees everything: it was committed, not just written
    with open_store(location) as again:
        assert again.counts()["events"] == 400
    if location.startswith("postgresql://"):
        return
    db = sqlite3.connect(location)
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 400
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_failing_job_does_not_undo_its_batch_neighbours(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:

        def broken(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO no_such_table VALUES (1)")

        with pytest.raises(StoreError, match="no such table"):
            store.write(broken)
        assert store.add_callback(_cb(1)) == (1, True)
        assert store.counts()["events"] == 1


def test_a_closed_store_refuses_writes(location: str) -> None:
    store = open_store(location)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.add_callback(_cb(1))


def test_the_same_device_in_another_order_or_case_is_the_same_event(location: str) -> None:
    with open_store(location) as store:
        first = _cb(1)
        reordered = CallbackRequest(
            "r1", devices=tuple(reversed(first.devices)), service="CarrierService", action="Suspend", status="Success",
            callback_count=2,
        )  # fmt: skip
        assert store.add_callback(first)[1] is True
        assert store.add_callback(reordered)[1] is False
        [event] = store.events()
        assert (event.attempts, event.differs) == (2, False)


def test_status_of_a_tracked_request(location: str) -> None:
    devices = [Device.parse(f"IMEI:{350000000000000 + n}") for n in range(4)]
    with open_store(location) as store:
        store.record_request("r1", "Suspend", devices)
        assert store.status("r1").pending == tuple(str(d) for d in devices)
        store.add_callback(_cb(0))
        store.add_callback(_cb(1, failed=True))
        status = store.status("r1")
        assert (status.action, status.total, status.complete) == ("Suspend", 4, False)
        assert status.succeeded == ("IMEI:350000000000000",)
        assert status.failed == {"IMEI:350000000000001": "REQUEST_FAILED.DeviceNotFound"}
        assert status.pending == ("IMEI:350000000000002", "IMEI:350000000000003")
        store.add_callback(_cb(2))
        store.add_callback(_cb(3))
        assert store.status("r1").complete


def test_status_of_an_untracked_request_comes_from_its_callbacks(location: str) -> None:
    with open_store(location) as store:
        store.add_callback(_cb(0, "r2"))
        status = store.status("r2")
        # Never sent through this store: no total is known, so it is open-ended, never complete.
        assert (status.total, status.complete, status.open_ended, len(status.succeeded)) == (1, False, True, 1)
        assert not store.status("unknown").known


def test_iterating_events_in_pages(location: str) -> None:
    with open_store(location) as store:
        for n in range(2500):
            store.add_callback(_cb(n, "r3" if n % 2 else "r4"))
        assert len(list(store.iter_events())) == 2500
        assert len(list(store.iter_events(request_id="r3"))) == 1250
        assert [e.id for e in store.events(after_id=2498)] == [2499, 2500]


def test_the_nidd_callback_of_a_restore_does_not_decide_the_device_outcome(location: str) -> None:
    device = Device.parse("IMEI:990003420535573")
    reported = (ReportedDevice("IMEI", "990003420535573"),)
    with open_store(location) as store:
        store.record_request("r-1", "Restore", [device], api="rest")
        store.add_callback(
            CallbackRequest("r-1", reported, service="CarrierService", action="Restore", status="Success")
        )
        nidd = NiddResult("0000123456-00001", "Not CatM or NBIoT Device", reported)
        store.add_callback(CallbackRequest("r-1", (), service="NiddService", status="ConfigFailed", nidd=nidd))
        status = store.status("r-1")
        assert (status.succeeded, status.failed, status.complete) == (("IMEI:990003420535573",), {}, True)
        assert store.counts()["events"] == 2


def test_a_database_of_the_previous_release_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(str(path))
    old.executescript((Path(__file__).parents[1] / "data" / "store-schema-0.sql").read_text())
    old.execute(
        "INSERT INTO events (service, request_id, device, action, status, succeeded, callback, content_hash,"
        " received_at) VALUES ('CarrierService', 'r0', ?, 'Suspend', 'Success', 1, ?, 'h', 1.0)",
        (device_key(_cb(0, "r0").devices), json.dumps(_cb(0, "r0").to_dict())),
    )
    old.commit()
    old.close()
    assert Store.schema_version(path) == 0
    with Store(path) as store:
        assert [event.callback.request_id for event in store.events()] == ["r0"]
        assert store.add_callback(_cb(0, "r0", count=2))[1] is False  # the old event is found again
        assert store.add_callback(_cb(1, "r1"))[1] is True
    assert Store.schema_version(path) == SCHEMA_VERSION
    indexes = {
        row[0] for row in sqlite3.connect(str(path)).execute("SELECT name FROM sqlite_master WHERE type='index'")
    }
    assert {"handler_queue_by_due", "request_identifiers_by_device"} <= indexes


def test_a_database_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store(path).close()
    newer = sqlite3.connect(str(path))
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(StoreError, match=f"schema {SCHEMA_VERSION + 1}, written by a newer uws-adapter"):
        Store(path)


def test_a_store_in_a_missing_folder_names_the_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"nowhere/c\.db: the folder .*nowhere does not exist"):
        Store(tmp_path / "nowhere" / "c.db")


def test_nidd_callbacks_of_two_devices_are_two_events(location: str) -> None:
    # The documented NiddService callbacks name their devices only under niddResponse.
    from uws_adapter import parse_rest_callback

    document = json.loads((Path(__file__).parents[1] / "data" / "doc-rest-nidd-created-callback.json").read_text())
    first = parse_rest_callback(document)
    document["niddResponse"]["niddConfigResponse"]["deviceIds"] = [{"id": "990003420535573", "kind": "IMEI"}]
    second = parse_rest_callback(document)
    assert first.devices == second.devices == ()
    with open_store(location) as store:
        assert store.add_callback(first, ("relay",))[1] is True
        assert store.add_callback(second, ("relay",))[1] is True
        assert store.add_callback(second)[1] is False  # its re-send is one
        counts = store.counts()
        assert (counts["events"], counts["attempts"], counts["handler_queue"]) == (2, 3, 2)
        assert [e.differs for e in store.events()] == [False, False]


def test_a_file_that_is_not_a_database_is_refused_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, " * 100)
    with pytest.raises(StoreError, match=r"cannot open the store .*notes\.txt: file is not a database"):
        Store(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
