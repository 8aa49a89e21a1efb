"""The uvicorn workers of ``uws-adapter receiver --workers N`` end when the command's own process
is gone without stopping them (kill -9, the OOM killer). uvicorn's workers outlived it: they kept
the port, so the receiver could not be started again ("already in use"), and went on storing
callbacks with no process left to stop them."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import List

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on pidfds (Linux)")

#: Long enough for a loaded machine; a worker that outlives its supervisor never ends at all.
WAIT = 60.0


def _workers_of(parent: int) -> List[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == parent and b"spawn_main" in command:
            found.append(int(entry))
    return found


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_workers_end_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UWS_")}
    command = [sys.executable, "-m", "uws_adapter", "receiver", "--server", "uvicorn", "--workers", "2",
               "--port", "0", "--allow-anonymous", "--db", str(tmp_path / "cb.db")]  # fmt: skip
    supervisor = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert supervisor.stdout is not None
        banner = supervisor.stdout.readline().decode()
        url = banner.split(" on ", 1)[1].split()[0]
        port = int(url.rstrip("/").rpartition(":")[2])
        # The banner comes before the workers serve: wait for them (a refused connection is the event).
        workers: List[int] = []
        while not (len(workers) == 2 and _ready(f"{url}healthz")):
            assert supervisor.poll() is None, supervisor.stderr.read().decode() if supervisor.stderr else ""
            workers = _workers_of(supervisor.pid)
            select.select([], [], [], 0.1)
        handles = [os.pidfd_open(pid) for pid in workers]
    finally:
        supervisor.send_signal(signal.SIGKILL)
        supervisor.communicate()
    still: List[int] = []
    try:
        for pid, handle in zip(workers, handles):
            readable, _, _ = select.select([handle], [], [], WAIT)
            if not readable:
                still.append(pid)
                os.kill(pid, signal.SIGKILL)  # not left behind by a failing test
    finally:
        for handle in handles:
            os.close(handle)
    assert not still, f"workers {still} still ran {WAIT:g} s after their supervisor was killed"
    with socket.socket() as probe:  # the port is free again: a new receiver can start there
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
