"""What the migration bridge adds to the REST call it makes: a one-device ChangeDeviceState sent
by a legacy SOAP client to the bridge (which checks the session, validates and reads the SOAP,
checks the daily budget, records the request and makes the REST call to the emulator), against
the same REST suspend made directly to the emulator by a ``RestClient``, in one run, interleaved
call by call. Prints both p50s (and p99s) and the milliseconds the bridge adds.

Its floor, in the same run and interleaved too: the same legacy request POSTed over the same
server stack (waitress, connection limits, access log) to an application that only reads the body
and answers a fixed ChangeDeviceStateResponse: what one more HTTP hop costs whatever the bridge
does. What the bridge adds beyond that hop is its own work. That work is also timed inside the
bridge, call by call: the time in the bridge's WSGI application until its answer is ready, less the
time of the REST exchange it makes (``Engine.send``), so that it does not rest only on the difference
of two noisy p50s, and so are the request log's two transactions (the budget reservation, and its
confirmation, which the bridge writes once its answer has gone out).

The bridge runs as ``uws-adapter bridge`` runs it: waitress with the connection limits, the access
log at INFO (written to a file), a SQLite store with full synchronous commits on this disk, the
budget guard on (the carrier's 5 actions a line a day; every call is to a fresh line). The legacy
client keeps its connection alive and sends the envelope our UWS client builds. It is timed twice,
interleaved: as a ``requests`` session (about half a millisecond of its own per call on these
machines), and as a bare ``http.client`` connection, as lean as the HTTP layer of a PHP, Java or .NET
SOAP stack: what the bridge adds is the hop and the bridge's work, and the client's own cost is in
both the hop and the bridged call.

``--history N`` first fills the store with what a day of traffic leaves there: N succeeded
callbacks of device-list requests sent through the bridge (10 lines a request, other lines than the
timed ones) within the last 24 hours, for the budget check to read past.

    python benchmarks/bridge_call.py [--calls 300] [--db-dir DIR] [--history N]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Sequence

import requests
from budget_check import fill_history

from uws_adapter import EmulatedDevice, Emulator, RestClient, Suspend, generated_devices, select
from uws_adapter.bridge.app import Bridge
from uws_adapter.logs import TextFormatter
from uws_adapter.serving.access import AccessLog
from uws_adapter.serving.thread import ServedApp
from uws_adapter.store.sqlite import Store
from uws_adapter.uws.envelope import build_envelope, build_login

USER, PASSWORD = "uws-user", "uws-password"
CLIENT_ID, SECRET = "ts-client", "ts-secret"
LEGACY_USER, LEGACY_PASSWORD = "legacy", "legacy-password"
WARMUP = 20


_ANSWER = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ChangeDeviceStateResponse '
    b'xmlns="http://nphase.com/unifiedwebservice/v2"><Output xmlns:a="http://schemas.datacontract.org/2004/07/'
    b'NPhase.UnifiedWebService.APIs.v2.Contract.CarrierService"><a:RequestId>00000000-0000-0000-0000-000000000000'
    b"</a:RequestId></Output></ChangeDeviceStateResponse></s:Body></s:Envelope>"
)


def _hop_only(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    """The floor: read the request, answer as the bridge would, do nothing else."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(_ANSWER)))])
    return [_ANSWER]


def _percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed_calls(
    calls: int, direct: RestClient, bridge_url: str, floor_url: str, lines: Sequence[EmulatedDevice],
    settled: Callable[[], None] = lambda: None,
) -> Dict[str, List[float]]:  # fmt: skip
    """Each kind of call both bridge benchmarks time, interleaved call by call so that drift touches
    every kind alike, ``calls`` times after a warm-up (ms each): the direct REST call (``direct``, on
    a fresh line of ``lines`` each time), and a legacy SOAP client, as a ``requests`` session and as
    a bare ``http.client`` connection, both kept alive and logged in once, to the bridge at
    ``bridge_url`` (a fresh line each time) and to the floor app at ``floor_url``. ``settled`` is
    called after each bridge call, untimed: it waits for what the bridge does after answering, so
    that it does not run into the next call's time (in one process they share the interpreter)."""
    devices = iter(line.device for line in lines)
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
            if fresh:
                settled()
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
            if fresh:
                settled()
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
        for connection in lean.values():
            connection.close()
    for values in timings.values():
        del values[:WARMUP]
    return timings


#: The rows of the table both bridge benchmarks print.
ROWS = (
    ("direct", "REST to the emulator (RestClient)"),
    ("bridge", "legacy SOAP (requests) -> bridge -> emulator REST"),
    ("hop", "floor: legacy SOAP (requests) -> answer-only app"),
    ("bridge-lean", "legacy SOAP (http.client) -> bridge -> REST"),
    ("hop-lean", "floor: legacy SOAP (http.client) -> answer-only"),
)


def print_table(timings: Dict[str, List[float]]) -> float:
    """Print p50, p99 and mean of each kind of call, and what the bridge adds for each legacy
    client; return the direct call's p50."""
    direct_p50 = _percentile(timings["direct"], 0.5)
    print(f"{'path':<52}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, label in ROWS:
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
    return direct_p50


def _timed(method: Callable[..., Any], into: List[float]) -> Callable[..., Any]:
    """``method``, appending the milliseconds of each call to ``into``."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - start) * 1000)

    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls of each kind (default 300)")
    parser.add_argument("--db-dir", help="folder for the bridge's store and log (default: a temporary one)")
    parser.add_argument("--history", type=int, default=0, help="callbacks of the last 24 h in the store (default 0)")
    args = parser.parse_args()
    if args.db_dir:
        return _run(args, Path(args.db_dir))
    scratch = tempfile.TemporaryDirectory(prefix="bridge-call-")
    try:
        return _run(args, Path(scratch.name))
    finally:
        scratch.cleanup()


def _run(args: argparse.Namespace, folder: Path) -> int:
    total = 3 * (args.calls + WARMUP)  # fresh lines for the direct call and both legacy clients
    log = logging.FileHandler(folder / "bridge.log")
    log.setFormatter(TextFormatter())
    logging.getLogger("uws_adapter").addHandler(log)
    logging.getLogger("uws_adapter").setLevel(logging.INFO)

    lines = generated_devices(total)
    with Emulator(devices=lines, daily_budget=10**9) as emulator, Store(folder / "bridge.db") as store:
        rest = RestClient(
            base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=SECRET, username=USER, password=PASSWORD,
            store=store,
        )  # fmt: skip
        rest.daily_budget = 5  # the carrier's, as the bridge command sets it from the settings
        fill_history(store, args.history)
        bridge = Bridge(
            rest, store, legacy_users={LEGACY_USER: LEGACY_PASSWORD}, callback_username="cb",
            callback_password="cb-password",
        )  # fmt: skip
        inside: List[float] = []  # per bridge call: ms in the application, less its REST exchange
        # The request log's two transactions in each call, timed where the bridge makes them.
        log_ms: Dict[str, List[float]] = {"reserve_request": [], "confirm_request": []}
        for name, values in log_ms.items():
            setattr(store, name, _timed(getattr(store, name), values))
        exchange_ms = threading.local()
        send = rest._http.send

        def timed_send(request: Any) -> Any:
            start = time.perf_counter()
            try:
                return send(request)
            finally:
                exchange_ms.value = getattr(exchange_ms, "value", 0.0) + (time.perf_counter() - start) * 1000

        rest._http.send = timed_send  # type: ignore[method-assign]

        done = threading.Semaphore(0)  # released as the server closes each ChangeDeviceState's body

        class Closed:
            """The bridge's body, handed on unread, telling when the server has closed it."""

            def __init__(self, body: Iterable[bytes]) -> None:
                self.body = body

            def __iter__(self) -> Iterator[bytes]:
                return iter(self.body)

            def close(self) -> None:
                try:
                    getattr(self.body, "close", lambda: None)()
                finally:
                    done.release()

        def timed_bridge(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            # Until its answer is ready to send (what the bridge writes after sending it, the
            # record under the RequestId, is timed in log_ms).
            exchange_ms.value, start = 0.0, time.perf_counter()
            body = bridge(environ, start_response)
            if "ChangeDeviceState" not in environ.get("HTTP_SOAPACTION", ""):
                return body  # the LogIn
            inside.append((time.perf_counter() - start) * 1000 - exchange_ms.value)
            return Closed(body)

        def settled() -> None:
            if not done.acquire(timeout=10):
                raise SystemExit("the bridge's answer was never closed")

        served = ServedApp(AccessLog(timed_bridge, "bridge"), threads=16, max_body=8 * 1024 * 1024, ident="bridge")
        served.start()
        floor = ServedApp(AccessLog(_hop_only, "bridge"), threads=16, max_body=8 * 1024 * 1024, ident="floor")
        floor.start()
        floor_url = f"{floor.url}/api/v2"
        bridge.allow_hosts([f"127.0.0.1:{served.address[1]}"])
        base_url = f"{served.url}/api/v2"
        direct = RestClient(
            base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=SECRET, username=USER, password=PASSWORD
        )
        try:
            timings = timed_calls(args.calls, direct, base_url, floor_url, lines, settled)
            for values in (inside, *log_ms.values()):
                del values[: 2 * WARMUP]  # both legacy clients' warm-up calls
        finally:
            direct.close()
            served.stop()
            floor.stop()
            bridge.close()
            rest.close()
    print(
        f"{args.calls} one-device suspends each, loopback, interleaved, {args.history:,} callbacks of the last "
        f"24 h in the store (Python {sys.version.split()[0]})"
    )
    direct_p50 = print_table(timings)
    print(
        f"the bridge's own work timed inside it (its application until its answer, less its REST exchange): "
        f"p50 {_percentile(inside, 0.5):.2f} ms, {_percentile(inside, 0.5) / direct_p50:.2f}x the direct call; "
        f"of which the request log's reservation p50 {_percentile(log_ms['reserve_request'], 0.5):.2f} ms "
        f"(mean {statistics.mean(log_ms['reserve_request']):.2f}) and its confirmation p50 "
        f"{_percentile(log_ms['confirm_request'], 0.5):.2f} ms (mean {statistics.mean(log_ms['confirm_request']):.2f})"
    )
    logging.getLogger("uws_adapter").removeHandler(log)
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
