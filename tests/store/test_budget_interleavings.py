"""The budget's marks of unlisted callbacks (store/unlisted.py) under real concurrent PostgreSQL
transactions (READ COMMITTED), each interleaving forced by a lock a second connection holds, never by
timing: a callback stored while its request's devices are forgotten keeps the mark it took before
(neither transaction sees the other's row), and the budget must count it all the same; a RequestId
given by two transactions at once names one request; and a store of the schema before the marks is
refused until upgraded, its events marked right by the upgrade."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import quote

import pytest
from conftest import ManualClock
from pgserver import location, postgres_url  # noqa: F401 (fixtures)

from uws_adapter.errors import StoreError
from uws_adapter.model.callbacks import CallbackRequest, ReportedDevice
from uws_adapter.model.devices import Device
from uws_adapter.store import Backend, open_store, upgrade_store
from uws_adapter.store.unlisted import callbacks

START = 1_800_000_000.0
DEVICE = Device.parse("IMEI:350000000000001")
SINCE = START - 24 * 3600.0
# The definition: what the budget counted before the events were marked (a scan of the day).
_EVERY_ONE = (
    "SELECT e.request_id, e.device, e.received_at FROM events e WHERE e.received_at > ?"
    " AND e.succeeded = TRUE AND e.service != 'NiddService' AND e.action != ''"
    " AND NOT EXISTS (SELECT 1 FROM requests r JOIN request_identifiers i ON i.request_id = r.request_id"
    " WHERE coalesce(r.known_as, r.request_id) = e.request_id)"
)


def _callback(request_id: str) -> CallbackRequest:
    return CallbackRequest(
        request_id, (ReportedDevice("IMEI", DEVICE.identifiers[0].identifier),), service="CarrierService",
        action="Suspend", status="Success",
    )  # fmt: skip


def _read(store: Backend, work: Callable[[Any], Any]) -> Any:
    return store._read("read", work)  # type: ignore[attr-defined]


def _in_thread(work: Callable[[], None]) -> Tuple[threading.Thread, List[Optional[BaseException]]]:
    failed: List[Optional[BaseException]] = [None]

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test, which re-raises it
            failed[0] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failed


def _forget_by_query(store: Backend) -> None:
    store.record_request("R1", "Query", ())  # the id recorded again with no devices


def _forget_by_confirming(store: Backend) -> None:
    reservation = store.reserve_request("Query", ())  # a reservation without devices, confirmed over R1
    assert reservation is not None
    store.confirm_request(reservation, "R1")


@pytest.mark.parametrize(
    "forget", [_forget_by_query, _forget_by_confirming], ids=["recorded-as-query", "confirmed-over"]
)
def test_a_callback_stored_while_its_request_is_forgotten_still_counts(
    postgres_url: str, forget: Callable[[Backend], None]
) -> None:
    import psycopg

    url = postgres_url
    upgrade_store(url)
    clock = ManualClock(START)
    with open_store(url, clock=clock) as store, psycopg.connect(url, autocommit=True) as admin:
        store.record_request("R1", "Suspend", [DEVICE])
        # A second connection holds an uncommitted row of the forgotten-requests table under R1:
        # the forgetting transaction marks R1's events (none yet), then waits on that row before
        # it deletes R1's devices and commits.
        holder = psycopg.connect(url)
        try:
            holder.execute("INSERT INTO budget_demoted (request_id, at) VALUES ('R1', 0)")
            thread, failed = _in_thread(lambda: forget(store))
            held = holder.info.backend_pid
            _until(lambda: _waits_behind(admin, held, 1), "the forgetting never waited")
            # Meanwhile the carrier's callback is stored: R1 still lists its device in what this
            # transaction sees, so its event is marked listed, and the forgetting one never sees it.
            store.add_callback(_callback("R1"))
        finally:
            holder.rollback()
            holder.close()
        thread.join()
        if failed[0] is not None:
            raise failed[0]
        marks = _read(store, lambda db: db.all("SELECT request_id, unlisted FROM events"))
        assert [(str(r[0]), bool(r[1])) for r in marks] == [("R1", False)]  # the interleaving did happen
        assert not _read(store, lambda db: db.all("SELECT 1 FROM request_identifiers WHERE request_id = 'R1'"))
        # The budget counts it: the reading is the definition, and the line has R1's action.
        expected = sorted(tuple(r) for r in _read(store, lambda db: db.all(_EVERY_ONE, (SINCE,))))
        assert sorted(tuple(r) for r in _read(store, lambda db: callbacks(db, SINCE))) == expected
        assert len(expected) == 1
        found = store.device_actions([DEVICE], SINCE, at_least=1)
        assert {request_id for actions in found.values() for request_id, _ in actions} == {"R1"}
        assert store.reserve_request("Suspend", [DEVICE], since=SINCE, admit=lambda f: None if f else False) is None


def test_a_request_forgotten_while_a_reservation_reads_still_counts(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reservation reads the marks, the forgotten requests and the log in several statements
    (READ COMMITTED): a request whose devices are forgotten between two of them must not slip
    between the readings. The reservation is held between its reading of the callbacks and of the
    summary (the real reading, paused at that point) while the request is recorded again as a
    query; the line's one action must refuse the reservation at a budget of one."""
    import psycopg

    from uws_adapter.store import line_counts

    url = postgres_url
    upgrade_store(url)
    clock = ManualClock(START)
    read_callbacks, go_on = threading.Event(), threading.Event()
    risky = line_counts.risky

    def paused(*args: Any, **kwargs: Any) -> Any:
        read_callbacks.set()
        assert go_on.wait(30)
        return risky(*args, **kwargs)

    with open_store(url, clock=clock) as store, psycopg.connect(url, autocommit=True) as admin:
        store.record_request("R1", "Suspend", [DEVICE])
        store.add_callback(_callback("R1"))  # counted from the log: R1 lists the device
        monkeypatch.setattr(line_counts, "risky", paused)
        results: List[Optional[str]] = []

        def reserve() -> None:
            results.append(
                store.reserve_request("Suspend", [DEVICE], since=SINCE, admit=lambda f: None if f else False)
            )

        reserving, reserve_failed = _in_thread(reserve)
        assert read_callbacks.wait(30)
        forgotten = threading.Event()

        def forget() -> None:
            _forget_by_query(store)
            forgotten.set()

        forgetting, forget_failed = _in_thread(forget)
        # Until the forgetting is committed, or waits for the reservation to end.
        for _ in range(100_000):
            if forgotten.is_set():
                break
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'uws-adapter'"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()
            if row and row[0]:
                break
        else:
            raise AssertionError("the forgetting neither committed nor waited")
        go_on.set()
        reserving.join()
        forgetting.join()
        for failed in (reserve_failed, forget_failed):
            if failed[0] is not None:
                raise failed[0]
        monkeypatch.setattr(line_counts, "risky", risky)
        assert results == [None]  # refused: R1 is the line's action, whichever reading found it
        found = store.device_actions([DEVICE], SINCE, at_least=1)
        assert {request_id for actions in found.values() for request_id, _ in actions} == {"R1"}


def test_a_callback_stored_while_its_request_is_confirmed_is_counted_once(location: str) -> None:
    """The other way round (both backends): the callback comes while the RequestId is being
    recorded; whichever mark it keeps, the line has the one request."""
    clock = ManualClock(START)
    with open_store(location, clock=clock) as store:
        reservation = store.reserve_request("Suspend", [DEVICE])
        assert reservation is not None
        both = threading.Barrier(2)

        def confirm() -> None:
            both.wait()
            store.confirm_request(reservation, "R1")

        thread, failed = _in_thread(confirm)
        both.wait()
        store.add_callback(_callback("R1"))
        thread.join()
        if failed[0] is not None:
            raise failed[0]
        found = store.device_actions([DEVICE], SINCE, at_least=1)
        assert {request_id for actions in found.values() for request_id, _ in actions} == {"R1"}
        expected = sorted(tuple(r) for r in _read(store, lambda db: db.all(_EVERY_ONE, (SINCE,))))
        assert sorted(tuple(r) for r in _read(store, lambda db: callbacks(db, SINCE))) == expected == []


def _schema_4(url: str) -> None:
    """The database at ``url`` as the release before the marks left it, with a listed request, and
    events of it, of a request never listed and of one whose devices were forgotten before."""
    import psycopg

    from uws_adapter.store.postgres_schema import MIGRATIONS, VERSION_TABLE

    with psycopg.connect(url, autocommit=True) as db:
        for step in range(1, 5):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(VERSION_TABLE)
        db.execute("INSERT INTO uws_schema_version (version) VALUES (4)")
        db.execute(
            "INSERT INTO requests (request_id, action, api, sent_at, devices) VALUES ('listed', 'Suspend', 'soap', %s,"
            " '[]')", (START - 60,),
        )  # fmt: skip
        db.execute("INSERT INTO request_identifiers VALUES ('listed', 'IMEI:350000000000001', 0)")
        for request_id in ("listed", "unlisted", "forgotten-before"):
            db.execute(
                "INSERT INTO events (service, request_id, device, action, status, succeeded, callback, content_hash,"
                " received_at) VALUES ('CarrierService', %s, 'IMEI:350000000000001', 'Suspend', 'Success', TRUE, '{}',"
                " 'x', %s)", (request_id, START - 30),
            )  # fmt: skip


def test_a_schema_4_database_is_refused_then_upgraded_with_its_events_marked(postgres_url: str) -> None:
    from uws_adapter.store.postgres_schema import SCHEMA_VERSION

    url = postgres_url
    _schema_4(url)
    assert SCHEMA_VERSION >= 5
    with pytest.raises(
        StoreError, match=rf"schema 4 and this release needs {SCHEMA_VERSION}: run `uws-adapter db upgrade"
    ):
        open_store(url)
    assert upgrade_store(url).endswith(f"store schema 4 -> {SCHEMA_VERSION}")
    with open_store(url, clock=ManualClock(START)) as store:
        marks = {
            (str(r[0]), bool(r[1])) for r in _read(store, lambda db: db.all("SELECT request_id, unlisted FROM events"))
        }
        assert marks == {("listed", False), ("unlisted", True), ("forgotten-before", True)}
        expected = sorted(tuple(r) for r in _read(store, lambda db: db.all(_EVERY_ONE, (0.0,))))
        assert sorted(tuple(r) for r in _read(store, lambda db: callbacks(db, 0.0))) == expected
        assert len(expected) == 2


@pytest.mark.parametrize(
    "command",
    [
        ["receiver", "--server", "uvicorn", "--workers", "2"],
        ["receiver", "--server", "waitress"],
        ["bridge"],
    ],
    ids=["receiver-uvicorn", "receiver-waitress", "bridge"],
)
def test_a_service_on_the_schema_before_refuses_to_start_naming_the_upgrade(
    postgres_url: str, command: List[str], tmp_path: Any
) -> None:
    """A real service process on a schema-4 database: one line saying to run `uws-adapter db
    upgrade`, a non-zero exit, no traceback, no password, before it serves anything."""
    secret = "pa55-w0rd"
    url = postgres_url.replace("postgresql://uws@", f"postgresql://uws:{quote(secret)}@")
    _schema_4(postgres_url)
    environ = {
        **os.environ, "UWS_CALLBACK_USERNAME": "u", "UWS_CALLBACK_PASSWORD": "p",
        # The bridge's other settings (it reaches nothing before its store is open).
        "UWS_BRIDGE_LEGACY_LOGIN": "legacy:legacy-pw", "UWS_ADAPTER_REST_URL": "http://127.0.0.1:9",
        "UWS_USERNAME": "user", "UWS_PASSWORD": "pw", "THINGSPACE_CLIENT_ID": "id", "THINGSPACE_CLIENT_SECRET": "s",
    }  # fmt: skip
    environ.pop("UWS_ADAPTER_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "uws_adapter", *command, "--port", "0", "--db", url], cwd=str(tmp_path), env=environ,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode not in (0, None), done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "schema 4" in lines[0]
    assert "uws-adapter db upgrade" in lines[0]
    assert "Traceback" not in done.stderr
    assert secret not in done.stdout + done.stderr


def _waits_behind(admin: Any, pid: int, depth: int) -> bool:
    """Whether a session waits for a lock held by the session ``pid`` (``depth`` 1), or by a
    session that waits behind it (2): asked by backend, so that tests running at once on the
    server do not answer for each other."""
    behind = "%s = ANY(pg_blocking_pids(a.pid))"
    if depth == 2:
        behind = "EXISTS (SELECT 1 FROM pg_stat_activity b WHERE %s = ANY(pg_blocking_pids(b.pid))"
        behind += " AND b.pid = ANY(pg_blocking_pids(a.pid)))"
    row = admin.execute(f"SELECT count(*) FROM pg_stat_activity a WHERE {behind}", (pid,)).fetchone()
    return bool(row and row[0])


def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(100_000):  # polled on the server, bounded: a test that never gets there fails
        if condition():
            return
    raise AssertionError(what)


def _two_behind_a_lock(url: str, admin: Any, lock: str, first: Callable[[], None], second: Callable[[], None]) -> None:
    """``first`` run while a second connection holds the row lock ``lock`` (a SELECT ... FOR
    UPDATE) and waits behind it; then ``second`` until it commits or waits behind ``first``; then the
    lock is let go and both end (what either raised is raised here)."""
    import psycopg

    holder = psycopg.connect(url)
    try:
        holder.execute(lock)
        held = holder.info.backend_pid
        one, one_failed = _in_thread(first)
        _until(lambda: _waits_behind(admin, held, 1), "the first never waited")
        done = threading.Event()

        def run_second() -> None:
            second()
            done.set()

        two, two_failed = _in_thread(run_second)
        _until(lambda: done.is_set() or _waits_behind(admin, held, 2), "the second neither committed nor waited")
    finally:
        holder.rollback()
        holder.close()
    one.join()
    two.join()
    for failed in (one_failed, two_failed):
        if failed[0] is not None:
            raise failed[0]


@pytest.mark.parametrize("second", ["recorded", "confirmed"])
def test_a_request_id_given_while_it_is_confirmed_names_one_request(postgres_url: str, second: str) -> None:
    """A reservation confirmed under a RequestId while another transaction records that RequestId,
    or confirms another reservation under it (READ COMMITTED: neither sees the other's row when it
    looks the name up): one request must be known by it afterwards, the later one, as when the two
    come one after the other. The first confirmation is held on its request's row (a lock a second
    connection holds) after it looked the name up and found none."""
    import psycopg

    url = postgres_url
    upgrade_store(url)
    with open_store(url, clock=ManualClock(START)) as store, psycopg.connect(url, autocommit=True) as admin:
        reservation = store.reserve_request("Suspend", [DEVICE])
        other = store.reserve_request("Suspend", [Device.parse("IMEI:350000000000002")])
        assert reservation is not None
        assert other is not None

        def record() -> None:
            if second == "recorded":
                _forget_by_query(store)
            else:
                store.confirm_request(other, "R1")

        lock = f"SELECT 1 FROM requests WHERE request_id = '{reservation}' FOR UPDATE"
        _two_behind_a_lock(url, admin, lock, lambda: store.confirm_request(reservation, "R1"), record)
        named = _read(store, lambda db: db.all(
            "SELECT request_id, known_as FROM requests WHERE coalesce(known_as, request_id) = 'R1'"
        ))  # fmt: skip
        # The confirmation held the name first; the second then replaced its request.
        assert [tuple(r) for r in named] == ([("R1", None)] if second == "recorded" else [(other, "R1")])
        assert store.status("R1").open_ended is (second == "recorded")
        # The first reservation is gone; the other is still pending when R1 was recorded.
        assert store.counts()["requests"] == (2 if second == "recorded" else 1)


def test_a_request_id_recorded_twice_at_once_names_the_later_request(postgres_url: str) -> None:
    """Two transactions recording one RequestId at once: the later replaces the earlier, its
    devices included, as one after the other (they merged the two requests' devices under it, the
    first's line counted one action too many). The first is held on its line's summary row."""
    import psycopg

    other = Device.parse("IMEI:350000000000002")
    url = postgres_url
    upgrade_store(url)
    with open_store(url, clock=ManualClock(START)) as store, psycopg.connect(url, autocommit=True) as admin:
        store.record_request("R0", "Suspend", [DEVICE])  # the line's summary row, to hold
        _two_behind_a_lock(
            url, admin, "SELECT 1 FROM budget_identities WHERE identifier = 'IMEI:350000000000001' FOR UPDATE",
            lambda: store.record_request("R1", "Suspend", [DEVICE]),
            lambda: store.record_request("R1", "Restore", [other]),
        )  # fmt: skip
        assert store.status("R1").pending == (str(other),)
        rows = _read(store, lambda db: db.all("SELECT identifier FROM request_identifiers WHERE request_id = 'R1'"))
        assert [str(r[0]) for r in rows] == ["IMEI:350000000000002"]
        found = store.device_actions([DEVICE], SINCE, at_least=1)
        assert {request_id for actions in found.values() for request_id, _ in actions} == {"R0"}


def test_a_confirmed_request_replaced_twice_at_once_is_uncounted_once(postgres_url: str) -> None:
    """Two transactions recording a RequestId a confirmed reservation is known by, at once: its
    line's summary must lose that request once. Both uncounted it (the second's decrement applied
    again to the row the first had decremented), and the budget check then cleared a line that had
    its action of the day (R0) at a budget of one. The first is held on another line's summary row,
    after its decrement and before its commit."""
    import psycopg

    other = Device.parse("IMEI:350000000000002")
    url = postgres_url
    upgrade_store(url)
    with open_store(url, clock=ManualClock(START)) as store, psycopg.connect(url, autocommit=True) as admin:
        store.record_request("R0", "Suspend", [DEVICE])  # the line's action of the day
        store.record_request("R9", "Suspend", [other])  # the other line's summary row, to hold
        reservation = store.reserve_request("Suspend", [DEVICE])
        assert reservation is not None
        store.confirm_request(reservation, "R1")
        again = lambda: store.record_request("R1", "Restore", [other])  # noqa: E731
        lock = "SELECT 1 FROM budget_identities WHERE identifier = 'IMEI:350000000000002' FOR UPDATE"
        _two_behind_a_lock(url, admin, lock, again, again)
        found = store.device_actions([DEVICE], SINCE, at_least=1)
        assert {request_id for actions in found.values() for request_id, _ in actions} == {"R0"}
        counted = _read(store, lambda db: db.all(
            "SELECT actions FROM budget_identities WHERE identifier = 'IMEI:350000000000001'"
        ))  # fmt: skip
        assert [int(r[0]) for r in counted] == [1]
