"""kill -9 of the receiver under load, three times at random moments: nothing acknowledged is lost,
the database stays intact, and each restarted receiver takes traffic again. (How fast it restarts
is not asserted: on a loaded machine that measures the machine; a restart that never takes
traffic fails after a generous bound.)"""

from __future__ import annotations

import http.client
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Set

import pytest
from servers import closed_port, wait_until

from uws_adapter import CallbackRequest, ReportedDevice, render_callback

#: How long a restarted receiver may take to answer again before the test fails: far above the
#: second or two it needs, so that only a receiver that does not come back fails.
RESTART_BOUND = 60.0
#: Kills per run: each at a random moment under load (the durability campaigns ran
#: dozens; three in every run keep the suite short and still land in different phases of a commit).
KILLS = 3

SERVERS = {
    "waitress": ["--server", "waitress", "--threads", "8"],
    "uvicorn-2-workers": ["--server", "uvicorn", "--workers", "2"],
}


def _start(db: Path, port: int, server: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "uws_adapter", "receiver", "--port", str(port), "--db", str(db), "--allow-anonymous",
         *SERVERS[server]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip


def _post(port: int, body: bytes) -> Optional[int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):  # a kill mid-answer is a bad status line
        return None
    finally:
        connection.close()


def _callback(n: int) -> bytes:
    return render_callback(
        CallbackRequest(
            f"req-{n // 100}",
            devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),),
            service="CarrierService",
            action="Suspend",
            status="Success",
            callback_count=1,
        )
    )


@pytest.mark.parametrize("server", list(SERVERS))
def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path, server: str) -> None:
    db, port = tmp_path / "callbacks.db", closed_port()
    rng = random.Random(20261123)
    acknowledged: Set[int] = set()
    lock = threading.Lock()
    counter = iter(range(10**9))
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            with lock:
                n = next(counter)
            if _post(port, _callback(n)) == 200:
                with lock:
                    acknowledged.add(n)
            else:
                time.sleep(0.05)  # refused while it restarts: six threads spinning would slow the restart

    def takes_traffic() -> bool:
        # A callback of our own, sent after the previous receiver is dead: only the new one can
        # acknowledge it (a load worker's count could still grow from an answer of the old one).
        with lock:
            n = next(counter)
        if _post(port, _callback(n)) != 200:
            return False
        with lock:
            acknowledged.add(n)
        return True

    process = _start(db, port, server)
    workers = [threading.Thread(target=load, daemon=True) for _ in range(6)]
    for worker in workers:
        worker.start()
    try:
        wait_until(takes_traffic, RESTART_BOUND, "the receiver to take traffic")
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))  # under load for a random while: the moment of the kill
            os.killpg(process.pid, signal.SIGKILL)  # the receiver and any worker processes it started
            process.wait(timeout=10)
            process = _start(db, port, server)
            wait_until(takes_traffic, RESTART_BOUND, f"the receiver to take traffic after kill {kill + 1}")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=10)

    connection = sqlite3.connect(str(db))
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {int(row[0].split(":")[1]) - 350000000000000 for row in connection.execute("SELECT device FROM events")}
    assert len(acknowledged) > 100, "the load generator barely got through"
    assert acknowledged - stored == set()
