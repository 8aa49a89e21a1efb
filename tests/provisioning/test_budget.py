"""The provisioning-budget guard, against the emulator on loopback with a real SQLite request log
and an injected clock (no test waits out a day): device-list requests over a line's daily budget
are refused before anything is sent, ``force`` sends and records them, query selections are never
refused and their lines count from their callbacks."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from clirun import run_in_process
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, ManualClock, client_for
from servers import SilentServer, WaitressServer, wait_until

from uws_adapter import Emulator, UwsClient, generated_devices, select
from uws_adapter.bridge.app import Bridge
from uws_adapter.config import connect, load_settings
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, EmulatedDevice
from uws_adapter.errors import BudgetExceeded, InputError, OutcomeUnknown, ServiceFault
from uws_adapter.model.devices import Device
from uws_adapter.provisioning.base import BUDGET_WINDOW
from uws_adapter.receiver.app import Receiver, server_options
from uws_adapter.rest.client import RestClient
from uws_adapter.store.sqlite import Store
from uws_adapter.store.sqlite_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

DAY = BUDGET_WINDOW
START = 1_800_000_000.0


Setup = Tuple[Emulator, UwsClient, Store, ManualClock, List[EmulatedDevice]]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    lines = generated_devices(3)
    clock = ManualClock(START)
    # The emulator's own daily limit is out of the way: the client's guard is what is tested.
    with Emulator(devices=lines, daily_budget=1000) as emulator, Store(tmp_path / "log.db", clock=clock) as store:
        client = client_for(emulator.base_url, store=store, timeout=(2.0, 5.0))
        yield emulator, client, store, clock, lines
        client.close()


def alternate(client: UwsClient, device: Device, times: int, clock: ManualClock, *, step: float = 3600) -> None:
    """``times`` actions on ``device``, one each ``step`` seconds, suspend and restore in turn."""
    for n in range(times):
        action = client.suspend if n % 2 == 0 else client.restore
        action(select([device]))
        clock.advance(step)


def test_the_sixth_action_of_a_day_is_refused_before_it_is_sent(setup: Setup) -> None:
    emulator, client, _store, clock, lines = setup
    busy, other = lines[0].device, lines[1].device
    alternate(client, busy, 5, clock)
    sent = emulator.counters["requests"]
    with pytest.raises(BudgetExceeded) as refused:
        client.restore(select([busy, other]))
    assert emulator.counters["requests"] == sent  # nothing went out, not even the line within budget
    assert refused.value.lines == ((str(busy), 5, START + DAY),)  # the first action ages out first
    assert refused.value.code == "REQUEST_FAILED.ProvisioningLimitExceeded"
    message = str(refused.value)
    assert str(busy) in message
    assert "5 in the last 24 h" in message
    assert "free from 2027-01-16 08:00:00 UTC" in message
    assert "--force" in message
    assert "--daily-budget" in message
    assert str(other) not in message
    client.suspend(select([other]))  # other lines are not held back
    clock.now = START + DAY + 1  # the first action is a day old: one action is free again
    client.restore(select([busy]))
    with pytest.raises(BudgetExceeded):
        client.suspend(select([busy]))


def test_force_sends_and_is_recorded_and_logged(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    _emulator, client, store, clock, lines = setup
    busy = lines[0].device
    alternate(client, busy, 5, clock)
    with caplog.at_level(logging.WARNING, logger="uws_adapter.provisioning"):
        request_id = client.restore(select([busy]), force=True)
    assert "over the daily budget of 5 on purpose" in caplog.text
    assert str(busy) in caplog.text
    with sqlite3.connect(store.path) as db:
        forced = dict(db.execute("SELECT known_as, forced FROM requests").fetchall())
    assert forced[request_id] == 1
    assert sum(forced.values()) == 1
    assert client.over_budget([busy])[0][1] == 6  # a forced request counts like any other


def test_a_line_is_one_line_whichever_identifiers_named_it(setup: Setup) -> None:
    _emulator, client, _store, clock, lines = setup
    imei, iccid = lines[0].device.identifiers
    by_imei, by_iccid, by_both = Device((imei,)), Device((iccid,)), lines[0].device
    alternate(client, by_both, 2, clock)  # both identifiers in one request: one action each time
    alternate(client, by_imei, 2, clock)
    assert client.over_budget([by_both]) == ()  # 4 so far
    client.suspend(select([by_iccid]))
    assert [count for _, count, _ in client.over_budget([by_both])] == [5]
    # The requests that named both identifiers tie them to one line: each alone counts all five.
    for named in (by_imei, by_iccid, by_both):
        with pytest.raises(BudgetExceeded) as refused:
            client.restore(select([named]))
        assert refused.value.lines[0][1] == 5


def test_identifiers_never_named_together_are_counted_apart(setup: Setup) -> None:
    _, client, _, clock, lines = setup
    imei, iccid = lines[0].device.identifiers
    alternate(client, Device((imei,)), 3, clock)
    alternate(client, Device((iccid,)), 2, clock)  # every request counts as sent, whatever its callback says
    assert client.over_budget([Device((imei,))]) == ()
    assert client.over_budget([Device((iccid,))]) == ()
    # Named by both, the line's five actions are found.
    assert [count for _, count, _ in client.over_budget([lines[0].device])] == [5]


def test_a_request_whose_outcome_is_unknown_counts(tmp_path: Path) -> None:
    device = Device.parse("IMEI:350000000000000")
    silent = SilentServer()
    try:
        with Store(tmp_path / "log.db") as store:
            client = UwsClient(base_url=silent.url, token="session-token", timeout=(1.0, 0.3), store=store)
            client.daily_budget = 1
            with pytest.raises(OutcomeUnknown):
                client.suspend(select([device]))
            # The carrier may have acted on it: resending the same lines is what the guard is for.
            with pytest.raises(BudgetExceeded):
                client.suspend(select([device]))
            assert [count for _, count, _ in client.over_budget([device])] == [1]
            client.close()
    finally:
        silent.close()


def test_a_budget_of_25_for_accounts_with_the_upgrade(setup: Setup) -> None:
    _emulator, client, _store, clock, lines = setup
    client.daily_budget = 25
    alternate(client, lines[0].device, 25, clock, step=60)
    with pytest.raises(BudgetExceeded) as refused:
        client.suspend(select([lines[0].device]))
    assert refused.value.lines[0][1] == 25
    assert refused.value.budget == 25
    client.daily_budget = None  # the guard off: sent
    client.suspend(select([lines[0].device]))


def test_a_query_is_never_refused_and_its_lines_count_from_their_callbacks(tmp_path: Path) -> None:
    lines = generated_devices(2)
    clock = ManualClock(START)
    with Emulator(devices=lines, daily_budget=1000) as emulator, Store(tmp_path / "log.db", clock=clock) as store:
        receiver = Receiver(store, allow_anonymous=True)
        server = WaitressServer(receiver, **server_options(receiver, threads=4))
        try:
            emulator.register_listener(DEFAULT_ACCOUNT, f"{server.url}/callbacks")
            client = client_for(emulator.base_url, store=store, timeout=(2.0, 5.0))
            client.daily_budget = 1
            device = lines[0].device
            client.suspend(select([device]))  # the line's one action of the day, from the log
            clock.advance(60)
            # A query is not refused (its lines are not known before the carrier answers) ...
            request_id = client.restore(select(account=DEFAULT_ACCOUNT), force=False)
            wait_until(lambda: store.status(request_id).callbacks == 2, what="the query's callbacks")
            # ... and afterwards its lines count: line 1 (Active, so its Restore failed) has none,
            # line 0 has the device-list suspend and the query's restore.
            assert client.over_budget([lines[1].device]) == ()
            assert client.over_budget([device]) == ((str(device), 2, START + DAY + 60),)
            clock.advance(DAY - 1)  # only the query's action is left in the window
            assert [count for _, count, _ in client.over_budget([device])] == [1]
            client.close()
        finally:
            server.close()
            receiver.close()


def test_without_a_request_log_there_is_nothing_to_count(setup: Setup) -> None:
    emulator, _, _, _clock, lines = setup
    client = client_for(emulator.base_url, timeout=(2.0, 5.0))
    for _ in range(3):
        client.suspend(select([lines[0].device]))
        client.restore(select([lines[0].device]))
    assert client.over_budget([lines[0].device]) == ()


@pytest.mark.parametrize(
    ("environ", "budget"),
    [({}, 5), ({"UWS_ADAPTER_DAILY_BUDGET": "25"}, 25), ({"UWS_ADAPTER_DAILY_BUDGET": " 7 "}, 7)],
    ids=["default-5", "upgraded-25", "spaces"],
)
def test_the_budget_setting_from_the_environment(environ: Dict[str, str], budget: int) -> None:
    settings = load_settings(environ=environ, username=USER, password=PASSWORD)
    assert settings.daily_budget == budget
    assert connect(settings).daily_budget == budget


def test_the_budget_setting_from_a_file_and_bad_values(tmp_path: Path) -> None:
    config = tmp_path / "uws.ini"
    config.write_text("[uws-adapter]\ndaily_budget = 25\n")
    assert load_settings(config, environ={}).daily_budget == 25
    for text, problem in (
        ("five", "not a whole number"),
        ("-3", "-3 is out of range"),
        ("1000000", r"give 1 to 1,000"),
    ):
        with pytest.raises(InputError, match=problem) as refused:
            load_settings(environ={"UWS_ADAPTER_DAILY_BUDGET": text})
        assert "UWS_ADAPTER_DAILY_BUDGET" in str(refused.value) or "daily_budget" in str(refused.value)


def test_a_daily_budget_of_0_turns_the_guard_off_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(environ={"UWS_ADAPTER_DAILY_BUDGET": "0"}, username=USER, password=PASSWORD)
    assert settings.daily_budget == 0
    with caplog.at_level("WARNING", logger="uws_adapter"):
        assert connect(settings).daily_budget is None
    assert "daily budget guard is off" in caplog.text


def test_the_cli_refuses_over_the_budget_and_force_sends(tmp_path: Path) -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines, daily_budget=1000) as emulator:
        base = ["restore", "--endpoint", emulator.base_url, "--username", USER, "--timeout", "2,5",
                "--device", str(lines[0].device), "--db", str(tmp_path / "log.db"), "--daily-budget", "1"]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("UWS_")}
        env["UWS_PASSWORD"] = PASSWORD

        def run(*extra: str) -> subprocess.CompletedProcess[str]:
            return run_in_process([*base, *extra], tmp_path, env)

        assert run().returncode == 0
        refused = run()
        assert refused.returncode == 2
        assert refused.stdout == ""
        assert "1 in the last 24 h, free from" in refused.stderr
        assert str(lines[0].device) in refused.stderr
        forced = run("--force")
        assert forced.returncode == 0, forced.stderr
        assert "--force: 1 line(s) over the daily budget of 1" in forced.stderr
    with sqlite3.connect(tmp_path / "log.db") as db:
        assert [row[0] for row in db.execute("SELECT forced FROM requests ORDER BY sent_at")] == [0, 1]


def test_a_schema_2_database_is_upgraded_and_its_requests_count(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    old = sqlite3.connect(str(path), isolation_level=None)
    for script in (SCHEMA, MIGRATIONS[1], MIGRATIONS[2]):
        old.executescript(script)
    old.execute("PRAGMA user_version = 2")
    old.execute(
        "INSERT INTO requests (request_id, action, api, sent_at, devices) VALUES ('old', 'Suspend', 'soap', ?, ?)",
        (START, '["IMEI:350000000000000"]'),
    )
    old.execute("INSERT INTO request_identifiers VALUES ('old', 'IMEI:350000000000000', 0)")
    old.close()
    # 3: the budget guard; 4: leased handler claims; 5: the linear budget check; 6: dead letter sizes;
    # 7: the budget check's summary; 8: the marks of unlisted requests' callbacks; 9: requests' names;
    # 10: request_identifiers in its key's b-tree
    assert SCHEMA_VERSION == 10
    assert Store.schema_version(path) == 2
    with Store(path, clock=ManualClock(START + 10)) as store:
        assert store.recent_actions(["IMEI:350000000000000"], START - 1) == {"IMEI:350000000000000": [("old", START)]}
        store.record_request("new", "Restore", [Device.parse("IMEI:350000000000000")], forced=True)
    assert Store.schema_version(path) == SCHEMA_VERSION
    with sqlite3.connect(str(path)) as db:
        assert dict(db.execute("SELECT request_id, forced FROM requests")) == {"old": 0, "new": 1}


def test_the_bridge_refuses_a_legacy_resend_over_the_budget_with_a_fault(tmp_path: Path) -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines, daily_budget=1000) as emulator, Store(tmp_path / "bridge.db") as store:
        rest = RestClient(
            base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USER,
            password=PASSWORD, store=store, timeout=(2.0, 5.0),
        )  # fmt: skip
        rest.daily_budget = 2
        bridge = Bridge(rest, store, legacy_users={"legacy": "legacy-pw"}, callback_username="b", callback_password="p")
        server = WaitressServer(bridge, **bridge.server_options(threads=4))
        try:
            legacy = client_for(f"{server.url}/api/v2", username="legacy", password="legacy-pw", timeout=(2.0, 5.0))
            legacy.suspend(select([lines[0].device]))
            legacy.restore(select([lines[0].device]))
            sent = emulator.counters["rest_requests"]
            with pytest.raises(ServiceFault) as refused:
                legacy.suspend(select([lines[0].device]))
            assert refused.value.code == "CarrierService.REQUEST_FAILED.ProvisioningLimitExceeded"
            assert "2 in the last 24 h" in refused.value.message
            assert emulator.counters["rest_requests"] == sent  # nothing reached the REST API
        finally:
            server.close()
            bridge.close()
