"""Tracking requests to completion, from the command line, and the end-to-end demo."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest
from test_cli import run

from uws_adapter import Device, Emulator, UwsClient, generated_devices, select
from uws_adapter.emulator import DEFAULT_ACCOUNT
from uws_adapter.store import Store
from uws_adapter.tracking import progress_bar


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
    from waitress.server import create_server  # the receiver needs it

    from uws_adapter.receiver import Receiver, server_options

    db = tmp_path / "callbacks.db"
    lines = generated_devices(5)
    with Store(db) as store:
        receiver = Receiver(store, allow_anonymous=True)
        server = create_server(receiver, **server_options(receiver, host="127.0.0.1", port=0))
        threading.Thread(target=server.run, daemon=True).start()
        try:
            with Emulator(devices=lines) as emulator:
                emulator.register_listener(DEFAULT_ACCOUNT, f"http://127.0.0.1:{server.effective_port}/")
                devices: List[Device] = [line.device for line in lines]
                args = ["suspend", "--db", str(db), "--endpoint", emulator.base_url, "--username", "uws-user"]
                args += [a for d in devices for a in ("--device", str(d))]
                sent = run(args, tmp_path, UWS_PASSWORD="uws-password")
                assert sent.returncode == 0, sent.stderr
                request_id = sent.stdout.strip()
                waited = run(["wait", request_id, "--db", str(db), "--timeout", "30"], tmp_path)
                assert waited.returncode == 0, waited.stderr
                assert "5 succeeded, 0 failed, 0 pending of 5 (complete)" in waited.stdout
                assert "[##############################] 5/5" in waited.stderr
                status = run(["status", request_id, "--db", str(db), "--json"], tmp_path)
                assert json.loads(status.stdout)["complete"] is True
                listed = run(["callbacks", "--db", str(db), "--request-id", request_id], tmp_path)
                assert len(listed.stdout.splitlines()) == 5
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
    assert "1 devices still without a callback after 0.3 s" in result.stderr
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
