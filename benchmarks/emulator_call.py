"""One call to the carrier emulator on loopback, through the package's clients: SOAP LogIn, SOAP
ChangeDeviceState (suspend or restore of one device) and one REST call (the same, on the REST
API), each timed ``--calls`` times; prints p50 and p99 per call in milliseconds.

The emulator is served by waitress (its own server). As a baseline in the same process, the same
emulator application is also served by the HTTP layer the emulator had before (``http.server``,
kept below as it was: Content-Length bodies, headers and body written separately), and the ratio
of the p50s is printed. Against an older release, whose emulator has no WSGI application, only its
own server is timed.

    python benchmarks/emulator_call.py [--calls N] [--no-baseline]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any, Callable, Dict, List, Optional, Tuple

from uws_adapter import Emulator, RestClient, UwsClient, generated_devices, select

USER, PASSWORD = "uws-user", "uws-password"
CLIENT_ID, SECRET = "ts-client", "ts-secret"
Timings = Dict[str, List[float]]


class _Baseline:
    """The emulator's former HTTP layer (``http.server``) in front of the emulator's WSGI app."""

    def __init__(self, app: Callable[..., Any]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._call(b"")

            def do_DELETE(self) -> None:
                self._call(b"")

            def do_POST(self) -> None:
                self._call(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _call(self, body: bytes) -> None:
                path, _, query = self.path.partition("?")
                environ: Dict[str, Any] = {
                    "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                    "REQUEST_URI": self.path, "CONTENT_LENGTH": str(len(body)), "wsgi.input": BytesIO(body),
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                }  # fmt: skip
                for name, value in self.headers.items():
                    environ["HTTP_" + name.upper().replace("-", "_")] = value
                answer: List[Any] = []
                chunks = app(environ, lambda status, headers: answer.extend([status, headers]))
                data = b"".join(chunks)
                content_type = dict(answer[1]).get("Content-Type", "text/plain")
                # As the emulator wrote its answers: status and headers, then the body.
                self.send_response(int(answer[0].split()[0]))
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.root_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _time(calls: int, root_url: str, emulator: Emulator) -> Timings:
    device = emulator.devices[0].device
    soap = UwsClient(base_url=f"{root_url}/api/v2", username=USER, password=PASSWORD)
    rest = RestClient(
        base_url=f"{root_url}/api", client_id=CLIENT_ID, client_secret=SECRET, username=USER, password=PASSWORD
    )
    flip = {"soap": False, "rest": False}

    def change(client: Any, key: str) -> None:
        # Alternate, so that every call is a valid transition (the daily budget is lifted).
        flip[key] = not flip[key]
        (client.suspend if flip[key] else client.restore)(select([device]))

    operations: List[Tuple[str, Callable[[], Any]]] = [
        ("SOAP LogIn", soap.login),
        ("SOAP ChangeDeviceState", lambda: change(soap, "soap")),
        ("REST suspend/restore", lambda: change(rest, "rest")),
    ]
    timings: Timings = {name: [] for name, _ in operations}
    for name, operation in operations:
        for n in range(calls + 5):
            start = time.perf_counter()
            operation()
            if n >= 5:  # the first calls warm the connection, the bearer and the session up
                timings[name].append((time.perf_counter() - start) * 1000)
    soap.close()
    rest.close()
    return timings


def _percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="timed calls of each kind (default 200)")
    parser.add_argument("--no-baseline", action="store_true", help="time the emulator's own server only")
    args = parser.parse_args()
    with Emulator(devices=generated_devices(1), daily_budget=10**9) as emulator:
        own = _time(args.calls, emulator.root_url, emulator)
        app: Optional[Callable[..., Any]] = getattr(emulator, "app", None)
        base: Optional[Timings] = None
        if app is not None and not args.no_baseline:
            baseline = _Baseline(app)
            try:
                base = _time(args.calls, baseline.root_url, emulator)
            finally:
                baseline.close()
    print(f"{args.calls} calls each, one device, loopback; milliseconds (Python {sys.version.split()[0]})")
    header = ["call", "p50", "p99"] + (["http.server p50", "p99", "p50 ratio"] if base else [])
    print(f"{header[0]:<24}" + "".join(f"{h:>16}" for h in header[1:]))
    for name, values in own.items():
        row = [_percentile(values, 0.5), _percentile(values, 0.99)]
        cells = "".join(f"{v:>16.2f}" for v in row)
        if base:
            old = [_percentile(base[name], 0.5), _percentile(base[name], 0.99)]
            cells += "".join(f"{v:>16.2f}" for v in old) + f"{old[0] / row[0]:>15.1f}x"
        print(f"{name:<24}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
