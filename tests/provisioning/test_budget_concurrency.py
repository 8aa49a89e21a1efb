"""The budget guard under concurrency, against the emulator on loopback, on SQLite and PostgreSQL
(the ``location`` fixture): senders racing for a line's last free actions — threads, two store
instances on one log, and separate CLI processes — never send more than the budget; a reservation is
released only when its request provably never left."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest
from conftest import PASSWORD, USER, client_for
from pgserver import location  # noqa: F401 (a fixture)
from servers import SilentServer

from uws_adapter import Emulator, UwsClient, generated_devices, select
from uws_adapter.errors import BudgetExceeded, ConnectionFailed, OutcomeUnknown, ServiceFault
from uws_adapter.model.devices import Device
from uws_adapter.store import Backend, open_store

SENDERS = 10
#: Processes racing for the last unit (each a whole CLI start: fewer than the threads above).
CLI_SENDERS = 6


def _used(store: Backend, device: Device) -> int:
    """The line's actions in the log, pending ones included."""
    ids = sorted(f"{i.kind}:{i.identifier}" for i in device.identifiers)
    found = store.recent_actions(ids, 0.0)
    return len({request_id for actions in found.values() for request_id, _ in actions})


def _race(clients: List[UwsClient], device: Device) -> List[object]:
    """Every client suspends ``device`` at once; what each got (a RequestId or the error)."""
    start = threading.Barrier(len(clients))
    results: List[object] = [None] * len(clients)

    def send(n: int) -> None:
        start.wait()
        try:
            results[n] = clients[n].suspend(select([device]))
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("used", [4, 0], ids=["one-left", "five-left"])
def test_threads_on_two_instances_never_send_over_the_budget(location: str, used: int) -> None:
    [line] = generated_devices(1)
    stores = [open_store(location), open_store(location)]  # two instances sharing one log
    try:
        with Emulator(devices=[line], daily_budget=1000) as emulator:
            for n in range(used):
                stores[0].record_request(f"earlier-{n}", "Suspend", [line.device])
            clients = [client_for(emulator.base_url, store=stores[n % 2]) for n in range(SENDERS)]
            for client in clients:
                client.ensure_login()  # the logins are not part of the race
            sent_before = emulator.counters["requests"]
            results = _race(clients, line.device)
            accepted = [r for r in results if isinstance(r, str)]
            refused = [r for r in results if isinstance(r, BudgetExceeded)]
            assert len(accepted) == 5 - used, results
            assert len(refused) == SENDERS - len(accepted), results
            assert emulator.counters["requests"] - sent_before == len(accepted)  # the refused never left
            assert _used(stores[1], line.device) == 5
            for request_id in accepted:  # confirmed under the carrier's RequestId, trackable
                assert stores[1].status(request_id).total == 1
            for client in clients:
                client.close()
    finally:
        for store in stores:
            store.close()


def test_cli_processes_never_send_over_the_budget(location: str, tmp_path: Path) -> None:
    [line] = generated_devices(1)
    with open_store(location) as store:
        for n in range(4):
            store.record_request(f"earlier-{n}", "Suspend", [line.device])
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWS_")}
    env["UWS_PASSWORD"] = PASSWORD
    with Emulator(devices=[line], daily_budget=1000) as emulator:
        command = [sys.executable, "-m", "uws_adapter", "suspend", "--endpoint", emulator.base_url, "--username",
                   USER, "--timeout", "5,20", "--device", str(line.device), "--db", location, "--daily-budget", "5"]  # fmt: skip
        processes = [
            subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(CLI_SENDERS)
        ]
        outcomes = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in processes]  # type: ignore[union-attr]
        for process in processes:
            process.stdout.close()  # type: ignore[union-attr]
            process.stderr.close()  # type: ignore[union-attr]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0] + [2] * (CLI_SENDERS - 1), outcomes
    assert all("free from" in err for code, _, err in outcomes if code == 2)
    with open_store(location) as store:
        assert _used(store, line.device) == 5


def test_a_request_that_never_left_gives_its_reservation_back(location: str) -> None:
    [line] = generated_devices(1)
    with open_store(location) as store, Emulator(devices=[line], daily_budget=1000) as emulator:
        # A fault answer (here the login's): nothing was acted on.
        wrong = client_for(emulator.base_url, password="not-the-password", store=store)
        with pytest.raises(ServiceFault):
            wrong.suspend(select([line.device]))
        # No connection: nothing left.
        emulator_url = emulator.base_url
        closed = UwsClient(base_url="http://127.0.0.1:1/", token="t", store=store, connect_retries=0)
        with pytest.raises(ConnectionFailed):
            closed.suspend(select([line.device]))
        assert _used(store, line.device) == 0
        assert store.counts()["requests"] == 0
        client = client_for(emulator_url, store=store)
        request_id = client.suspend(select([line.device]))
        assert store.status(request_id).pending == (str(line.device),)
        for each in (wrong, closed, client):
            each.close()


def test_an_unknown_outcome_keeps_its_reservation(location: str) -> None:
    device = Device.parse("IMEI:350000000000000")
    silent = SilentServer()
    try:
        with open_store(location) as store:
            client = UwsClient(base_url=silent.url, token="session-token", timeout=(1.0, 0.3), store=store)
            with pytest.raises(OutcomeUnknown):
                client.suspend(select([device]))
            assert _used(store, device) == 1
            [kept] = [r for r in store.recent_actions(["IMEI:350000000000000"], 0.0)["IMEI:350000000000000"]]
            assert kept[0].startswith("outcome-unknown:")
            client.close()
    finally:
        silent.close()


def test_counting_first_finds_every_line_the_rows_find(location: str) -> None:
    """The check counts each line's actions in one query and reads rows only for lines that may be
    at their budget; on any history it finds the same lines over as reading every row does."""
    import random

    from uws_adapter import CallbackRequest, ReportedDevice
    from uws_adapter.provisioning.budget import lines_over, wanted_identities

    rng = random.Random(7)
    imeis = [f"IMEI:{350000000000000 + n}" for n in range(12)]
    iccids = [f"ICCID:{89148000000000000000 + n}" for n in range(12)]
    with open_store(location) as store:
        for r in range(40):  # lines named by one identifier or both, some requests linking them
            n = rng.randrange(12)
            named = rng.choice([[imeis[n]], [iccids[n]], [imeis[n], iccids[n]]])
            store.record_request(f"r{r}", "Suspend", [Device.parse("+".join(named))])
        for q in range(3):  # a query's callbacks count too
            n = rng.randrange(12)
            device = (ReportedDevice("IMEI", imeis[n][5:]),)
            store.add_callback(CallbackRequest(f"q{q}", device, service="CarrierService", action="Restore",
                                               status="Success"))  # fmt: skip
        devices = [Device.parse(f"{imeis[n]}+{iccids[n]}") for n in range(12)]
        devices += [Device.parse(imeis[n]) for n in range(12)] + [Device.parse(iccids[n]) for n in range(12)]
        everything = store.recent_actions(wanted_identities(devices), 0.0)
        for budget in range(1, 9):
            expected = lines_over(devices, everything, budget)
            assert lines_over(devices, store.device_actions(devices, 0.0, at_least=budget), budget) == expected
        assert 0 < len(lines_over(devices, everything, 4)) < len(devices)  # a history that tells them apart
