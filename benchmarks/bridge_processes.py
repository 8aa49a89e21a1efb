"""What the migration bridge adds to the REST call it makes, with each party in a process of its
own, as in production: the emulator (``uws-adapter emulator``), the bridge (``uws-adapter bridge``:
waitress, its connection limits, the access log at INFO to a file, a SQLite store with full
synchronous commits, the carrier's budget of 5 actions a line a day, every call to a fresh line),
the floor (an answer-only app on the same server stack, as in ``bridge_call.py``), and this process:
the legacy clients and the direct REST call (a ``RestClient``), interleaved call by call.

``bridge_call.py`` runs all of them in one process, which lets it time the bridge's work inside
the bridge, but makes every party wait on one interpreter lock: the same steps timed alone are
several times shorter there. Here nothing is shared but the machine's two cores, so what the
bridge adds is what a legacy system on another machine would see, less the network.

The legacy client is timed twice, interleaved: as a ``requests`` session and as a bare
``http.client`` connection (the HTTP layer of a PHP, Java or .NET SOAP stack is closer to the
latter; ``requests`` costs about half a millisecond a call of its own). Both keep their connection
alive and send the envelope our UWS client builds.

    python benchmarks/bridge_processes.py [--calls 300] [--history N]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Dict, List, Optional, Tuple

import requests
from bridge_call import WARMUP, _hop_only, _percentile
from budget_check import fill_history

from uws_adapter import RestClient, Suspend, generated_devices, select
from uws_adapter.store.sqlite import Store
from uws_adapter.uws.envelope import build_envelope, build_login

USER, PASSWORD = "uws-user", "uws-password"
CLIENT_ID, SECRET = "ts-client", "ts-secret"
LEGACY_USER, LEGACY_PASSWORD = "legacy", "legacy-password"
HERE = Path(__file__).resolve().parent
_URL = re.compile(r"http://127\.0\.0\.1:\d+")


def _serve_floor() -> None:
    """The floor's process: the answer-only app on the bridge's server stack, until stdin closes."""
    from uws_adapter.logs import configure_logging
    from uws_adapter.serving.access import AccessLog
    from uws_adapter.serving.thread import ServedApp

    configure_logging("info")  # the access line, to stderr (a file), as the bridge writes its own
    served = ServedApp(AccessLog(_hop_only, "bridge"), threads=16, max_body=8 * 1024 * 1024, ident="floor")
    served.start()
    print(f"floor at {served.url}", flush=True)
    sys.stdin.read()
    served.stop()


def _start(command: List[str], log: IO[str], env: Optional[Dict[str, str]] = None) -> Tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=HERE
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    found = _URL.search(banner)
    if found is None:
        process.kill()
        raise SystemExit(f"{command[3:5]} did not start: {banner!r} (see {log.name})")
    return process, found.group(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls of each kind (default 300)")
    parser.add_argument("--history", type=int, default=0, help="callbacks of the last 24 h in the store (default 0)")
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        _serve_floor()
        return 0
    with tempfile.TemporaryDirectory(prefix="bridge-processes-") as scratch:
        return _run(args, Path(scratch))


def _run(args: argparse.Namespace, folder: Path) -> int:
    total = 3 * (args.calls + WARMUP)  # fresh lines for the direct call and both legacy clients
    with Store(folder / "bridge.db") as store:
        fill_history(store, args.history)
    cli = [sys.executable, "-m", "uws_adapter"]
    logs = {name: open(folder / f"{name}.log", "w") for name in ("emulator", "bridge", "floor")}  # noqa: SIM115
    processes: List[subprocess.Popen[str]] = []
    try:
        emulator, emulator_url = _start(
            [*cli, "emulator", "--port", "0", "--devices", str(total), "--user", f"{USER}:{PASSWORD}",
             "--client", f"{CLIENT_ID}:{SECRET}"], logs["emulator"],
        )  # fmt: skip
        processes.append(emulator)
        environment = {
            **os.environ, "UWS_ADAPTER_REST_URL": f"{emulator_url}/api", "THINGSPACE_CLIENT_ID": CLIENT_ID,
            "THINGSPACE_CLIENT_SECRET": SECRET, "UWS_USERNAME": USER, "UWS_PASSWORD": PASSWORD,
            "UWS_ADAPTER_DAILY_BUDGET": "5", "UWS_CALLBACK_USERNAME": "cb", "UWS_CALLBACK_PASSWORD": "cb-password",
            "UWS_BRIDGE_LEGACY_LOGIN": f"{LEGACY_USER}:{LEGACY_PASSWORD}",
        }  # fmt: skip
        bridge, bridge_url = _start(
            [*cli, "bridge", "--port", "0", "--db", str(folder / "bridge.db"), "--log-level", "info"],
            logs["bridge"], environment,
        )  # fmt: skip
        processes.append(bridge)
        floor, floor_url = _start([sys.executable, str(HERE / "bridge_processes.py"), "--serve-floor"], logs["floor"])
        processes.append(floor)
        timings = _timed(args.calls, f"{emulator_url}/api", f"{bridge_url}/api/v2", f"{floor_url}/api/v2", total)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()
    access_lines = sum(1 for _ in open(folder / "bridge.log"))  # noqa: SIM115
    _report(args, timings, access_lines)
    return 0


def _timed(calls: int, rest_url: str, bridge_url: str, floor_url: str, total: int) -> Dict[str, List[float]]:
    lines = generated_devices(total)  # the emulator's own lines: the same generator, the same order
    devices = iter(line.device for line in lines)
    direct = RestClient(base_url=rest_url, client_id=CLIENT_ID, client_secret=SECRET, username=USER, password=PASSWORD)
    legacy = requests.Session()
    lean = {name: http.client.HTTPConnection(url.split("//")[1].split("/")[0], timeout=10)
            for name, url in (("bridge-lean", bridge_url), ("hop-lean", floor_url))}  # fmt: skip
    login = build_login(LEGACY_USER, LEGACY_PASSWORD, base_url=bridge_url)
    answer = legacy.post(login.url, data=login.body, headers=dict(login.headers), timeout=10)
    if "SessionToken>" not in answer.text:
        raise SystemExit(f"the bridge refused the legacy LogIn: {answer.status_code} {answer.text[:300]}")
    token = answer.text.split("SessionToken>")[1].split("<")[0]
    timings: Dict[str, List[float]] = {name: [] for name in ("bridge", "direct", "hop", *lean)}

    def with_requests(name: str, base_url: str, fresh: bool) -> Callable[[], None]:
        def call() -> None:
            device = next(devices) if fresh else lines[0].device
            request = build_envelope(Suspend(), select([device]), token=token, base_url=base_url)
            body, headers = request.body, dict(request.headers)
            start = time.perf_counter()
            response = legacy.post(request.url, data=body, headers=headers, timeout=10)
            timings[name].append((time.perf_counter() - start) * 1000)
            if response.status_code != 200 or b"RequestId" not in response.content:
                raise SystemExit(f"{name}: answered {response.status_code} {response.text[:300]}")

        return call

    def with_http_client(name: str, base_url: str, fresh: bool) -> Callable[[], None]:
        def call() -> None:
            device = next(devices) if fresh else lines[0].device
            request = build_envelope(Suspend(), select([device]), token=token, base_url=base_url)
            path = "/" + request.url.split("/", 3)[3]
            connection, body, headers = lean[name], request.body, dict(request.headers)
            start = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
            timings[name].append((time.perf_counter() - start) * 1000)
            if response.status != 200 or b"RequestId" not in content:
                raise SystemExit(f"{name}: answered {response.status} {content[:300]!r}")

        return call

    def direct_rest() -> None:
        selection = select([next(devices)])
        start = time.perf_counter()
        direct.suspend(selection)
        timings["direct"].append((time.perf_counter() - start) * 1000)

    order = [
        with_requests("bridge", bridge_url, True), direct_rest, with_requests("hop", floor_url, False),
        with_http_client("bridge-lean", bridge_url, True), with_http_client("hop-lean", floor_url, False),
    ]  # fmt: skip
    try:
        for _ in range(calls + WARMUP):  # interleaved, so that drift touches every kind alike
            for call in order:
                call()
    finally:
        legacy.close()
        direct.close()
        for connection in lean.values():
            connection.close()
    for values in timings.values():
        del values[:WARMUP]
    return timings


def _report(args: argparse.Namespace, timings: Dict[str, List[float]], access_lines: int) -> None:
    direct_p50 = _percentile(timings["direct"], 0.5)
    print(
        f"{args.calls} one-device suspends each, loopback, every party in its own process, interleaved, "
        f"{args.history:,} callbacks of the last 24 h in the store (Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'path':<52}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, label in (
        ("direct", "REST to the emulator (RestClient)"),
        ("bridge", "legacy SOAP (requests) -> bridge -> emulator REST"),
        ("hop", "floor: legacy SOAP (requests) -> answer-only app"),
        ("bridge-lean", "legacy SOAP (http.client) -> bridge -> REST"),
        ("hop-lean", "floor: legacy SOAP (http.client) -> answer-only"),
    ):
        values = timings[name]
        print(
            f"{label:<52}{_percentile(values, 0.5):>10.2f}{_percentile(values, 0.99):>10.2f}"
            f"{statistics.mean(values):>10.2f}"
        )
    for client, bridged, hop in (("requests", "bridge", "hop"), ("http.client", "bridge-lean", "hop-lean")):
        bridge_p50, hop_p50 = _percentile(timings[bridged], 0.5), _percentile(timings[hop], 0.5)
        added = bridge_p50 - direct_p50
        print(
            f"legacy client {client}: the bridge adds {added:.2f} ms at p50 ({bridge_p50 / direct_p50:.1f}x the "
            f"direct call), of which the HTTP hop (floor) {hop_p50:.2f} ms, the bridge's own work "
            f"{added - hop_p50:.2f} ms"
        )
    print(f"the bridge's access log: {access_lines:,} lines")


if __name__ == "__main__":
    sys.exit(main())
