"""The receiver's life as a process: its uvicorn workers get their settings from a private file, not
passwords in their environment (issue 18 item 5); Ctrl-C closes the store and exits 130 on both
servers (issue 20 item 18); an --allow-anonymous receiver warns once (item 14); and no folder of a
run is left in $TMPDIR, not even one of a run that was killed (item 13, issue 17 item 9)."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from servers import wait_until

PASSWORD = "worker-pw-never-in-environ"
#: The folders a run makes in $TMPDIR (runfiles): the receiver's, the metrics'.
PREFIXES = ("uws-adapter-receiver-", "uws-adapter-metrics-")


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _children(pid: int) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _environment(pid: int) -> bytes:
    return (Path("/proc") / str(pid) / "environ").read_bytes()


def _companions(folder: Path) -> List[str]:
    """What an unclosed SQLite store leaves beside it (its lock file stays by design)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(("-wal", "-shm", "-journal")))


@pytest.fixture
def run_receiver(tmp_path: Path) -> Iterator[object]:
    started: List[subprocess.Popen[str]] = []

    def start(*args: str, sigint_ignored: bool = False) -> Tuple[subprocess.Popen[str], int, Path]:
        temp = tmp_path / "tmp"
        temp.mkdir(exist_ok=True)
        env: Dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "PROMETHEUS_"))}
        env["TMPDIR"] = str(temp)
        command = [sys.executable, "-m", "uws_adapter", "receiver", "--port", "0", "--db",
                   str(tmp_path / "callbacks.db"), *args]  # fmt: skip
        # What a non-interactive shell does to a command started with '&': SIGINT ignored.
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore
        )
        started.append(process)
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "http://127.0.0.1:" in banner, banner + (process.stderr.read() if process.stderr else "")
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        wait_until(lambda: _healthy(port), 60, "the receiver to answer")
        return process, port, temp

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _interrupt(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    return stderr


def test_uvicorn_workers_read_a_private_file_and_nothing_is_left(tmp_path: Path, run_receiver: object) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    # What a killed run leaves: folders named by a process that is gone (pid 2**22 + 1 is above pid_max).
    stale = [temp / f"{prefix}{2**22 + 1}-x1y2" for prefix in PREFIXES]
    for folder in stale:
        folder.mkdir()
        (folder / "left-over").write_text("from a killed run")
    process, _, _ = run_receiver(  # type: ignore[operator]
        "--server", "uvicorn", "--workers", "2", "--username", "cb-user", "--password", PASSWORD
    )
    assert not any(folder.exists() for folder in stale), "the folders of a dead run are removed at start"
    wait_until(lambda: len(_children(process.pid)) >= 2, 30, "two workers")
    for pid in [process.pid, *_children(process.pid)]:
        assert PASSWORD.encode() not in _environment(pid)
    private = list(temp.glob("uws-adapter-receiver-*"))
    assert len(private) == 1
    assert oct(private[0].stat().st_mode & 0o777) == "0o700"
    (settings,) = private[0].iterdir()
    assert oct(settings.stat().st_mode & 0o777) == "0o600"
    stderr = _interrupt(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in temp.iterdir()) == []
    assert _companions(tmp_path) == []


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["at-a-terminal", "started-with-ampersand-by-a-script"])
@pytest.mark.parametrize("server", ["waitress", "uvicorn"])
def test_ctrl_c_closes_the_store_and_exits_130(
    tmp_path: Path, run_receiver: object, server: str, sigint_ignored: bool
) -> None:
    process, _, temp = run_receiver("--server", server, "--allow-anonymous", sigint_ignored=sigint_ignored)  # type: ignore[operator]
    stderr = _interrupt(process)
    assert process.returncode == 130, stderr
    assert stderr.rstrip().endswith("uws-adapter: interrupted"), stderr
    assert _companions(tmp_path) == []
    assert list(temp.iterdir()) == []


def test_an_anonymous_receiver_warns_once_with_one_text(tmp_path: Path, run_receiver: object) -> None:
    process, _, _ = run_receiver("--server", "uvicorn", "--workers", "2", "--allow-anonymous")  # type: ignore[operator]
    stderr = _interrupt(process)
    warnings = [line for line in stderr.splitlines() if "without checking any credentials" in line]
    assert len(warnings) == 1, stderr
    assert "allow_anonymous (--allow-anonymous, UWS_CALLBACK_ALLOW_ANONYMOUS)" in warnings[0]
