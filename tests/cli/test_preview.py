"""``restore|suspend ... --preview`` as a process against the emulator: the count and first lines
of a query through the REST device list on either backend, nothing sent; what it needs when the
REST credentials are missing; and the count in the interactive confirmation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER
from firstcontact import run_cli

from uws_adapter import Emulator, generated_devices
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, SUSPENDED


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    lines = generated_devices(15)
    for line in lines[:12]:
        line.group = "fleet-a"
    for line in lines[:5]:
        line.state = SUSPENDED
    with Emulator(devices=lines) as served:
        served.rest.list_page_size = 5
        yield served


def settings(emulator: Emulator, *, rest: bool = True) -> Dict[str, str]:
    env = {"UWS_USERNAME": USER, "UWS_PASSWORD": PASSWORD, "UWS_ENDPOINT": emulator.base_url,
           "UWS_ADAPTER_REST_URL": emulator.rest_url}  # fmt: skip
    if rest:
        env.update({"THINGSPACE_CLIENT_ID": CLIENT_ID, "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET})
    return env


@pytest.mark.parametrize("backend", ["soap", "rest"])
def test_a_query_preview_counts_and_sends_nothing(tmp_path: Path, emulator: Emulator, backend: str) -> None:
    done = run_cli(["restore", "--account", DEFAULT_ACCOUNT, "--group", "fleet-a", "--preview", "--backend", backend],
                   tmp_path, **settings(emulator))  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"12 line(s) match account {DEFAULT_ACCOUNT}, group fleet-a now"
    assert lines[1].startswith("  IMEI:350000000000000+ICCID:89148000000000000000  state Suspended")
    assert "  ... and 2 more" in lines
    assert "states: Active 7, Suspended 5" in lines
    assert "restore acts on suspended lines: 7 of these are not; each of them would get a failed callback" in (
        done.stdout
    )
    assert lines[-1] == "preview only: no restore was sent"
    assert emulator.counters["requests"] == 0
    assert [line.state for line in emulator.devices[:5]] == [SUSPENDED] * 5
    assert PASSWORD not in done.stdout + done.stderr


def test_without_rest_credentials_it_says_what_it_needs(tmp_path: Path, emulator: Emulator) -> None:
    done = run_cli(["suspend", "--account", DEFAULT_ACCOUNT, "--preview"], tmp_path, **settings(emulator, rest=False))
    assert done.returncode == 2
    assert "REST device-list API" in done.stderr
    assert "THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_device_list_preview_needs_no_service(tmp_path: Path) -> None:
    done = run_cli(["suspend", "--device", "IMEI:350000000000001", "--device", "MDN:5551234567", "--preview"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "2 line(s) listed; suspend would reach each of them", "  IMEI:350000000000001", "  MDN:5551234567",
        "preview only: no suspend was sent",
    ]  # fmt: skip


def test_the_confirmation_shows_the_count(tmp_path: Path, emulator: Emulator) -> None:
    """On a terminal, the question names how many lines the selection reaches now; "n" sends nothing."""
    main, secondary = os.openpty()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "THINGSPACE_"))}
    environment.update(settings(emulator))
    process = subprocess.Popen(
        [sys.executable, "-m", "uws_adapter", "suspend", "--group", "fleet-a", "--account", DEFAULT_ACCOUNT],
        stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=environment, text=True,
    )  # fmt: skip
    os.close(secondary)
    try:
        os.write(main, b"n\n")
        _, err = process.communicate(timeout=60)
    finally:
        os.close(main)
    assert process.returncode == 2
    assert f"suspend every line of account {DEFAULT_ACCOUNT}, group fleet-a (12 line(s) now)? [y/N]" in err
    assert "nothing was sent" in err
    assert emulator.counters["requests"] == 0
