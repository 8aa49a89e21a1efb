"""The CLI emulator delivers to the CLI receiver when both read the same callback credentials
(UWS_CALLBACK_USERNAME / UWS_CALLBACK_PASSWORD), and says so when the receiver refuses them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from conftest import PASSWORD, USER
from servers import wait_until

from uws_adapter import UwsClient, select
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.store.sqlite import Store

CREDENTIALS = {"UWS_CALLBACK_USERNAME": "cb-user", "UWS_CALLBACK_PASSWORD": "cb-secret-4711"}


class Service:
    """A CLI service process, its first stdout line (the banner) read."""

    def __init__(self, args: List[str], cwd: Path, env: Dict[str, str]) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("UWS_CALLBACK_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uws_adapter", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**environment, **env},
        )  # fmt: skip
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline()
        self.stderr = ""

    def stop(self) -> None:
        if self.process.stdout is not None and self.process.stdout.closed:
            return  # stopped already (communicate closed its pipes)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        _, self.stderr = self.process.communicate(timeout=20)


@pytest.fixture
def services() -> Iterator[List[Service]]:
    started: List[Service] = []
    yield started
    for service in started:
        service.stop()  # also one that has exited: its pipes are closed


def receiver(tmp_path: Path, services: List[Service], *extra: str) -> str:
    service = Service(["receiver", "--port", "0", "--db", str(tmp_path / "cb.db"), *extra], tmp_path, CREDENTIALS)
    services.append(service)
    assert " on http://127.0.0.1:" in service.banner, service.banner + service.process.stderr.read()  # type: ignore[union-attr]
    return service.banner.split(" on ")[1].split()[0]


def emulator(tmp_path: Path, services: List[Service], listener: str, env: Dict[str, str], *extra: str) -> Service:
    args = ["emulator", "--port", "0", "--devices", "3", "--listener", listener, *extra]
    service = Service(args, tmp_path, env)
    services.append(service)
    assert service.banner.startswith("emulator: UWS at "), service.banner
    return service


def suspend_all(banner: str) -> str:
    client = UwsClient(base_url=banner.split(" at ")[1].split(",")[0], username=USER, password=PASSWORD,
                       timeout=(2.0, 5.0))  # fmt: skip
    return client.suspend(select(account=DEFAULT_ACCOUNT))


def stored(database: Path) -> int:
    with Store(database) as store:
        return sum(1 for _ in store.iter_events())


@pytest.mark.parametrize("workers", ["1", "2"], ids=["one-worker", "two-workers"])
def test_emulator_and_receiver_agree_on_credentials_from_the_environment(
    tmp_path: Path, services: List[Service], workers: str
) -> None:  # fmt: skip
    url = receiver(tmp_path, services, "--workers", workers)
    emulated = emulator(tmp_path, services, url, CREDENTIALS)
    request_id = suspend_all(emulated.banner)
    wait_until(lambda: stored(tmp_path / "cb.db") == 3, 30, "three stored callbacks")
    with Store(tmp_path / "cb.db") as store:
        assert {event.callback.request_id for event in store.iter_events()} == {request_id}
    emulated.stop()
    assert "answered 401" not in emulated.stderr


def test_credentials_from_the_command_line(tmp_path: Path, services: List[Service]) -> None:
    url = receiver(tmp_path, services)
    emulated = emulator(tmp_path, services, url, {}, "--listener-username", "cb-user",
                        "--listener-password", "cb-secret-4711")  # fmt: skip
    suspend_all(emulated.banner)
    wait_until(lambda: stored(tmp_path / "cb.db") == 3, 30, "three stored callbacks")


def test_a_refusal_is_logged_without_the_secret(tmp_path: Path, services: List[Service]) -> None:
    url = receiver(tmp_path, services)
    wrong = {"UWS_CALLBACK_USERNAME": "cb-user", "UWS_CALLBACK_PASSWORD": "not-the-secret-0815"}
    emulated = emulator(tmp_path, services, url, wrong)
    lines: List[str] = []
    stream = emulated.process.stderr
    assert stream is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    suspend_all(emulated.banner)
    # The first refusal is a warning, logged at once (whatever else the process logs around it).
    wait_until(lambda: any("answered 401" in line for line in lines), 20, "the emulator to log the 401")
    line = next(line for line in lines if "answered 401" in line)
    assert "--listener-password" in line
    emulated.process.send_signal(signal.SIGINT)
    emulated.process.wait(timeout=20)
    reader.join(timeout=10)
    assert "not-the-secret-0815" not in "".join(lines)
    assert "cb-secret-4711" not in "".join(lines)
    assert stored(tmp_path / "cb.db") == 0


def test_half_a_listener_login_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uws_adapter", "emulator", "--listener", "http://127.0.0.1:9/", "--listener-username",
         "u"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("UWS_CALLBACK_")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "--listener-username: give both a username and a password" in result.stderr
