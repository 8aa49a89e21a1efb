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
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Dict, List, Optional, Tuple

from bridge_call import (
    CLIENT_ID,
    LEGACY_PASSWORD,
    LEGACY_USER,
    PASSWORD,
    SECRET,
    USER,
    WARMUP,
    _hop_only,
    print_table,
    timed_calls,
)
from budget_check import fill_history

from uws_adapter import RestClient, generated_devices
from uws_adapter.store.sqlite import Store

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
        direct = RestClient(
            base_url=f"{emulator_url}/api", client_id=CLIENT_ID, client_secret=SECRET, username=USER,
            password=PASSWORD,
        )  # fmt: skip
        try:
            # The emulator's own lines: the same generator, the same order.
            lines = generated_devices(total)
            timings = timed_calls(args.calls, direct, f"{bridge_url}/api/v2", f"{floor_url}/api/v2", lines)
        finally:
            direct.close()
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


def _report(args: argparse.Namespace, timings: Dict[str, List[float]], access_lines: int) -> None:
    print(
        f"{args.calls} one-device suspends each, loopback, every party in its own process, interleaved, "
        f"{args.history:,} callbacks of the last 24 h in the store (Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    print_table(timings)
    print(f"the bridge's access log: {access_lines:,} lines")


if __name__ == "__main__":
    sys.exit(main())
