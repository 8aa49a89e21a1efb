"""Start-up failures of the services: one line on stderr, exit 2 for bad input, 1 otherwise, no
banner, and no database file left behind. A start refused before it binds runs in this process
(tests/clirun.py stops one that serves after all, failing the test); one that fails to bind, as a
process."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from clirun import run_in_process

#: What each service needs to get as far as listening.
SERVICE_ENV: Dict[str, str] = {
    "UWS_CALLBACK_USERNAME": "cb-user", "UWS_CALLBACK_PASSWORD": "cb-secret",
    "UWS_BRIDGE_LEGACY_LOGIN": "legacy:legacy-secret", "UWS_USERNAME": "uws-user", "UWS_PASSWORD": "uws-password",
    "THINGSPACE_CLIENT_ID": "ts-client", "THINGSPACE_CLIENT_SECRET": "ts-secret",
    "UWS_ADAPTER_REST_URL": "http://127.0.0.1:9/api",
}  # fmt: skip
SERVICES = {
    "receiver-uvicorn": ["receiver", "--server", "uvicorn"],
    "receiver-waitress": ["receiver", "--server", "waitress"],
    "bridge": ["bridge"],
    "emulator": ["emulator"],
}
WITH_DB = ["receiver-uvicorn", "receiver-waitress", "bridge"]


def start(args: List[str], cwd: Path, *, process: bool = False) -> subprocess.CompletedProcess[str]:
    """The service's start: refused before it binds, in this process (tests/clirun.py); with
    ``process``, as a process (a start that fails after binding leaves its socket to the exit)."""
    environment = {k: v for k, v in os.environ.items() if k != "UWS_ADAPTER_DEBUG"}
    if not process:
        return run_in_process(args, cwd, {**environment, **SERVICE_ENV})
    return subprocess.run(
        [sys.executable, "-m", "uws_adapter", *args], cwd=cwd, capture_output=True, text=True,
        env={**environment, **SERVICE_ENV}, timeout=60, check=False,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stdout == "", "no banner for a start that failed"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("uws-adapter: error: ")
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("service", list(SERVICES), ids=list(SERVICES))
def test_a_port_in_use_is_one_line_exit_1_and_leaves_no_database(
    tmp_path: Path, busy_port: int, service: str
) -> None:  # fmt: skip
    args = [*SERVICES[service], "--port", str(busy_port)]
    if service in WITH_DB:
        args += ["--db", str(tmp_path / "new.db")]
    result = start(args, tmp_path, process=True)
    assert result.returncode == 1
    assert f"--port: 127.0.0.1:{busy_port} is already in use" in one_line(result)
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("service", list(SERVICES), ids=list(SERVICES))
@pytest.mark.parametrize("port", ["99999", "-1"], ids=["too-big", "negative"])
def test_a_port_out_of_range_is_bad_input(tmp_path: Path, service: str, port: str) -> None:
    result = start([*SERVICES[service], "--port", port, "--db", str(tmp_path / "x.db")]
                   if service in WITH_DB else [*SERVICES[service], "--port", port], tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert f"--port: {port} is out of range" in one_line(result)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("service", WITH_DB, ids=WITH_DB)
def test_a_database_in_a_missing_folder_is_named(tmp_path: Path, service: str) -> None:
    database = tmp_path / "missing" / "callbacks.db"
    result = start([*SERVICES[service], "--port", "0", "--db", str(database)], tmp_path)
    assert result.returncode == 2
    line = one_line(result)
    assert f"--db: the folder of the database {database} does not exist" in line
    assert ".writelock" not in line


def test_an_existing_database_is_kept_when_the_start_fails(tmp_path: Path, busy_port: int) -> None:
    database = tmp_path / "kept.db"
    first = start(["receiver", "--server", "waitress", "--port", "99999", "--db", str(database)], tmp_path)
    assert first.returncode == 2
    database.write_bytes(b"")  # a database the user already has
    result = start(["receiver", "--server", "waitress", "--port", str(busy_port), "--db", str(database)], tmp_path,
                   process=True)  # fmt: skip
    assert result.returncode == 1
    assert database.exists()


def test_a_bridge_without_its_whole_rest_login_names_what_is_unset(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "THINGSPACE_"))}
    given = {k: v for k, v in SERVICE_ENV.items() if k not in ("THINGSPACE_CLIENT_SECRET", "UWS_PASSWORD")}
    line = one_line(run_in_process(["bridge", "--port", "0"], tmp_path, {**environment, **given}))
    assert "REST credentials: incomplete: THINGSPACE_CLIENT_SECRET, UWS_PASSWORD not set" in line
    assert list(tmp_path.iterdir()) == []


def test_a_bridge_without_callback_credentials_says_where_to_give_them(tmp_path: Path) -> None:
    # The advice was the receiver's cut at its first ", or": it ended inside its parenthesis,
    # without the settings file (and the receiver's names [receiver] where the bridge reads [bridge]).
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "THINGSPACE_"))}
    given = {k: v for k, v in SERVICE_ENV.items() if k != "UWS_CALLBACK_PASSWORD"}
    line = one_line(run_in_process(["bridge", "--port", "0"], tmp_path, {**environment, **given}))
    assert line == (
        "uws-adapter: error: --username: the bridge needs callback credentials; give --username and --password "
        "(or UWS_CALLBACK_USERNAME and UWS_CALLBACK_PASSWORD, or username and password in [bridge] of the settings "
        "file)"
    )


@pytest.mark.parametrize(
    "service",
    [["receiver", "--server", "uvicorn", "--workers", "2"], ["receiver", "--server", "uvicorn"],
     ["receiver", "--server", "waitress"]],
    ids=["uvicorn-2-workers", "uvicorn-1-worker", "waitress"],
)  # fmt: skip
@pytest.mark.parametrize("variable", ["UWS_CALLBACK_PASSWORD", "UWS_CALLBACK_USERNAME"])
def test_a_login_that_is_not_text_is_one_line_before_the_banner(
    tmp_path: Path, service: List[str], variable: str
) -> None:
    # A Latin-1 password in a UTF-8 locale reaches Python as lone surrogates. The uvicorn receiver
    # announced itself, then each worker died on it with a traceback, and with two workers the
    # supervisor started them again for ever: the command never ended.
    environment = {k: v for k, v in os.environ.items() if k != "UWS_ADAPTER_DEBUG"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "uws_adapter", *service, "--port", "0", "--db", str(tmp_path / "c.db")],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
            env={**environment, **SERVICE_ENV, variable: "caf\udce9-secret"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the receiver neither served nor ended")
    assert result.returncode == 2
    line = one_line(result)
    assert "is not text at position 3" in line
    assert "caf" not in line


@pytest.mark.parametrize("variable", ["UWS_CALLBACK_PASSWORD", "UWS_CALLBACK_USERNAME"])
def test_an_emulator_listener_login_no_callback_can_carry_is_refused_at_start(tmp_path: Path, variable: str) -> None:
    # The emulator started, and every callback to the listener then failed ("not delivered") on
    # a password that a SOAP document cannot carry.
    # The refusal comes once the emulator listens: its server is closed, not left to the collector
    # (an unclosed socket's ResourceWarning then surfaced in whichever test ran next).
    environment = {k: v for k, v in os.environ.items() if k != "UWS_ADAPTER_DEBUG"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        refused = run_in_process(
            ["emulator", "--port", "0", "--listener", "http://127.0.0.1:9/callbacks"], tmp_path,
            {**environment, **SERVICE_ENV, variable: "caf\udce9\x01"},
        )  # fmt: skip
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert refused.returncode == 2
    line = one_line(refused)
    assert "listener" in line
    assert "cannot carry at position 3" in line
