"""The stores (SQLite and PostgreSQL): group commit, de-duplication, tracking of sent requests."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest
from pgserver import location  # noqa: F401 (a fixture)

from uws_adapter import CallbackFault, CallbackRequest, Device, InputError, NiddResult, ReportedDevice
from uws_adapter.model.devices import device_key
from uws_adapter.store import CallbackWrite, open_store
from uws_adapter.store.sqlite import Store, StoreError
from uws_adapter.store.sqlite_schema import SCHEMA_VERSION


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
    with open_store(location) as store, ThreadPoolExecutor(8) as senders:
        # From several threads, as a receiver writes: the store commits them in groups (2,500 commits
        # one by one would cost 2,500 fsyncs, seconds on a busy disk, and test nothing more).
        list(senders.map(lambda n: store.add_callback(_cb(n, "r3" if n % 2 else "r4")), range(2500)))
        assert len(list(store.iter_events())) == 2500
        assert len(list(store.iter_events(request_id="r3"))) == 1250
        assert [e.id for e in store.events(after_id=2498)] == [2499, 2500]


def _reads_of(store: Any, huge: int) -> List[Tuple[Callable[[], object], str]]:
    """Each read given ``huge`` where it cannot go, and the field its refusal names."""
    return [
        (lambda: store.events(after_id=huge), "after_id"),
        (lambda: store.events(limit=-huge), "limit"),
        (lambda: list(store.iter_events(after_id=huge)), "after_id"),
        (lambda: store.event(huge), "event_id"),
        (lambda: store.dead_letters(after_id=huge), "after_id"),
        (lambda: store.dead_letter(-huge), "letter_id"),
        (lambda: store.purge_dead_letters(ids=[1, huge]), "ids"),
    ]


def test_reads_refuse_what_no_query_can_bind_by_name(location: str) -> None:
    # Past a 64-bit column sqlite3 raised a raw OverflowError; a lone surrogate (a byte the locale
    # cannot decode, on a command line) a raw UnicodeEncodeError.
    # And an integer of over 4,300 digits: Python refuses to write it, which the refusal itself did.
    with open_store(location) as store:
        store.add_callback(_cb(1))
        for huge in (2**70, 10**5000):
            for read, field in _reads_of(store, huge):
                with pytest.raises(InputError) as info:
                    read()
                assert info.value.field == field
        for read, field in (
            # A negative limit was every row on SQLite (LIMIT -1 is none), a StoreError on PostgreSQL.
            (lambda: store.events(limit=-1), "limit"),
            (lambda: store.dead_letters(limit=-1), "limit"),
            (lambda: store.status("r1\udcff"), "request_id"),
            (lambda: store.events(request_id="r1\udcff"), "request_id"),
            # A NUL ended the statement on PostgreSQL (a StoreError there, nothing found on SQLite).
            (lambda: store.status("r1\x00"), "request_id"),
            (lambda: store.events(request_id="r1\x00"), "request_id"),
        ):
            with pytest.raises(InputError) as info:
                read()
            assert info.value.field == field
        assert [e.id for e in store.events(after_id=2**63 - 1)] == []  # the largest id is a query like any
        assert store.event(1) is not None
        # No event has an id below 1; the smallest a column holds was an after_id one below it, refused.
        assert store.event(-(2**63)) is None
        assert store.event(0) is None


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


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl: the store takes no lock file")
def test_a_lock_file_that_cannot_be_opened_is_a_store_error_naming_it(tmp_path: Path) -> None:
    # As when the store belongs to another user (the lock file is 0600) or lives on a read-only mount.
    (tmp_path / "c.db.writelock").mkdir()
    with pytest.raises(
        StoreError, match=r"c\.db: its lock file .*c\.db\.writelock cannot be opened \(Is a directory\)"
    ):
        Store(tmp_path / "c.db")
    assert not (tmp_path / "c.db").exists()


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


@pytest.mark.skipif(sys.platform == "win32", reason="the WAL is fsynced by SQLite itself there")
def test_a_group_is_answered_after_its_wal_is_fsynced_with_the_write_lock_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    store = Store(tmp_path / "s.db")
    synced: List[Tuple[int, bool]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        probe = os.open(f"{store.path}.writelock", os.O_RDWR)
        try:  # another process's commit may take the lock while this one's fsync runs
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock_free = True
            fcntl.flock(probe, fcntl.LOCK_UN)
        except BlockingIOError:
            lock_free = False
        finally:
            os.close(probe)
        synced.append((os.fstat(fd).st_ino, lock_free))
        real_fsync(fd)

    try:
        monkeypatch.setattr(os, "fsync", recording_fsync)
        [first] = store.commit_group([CallbackWrite(_cb(1))])
        wal, folder = os.stat(f"{store.path}-wal").st_ino, os.stat(tmp_path).st_ino
        # The WAL's folder once (the file may be new), then the WAL, outside the write lock.
        assert synced == [(folder, True), (wal, True)]
        [second] = store.commit_group([CallbackWrite(_cb(2))])
        assert synced[2:] == [(wal, True)]
        assert (first.error, second.error) == (None, None)
        # The writer thread's commits (store.apply) are made durable the same way.
        store.apply(CallbackWrite(_cb(3)))
        assert (wal, True) in synced[3:]
    finally:
        monkeypatch.undo()
        store.close()
    assert store.counts()["events"] == 3


def test_a_failed_fsync_answers_the_group_as_not_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "s.db")
    try:
        store.commit_group([CallbackWrite(_cb(1))])  # the folder's fsync is behind us

        def failing_fsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing_fsync)
        [outcome] = store.commit_group([CallbackWrite(_cb(2))])
        assert isinstance(outcome.error, StoreError)
        assert "could not be made durable" in str(outcome.error)
        assert not store.ready()  # a commit failed just now
        monkeypatch.undo()
        [again] = store.commit_group([CallbackWrite(_cb(2, count=2))])  # the WAL opened afresh
        assert again.error is None
    finally:
        store.close()


def test_a_write_that_need_not_be_durable_is_committed_at_once_and_seen_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Committed without an fsync of its own (WAL, synchronous=NORMAL): atomic and seen at once by
    # another connection; a durable write after it is fsynced before it returns.
    with Store(tmp_path / "s.db") as one, Store(tmp_path / "s.db") as two:
        one.record_request("r-relaxed", "Suspend", [Device.parse("IMEI:350000000000001")])
        assert two.status("r-relaxed").known
        synced: List[int] = []
        real_fsync = os.fsync

        def recording_fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", recording_fsync)
        assert one.write(lambda db: db.execute("PRAGMA synchronous").fetchone()[0], durable=False) == 1  # NORMAL
        assert synced == []
        one.write(lambda db: db.execute("PRAGMA user_version").fetchone()[0])
        assert synced


def test_the_session_read_never_waits_for_a_write_holding_the_shared_connection(tmp_path: Path) -> None:
    # The session read may run on the connection the non-durable writes share (its pages current);
    # while a write holds that connection, it reads on its own thread's connection instead.
    with Store(tmp_path / "s.db") as store, ThreadPoolExecutor(2) as pool:
        store.open_session("a" * 64, 1000.0, None)
        assert store.session_last_used("a" * 64) == 1000.0  # the shared connection is free
        holding, release = threading.Event(), threading.Event()

        def held(db: sqlite3.Connection) -> None:
            db.execute("UPDATE bridge_sessions SET last_used = 2000.0")
            holding.set()
            assert release.wait(30)

        writing = pool.submit(store.write, held, durable=False)
        assert holding.wait(30)
        read = pool.submit(store.session_last_used, "a" * 64)
        try:
            assert read.result(timeout=30) == 1000.0  # what is committed, while the write still holds on
        finally:
            release.set()
        writing.result(timeout=30)
        assert store.session_last_used("a" * 64) == 2000.0


def test_the_session_read_inside_a_write_of_its_own_thread_sees_only_what_is_committed(tmp_path: Path) -> None:
    # The shared connection is this thread's own then (its lock is re-entrant) and in a transaction:
    # the read goes to the thread's reader, not into the uncommitted write.
    with Store(tmp_path / "s.db") as store:
        store.open_session("b" * 64, 1000.0, None)

        def forget_then_read(db: sqlite3.Connection) -> Any:
            db.execute("DELETE FROM bridge_sessions")
            return store.session_last_used("b" * 64)

        assert store.write(forget_then_read, durable=False) == 1000.0
        assert store.session_last_used("b" * 64) is None


@pytest.mark.parametrize(
    "wait",
    [float("nan"), float("inf"), 1e10, 10**5000, 0, -1, "10", None],
    ids=["nan", "inf", "1e10", "5000-digits", "zero", "negative", "text", "none"],
)
def test_a_lock_timeout_no_thread_can_wait_is_refused_by_name(location: str, wait: object) -> None:
    """The writer thread and the commit lock wait for it: NaN or infinity ended the writer thread
    (every write after it failed with 'no commit within 30 s'); on PostgreSQL, the first connection."""
    with pytest.raises(InputError, match=r"^lock_timeout: ") as refused:
        open_store(location, lock_timeout=wait)
    assert "pass e.g. 10" in str(refused.value)
