"""Tracking requests to completion, from the command line, and the end-to-end demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from servers import WaitressServer
from test_cli import run

from uws_adapter import CallbackRequest, Device, Emulator, ReportedDevice, UwsClient, generated_devices, select
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.store.sqlite import Store
from uws_adapter.tracking import COMPLETE, SETTLED, progress_bar, summary, wait_for


def test_progress_bar() -> None:
    assert progress_bar(0, 10, width=10) == "[..........] 0/10"
    assert progress_bar(5, 10, width=10) == "[#####.....] 5/10"
    assert progress_bar(3000, 3000, width=4) == "[####] 3,000/3,000"


@pytest.mark.parametrize("backend", ["soap", "rest"])
def test_demo_end_to_end(tmp_path: Path, backend: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uws_adapter", "demo", "--devices", "200", "--timeout", "60", "--backend", backend],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Suspend: 200/200 lines Suspended" in result.stdout
    assert "Restore: 200/200 lines Active" in result.stdout
    assert "store: 400 events from 400 deliveries" in result.stdout
    assert result.stdout.rstrip().endswith("demo passed")


def test_status_callbacks_and_wait_commands(tmp_path: Path) -> None:
    from uws_adapter.receiver import Receiver, server_options

    db = tmp_path / "callbacks.db"
    lines = generated_devices(5)
    with Store(db) as store:
        receiver = Receiver(store, allow_anonymous=True)
        server = WaitressServer(receiver, **server_options(receiver))
        try:
            with Emulator(devices=lines) as emulator:
                emulator.register_listener(DEFAULT_ACCOUNT, f"{server.url}/")
                devices: List[Device] = [line.device for line in lines]
                args = ["suspend", "--db", str(db), "--endpoint", emulator.base_url, "--username", "uws-user"]
                args += [a for d in devices for a in ("--device", str(d))]
                sent = run(args, tmp_path, UWS_PASSWORD="uws-password")
                assert sent.returncode == 0, sent.stderr
                request_id = sent.stdout.strip()
                waited = run(["wait", request_id, "--db", str(db), "--timeout", "30"], tmp_path)
                assert waited.returncode == 0, waited.stderr
                assert "5 succeeded, 0 failed, 0 pending of 5 (complete)" in waited.stdout
                # stderr is not a terminal here: plain lines, no bar redrawn with carriage returns
                assert "5/5 callbacks" in waited.stderr
                assert "\r" not in waited.stderr
                status = run(["status", request_id, "--db", str(db), "--json"], tmp_path)
                assert json.loads(status.stdout)["complete"] is True
                listed = run(["callbacks", "--db", str(db), "--request-id", request_id], tmp_path)
                header, *rows = listed.stdout.splitlines()
                assert header == "ID\tREQUEST_ID\tDEVICE\tACTION\tSTATUS\tDELIVERIES"
                assert len(rows) == 5
                as_json = run(["callbacks", "--db", str(db), "--json"], tmp_path)
                assert {json.loads(line)["action"] for line in as_json.stdout.splitlines()} == {"Suspend"}
        finally:
            server.close()
            receiver.close()


def test_wait_times_out_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "callbacks.db"
    with Store(db) as store:
        store.record_request("r-9", "Restore", [Device.parse("MDN:5551234567")])
    result = run(["wait", "r-9", "--db", str(db), "--timeout", "0.3"], tmp_path)
    assert result.returncode == 1
    assert "1 device still without a callback after 0.3 s" in result.stderr
    assert "no callback arrived at all: check that a listener is registered" in result.stderr
    # the usual first-day cause: callback credentials that differ between registration and receiver
    assert "accepts the credentials registered with the listener (its log says 401 if not)" in result.stderr
    missing = run(["status", "r-9", "--db", str(tmp_path / "nope.db")], tmp_path)
    assert missing.returncode == 2
    assert "no store at" in missing.stderr


def test_client_records_requests(tmp_path: Path) -> None:
    lines = generated_devices(3)
    with Emulator(devices=lines) as emulator, Store(tmp_path / "s.db") as store:
        client = UwsClient(base_url=emulator.base_url, username="uws-user", password="uws-password", store=store)
        request_id = client.suspend(select([line.device for line in lines]))
        status = store.status(request_id)
        assert (status.action, status.total, len(status.pending)) == ("Suspend", 3, 3)


class CarrierClock:
    """Fake time for a wait: each sleep moves the clock on, and the "carrier" delivers the
    callbacks due by then into the real store (stamped with the same clock)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.store: Optional[Store] = None
        self.arrivals: List[Tuple[float, CallbackRequest]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        while self.store is not None and self.arrivals and self.arrivals[0][0] <= self.now:
            self.store.add_callback(self.arrivals.pop(0)[1])


def _account_callbacks(
    count: int, request_id: str, start: float, spacing: float, gap_after: int = -1, gap: float = 0.0
) -> List[Tuple[float, CallbackRequest]]:
    arrivals = []
    at = start
    for n in range(count):
        at += spacing + (gap if n == gap_after else 0.0)
        arrivals.append((at, CallbackRequest(request_id, (ReportedDevice("MDN", f"{5550000000 + n}"),),
                                             service="CarrierService", action="Suspend", status="Success")))  # fmt: skip
    return arrivals


def test_an_account_request_is_never_complete_and_settles_only_after_its_last_callback(tmp_path: Path) -> None:
    clock = CarrierClock()
    with Store(tmp_path / "s.db", clock=clock) as store:
        clock.store = store
        store.record_request("acct-1", "Suspend", ())  # an account selection: no device list
        status = store.status("acct-1")
        assert (status.known, status.open_ended, status.callbacks, status.complete) == (True, True, 0, False)
        assert "open-ended" in summary(status)
        # 1,000 lines answered over about 20 minutes, with one quiet spell of 4 minutes in the middle
        clock.arrivals = _account_callbacks(1000, "acct-1", clock.now + 30, 1.2, gap_after=499, gap=240.0)
        ended, statuses = wait_for(store, ["acct-1"], timeout=24 * 3600, settle=300, poll=5, clock=clock,
                                   sleep=clock.sleep)  # fmt: skip
        assert ended == SETTLED
        assert clock.arrivals == []  # it did not stop before the last callback
        assert statuses["acct-1"].callbacks == 1000
        assert not statuses["acct-1"].complete
        assert clock.now - statuses["acct-1"].last_callback_at >= 300  # type: ignore[operator]
        line = summary(statuses["acct-1"], settled=True)
        assert "1,000 callbacks so far (1,000 succeeded, 0 failed); settled" in line
        assert "complete" not in line


def test_a_device_list_request_is_sent_before_its_first_callback_and_complete_after_its_last(tmp_path: Path) -> None:
    clock = CarrierClock()
    with Store(tmp_path / "s.db", clock=clock) as store:
        clock.store = store
        clock.arrivals = _account_callbacks(3, "list-1", clock.now + 10, 20.0)
        store.record_request("list-1", "Suspend", [Device.parse(f"MDN:{5550000000 + n}") for n in range(3)])
        assert "sent, no callback yet (0 of 3 devices)" in summary(store.status("list-1"))
        ended, statuses = wait_for(store, ["list-1"], timeout=3600, settle=1, poll=1, clock=clock, sleep=clock.sleep)
        assert ended == COMPLETE
        assert statuses["list-1"].complete
        assert "3 succeeded, 0 failed, 0 pending of 3 (complete)" in summary(statuses["list-1"])


def test_wait_on_an_open_ended_request_exits_3_when_settled(tmp_path: Path) -> None:
    db = tmp_path / "callbacks.db"
    with Store(db) as store:
        store.record_request("acct-9", "Restore", ())
        store.add_callback(CallbackRequest("acct-9", (ReportedDevice("MDN", "5551234567"),), service="CarrierService",
                                           action="Restore", status="Success"))  # fmt: skip
    result = run(["wait", "acct-9", "--db", str(db), "--settle", "0"], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "open-ended (account, group or filter): 1 callback so far" in result.stdout
    assert "settled" in result.stdout
    status = run(["status", "acct-9", "--db", str(db), "--json"], tmp_path)
    form = json.loads(status.stdout)
    assert (form["open_ended"], form["total"], form["callbacks"], form["complete"]) == (True, None, 1, False)


def test_callbacks_lists_a_callback_without_a_status_as_a_dash(tmp_path: Path) -> None:
    db = tmp_path / "callbacks.db"
    with Store(db) as store:  # a REST suspend callback with its suspendResponse and no status
        store.add_callback(CallbackRequest("r-1", (ReportedDevice("IMEI", "990003420535573"),), action="Suspend"))
    listed = run(["callbacks", "--db", str(db)], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1] == "1\tr-1\tIMEI:990003420535573\tSuspend\t-\tx1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["wait", "r-9", "--timeout", "nan"], "--timeout: nan is not a number of seconds"),  # it waited for good
        (["wait", "r-9", "--timeout", "0.1", "--settle", "nan"], "--settle: nan is not a number of seconds"),
        (["wait", "r-9", "--timeout", "0.1", "--settle", "-1"], "--settle: -1 is out of range"),
        (["demo", "--devices", "1", "--timeout", "nan"], "--timeout: nan is not a number of seconds"),
        (["status", "r-9\udcff"], "request_id: is not text at position 3"),  # a byte the locale cannot decode
        (["callbacks", "--request-id", "r-9\udcff"], "request_id: is not text at position 3"),
    ],
    ids=["wait-nan", "settle-nan", "settle-negative", "demo-nan", "status-undecodable", "callbacks-undecodable"],
)
def test_tracking_commands_refuse_odd_values_in_one_line(tmp_path: Path, args: List[str], words: str) -> None:
    db = tmp_path / "callbacks.db"
    with Store(db) as store:
        store.record_request("r-9", "Restore", [Device.parse("MDN:5551234567")])
    result = run([*args, *(["--db", str(db)] if args[0] != "demo" else [])], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert words in result.stderr


@pytest.mark.parametrize("devices", ["0", "10001"], ids=["no-lines", "over-10000"])
def test_demo_refuses_a_line_count_it_cannot_demonstrate(tmp_path: Path, devices: str) -> None:
    result = run(["demo", "--devices", devices], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--devices" in result.stderr
