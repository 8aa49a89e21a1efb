"""How long a callback takes to be acknowledged while hostile clients hold connections open, on the
receiver (waitress, uvicorn with 1 and 2 workers) and the bridge, each started as the CLI starts it
with the default connection limit (1000 per process):

* held: N idle keep-alive connections (each after one GET /health) and M slow-header plus M
  slow-body connections (a byte a second each), with the deadlines raised to 300 s so that nothing
  is timed out while measuring: what keeps callbacks flowing is the limit (idle connections, then
  the longest-arriving requests, make room for a newcomer);
* flood: more slow-header clients than the limit (default deadlines), then a carrier retrying
  every 0.1 s: how long until its first callback is acknowledged, and the callbacks after it.

    python benchmarks/slow_clients.py [--idle N] [--slow M] [--flood F] [--callbacks K]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from uws_adapter import CallbackRequest, ReportedDevice, render_callback
from uws_adapter.store.sqlite import Store

USERNAME, SECRET = "listener", "bench-secret"
SERVICES: Dict[str, List[str]] = {
    "waitress": ["receiver", "--server", "waitress"],
    "uvicorn-1-worker": ["receiver", "--server", "uvicorn", "--workers", "1"],
    "uvicorn-2-workers": ["receiver", "--server", "uvicorn", "--workers", "2"],
    "bridge": ["bridge", "--legacy-login", "legacy:legacy-pw"],
}
LIMIT = 1000  # the default --max-connections
LONG = ["--idle-timeout", "300", "--header-timeout", "300", "--body-timeout", "300"]


def start(name: str, directory: Path, options: List[str]) -> Tuple[subprocess.Popen[bytes], int, Path]:
    db, out = directory / f"{name}-{time.monotonic_ns()}.db", directory / f"{name}.out"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("UWS_", "THINGSPACE_"))}
    env.update(
        UWS_CALLBACK_USERNAME=USERNAME, UWS_CALLBACK_PASSWORD=SECRET, THINGSPACE_CLIENT_ID="id",
        THINGSPACE_CLIENT_SECRET="secret", UWS_USERNAME="u", UWS_PASSWORD="p",
        UWS_ADAPTER_REST_URL="http://127.0.0.1:9/api",
    )  # fmt: skip
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "uws_adapter", *SERVICES[name], "--port", "0", "--db", str(db), *options],
            stdout=stdout, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line, newline, _ = out.read_text().partition("\n")
        if newline:
            port = int(line.partition("http://127.0.0.1:")[2].partition("/")[0])
            while time.monotonic() < deadline:
                if callback(port, -1) is not None:  # every worker up (one callback stored before timing)
                    time.sleep(0.5)
                    return process, port, db
                time.sleep(0.05)
        time.sleep(0.05)
    raise SystemExit(f"{name} did not start")


def idle_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: r\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    return sock


def callback(port: int, n: int) -> Optional[float]:
    """One callback on a new connection: seconds until acknowledged, or None when refused."""
    body = render_callback(
        CallbackRequest(
            f"bench-{n}",
            devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),),
            username=USERNAME,
            password=SECRET,
            service="CarrierService",
            action="Suspend",
            status="Success",
            callback_count=1,
        )
    )
    began = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/callbacks", body=body, headers={"Content-Type": "text/xml"})
        status = connection.getresponse().status
        connection.close()
    except OSError:
        return None
    return time.perf_counter() - began if status == 200 else None


def open_slow(port: int, count: int, body: bool) -> List[socket.socket]:
    prefix = b"POST /callbacks HTTP/1.1\r\nHost: r\r\n"
    prefix += b"Content-Type: text/xml\r\nContent-Length: 100000\r\n\r\n" if body else b"X-Slow: "
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with contextlib.suppress(OSError):  # refused at the limit
            sock.sendall(prefix)
        opened.append(sock)
    return opened


def trickle(sockets: List[socket.socket], stop: threading.Event) -> None:
    """A byte a second on each slow connection, until ``stop``."""

    def run() -> None:
        while not stop.wait(1.0):
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    threading.Thread(target=run, daemon=True).start()


def ms(seconds: List[float]) -> str:
    if not seconds:
        return "none"
    return f"median {statistics.median(seconds) * 1000:.1f} ms, max {max(seconds) * 1000:.1f} ms"


def stop_service(process: subprocess.Popen[bytes], sockets: List[socket.socket], stop: threading.Event) -> None:
    stop.set()
    for sock in sockets:
        sock.close()
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def held(name: str, idle: int, slow: int, callbacks: int, directory: Path) -> str:
    process, port, db = start(name, directory, LONG)
    sockets: List[socket.socket] = []
    stop = threading.Event()
    try:
        alone = [t for t in (callback(port, n) for n in range(callbacks)) if t is not None]
        sockets += [idle_client(port) for _ in range(idle)]
        slow_ones = open_slow(port, slow, body=False) + open_slow(port, slow, body=True)
        sockets += slow_ones
        trickle(slow_ones, stop)
        loaded = [t for t in (callback(port, callbacks + n) for n in range(callbacks)) if t is not None]
        with Store(db) as store:
            stored = len(store.events()) - 1  # less the start-up probe
        return (
            f"{name:18} alone: {ms(alone)} | with {idle} idle + {slow} slow-header + {slow} slow-body held: "
            f"{len(loaded)}/{callbacks} acknowledged, {ms(loaded)}; stored {stored}/{2 * callbacks}"
        )
    finally:
        stop_service(process, sockets, stop)


def flood(name: str, count: int, callbacks: int, directory: Path) -> str:
    process, port, _ = start(name, directory, [])
    stop = threading.Event()
    sockets = open_slow(port, count, body=False)
    try:
        trickle(sockets, stop)
        began, refused = time.perf_counter(), 0
        while callback(port, 0) is None:
            refused += 1
            time.sleep(0.1)
        first = time.perf_counter() - began
        after = [t for t in (callback(port, 1 + n) for n in range(callbacks)) if t is not None]
        return (
            f"{name:18} {count} slow-header clients: first callback acknowledged after {first:.2f} s "
            f"({refused} refused attempts), then {len(after)}/{callbacks} acknowledged, {ms(after)}"
        )
    finally:
        stop_service(process, sockets, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--idle", type=int, default=LIMIT)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--flood", type=int, default=1100, help="slow-header clients per server process")
    parser.add_argument("--callbacks", type=int, default=20)
    parser.add_argument("--only", choices=list(SERVICES), action="append")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this client holds all those sockets
    with tempfile.TemporaryDirectory() as directory:
        for name in args.only or SERVICES:
            print(held(name, args.idle, args.slow, args.callbacks, Path(directory)), flush=True)
        for name in args.only or SERVICES:
            count = args.flood * (2 if name == "uvicorn-2-workers" else 1)
            print(flood(name, count, args.callbacks, Path(directory)), flush=True)


if __name__ == "__main__":
    main()
