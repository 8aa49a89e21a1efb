"""Load on a live receiver on loopback, with wrk (Debian package ``wrk``): callbacks/s, p50 and p99,
for one commit per callback and for group commit, with full synchronous commits, on both servers,
and the receiver's two floors served the same way (uvicorn x2, the same protocol and settings, see
``receiver_floor.py``): an application that only answers and one that only parses. The ratios of
ours to each floor are printed (issue 19's goal: at least 0.5 of the parse-only floor).

The load is the callbacks of a 10,000-device request, each device sent 4 times (CallbackCount 1 to
4), over 32 keep-alive connections. Timed runs are interleaved over ``--rounds`` and the best of
each configuration is kept. A last run sends every device's callback exactly 4 times, shuffled, and
reports the events (one per device) and attempts (one per delivery) the store ends with.

    python benchmarks/receiver_load.py [--devices N] [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

from uws_adapter import CallbackRequest, ReportedDevice, render_callback

CONFIGS: Dict[str, List[str]] = {
    "waitress, one commit per callback": ["--server", "waitress", "--commit", "each"],
    "waitress, group commit": ["--server", "waitress", "--commit", "group"],
    "uvicorn x2, one commit per callback": ["--server", "uvicorn", "--workers", "2", "--commit", "each"],
    "uvicorn x2, group commit (ours)": ["--server", "uvicorn", "--workers", "2", "--commit", "group"],
    "floor: answer only (uvicorn x2)": ["floor", "answer"],
    "floor: parse only (uvicorn x2)": ["floor", "parse"],
}
OURS = "uvicorn x2, group commit (ours)"
THREADS, CONNECTIONS = 2, 32

# Thread t of T sends request number k = n*T + t: device k % D, CallbackCount k // D % 4 + 1, so
# every D requests cover every device once more.
LUA = """
local n = 0
local counter = 0
local template = [==[%(template)s]==]
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function request()
  local k = n * %(threads)d + tid
  n = n + 1
  return wrk.format("POST", "/", {["Content-Type"] = "text/xml; charset=utf-8"},
    string.format(template, 350000000000000 + k %% %(devices)d, math.floor(k / %(devices)d) %% 4 + 1))
end
function response(status, headers, body)
  if status ~= 200 then error("HTTP " .. status) end
end
"""


def lua_script(devices: int) -> str:
    body = render_callback(
        CallbackRequest(
            "bench-request", devices=(ReportedDevice("IMEI", "350000000000001"),), service="CarrierService",
            action="Suspend", status="Success", callback_count=3, max_callback_threshold=4,
        )
    ).decode()  # fmt: skip
    template = body.replace("350000000000001", "%d").replace("<CallbackCount>3<", "<CallbackCount>%d<")
    return LUA % {"template": template, "threads": THREADS, "devices": devices}


def start_receiver(db: Path, options: List[str]) -> Tuple[subprocess.Popen[str], int]:
    if options[0] == "floor":
        command = [sys.executable, str(Path(__file__).with_name("receiver_floor.py")), *options[1:]]
    else:
        command = [sys.executable, "-m", "uws_adapter", "receiver", "--port", "0", "--db", str(db),
                   "--allow-anonymous", *options]  # fmt: skip
    receiver = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
    time.sleep(1.5)  # the workers start after the line is printed: both must be up, not only the first
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.2)
    return receiver, port


def stop_receiver(receiver: subprocess.Popen[str]) -> None:
    import os

    os.killpg(receiver.pid, signal.SIGINT)
    receiver.wait(timeout=30)


def wrk(port: int, script: Path, seconds: float) -> str:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script),
               f"http://127.0.0.1:{port}/"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def timed_run(options: List[str], script: Path, seconds: float) -> Tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as folder:
        receiver, port = start_receiver(Path(folder) / "bench.db", options)
        try:
            out = wrk(port, script, seconds)
        finally:
            stop_receiver(receiver)
    if "Non-2xx" in out or "error" in out.lower():
        raise SystemExit(f"the receiver refused callbacks:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = milliseconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    return rate, p50, p99


def deliver(documents: List[bytes], ports: List[int], lanes: int = 16) -> int:
    """POST every document once over ``lanes`` keep-alive connections spread over ``ports``;
    returns how many were acknowledged (HTTP 200)."""
    acknowledged = [0] * lanes

    def send(lane: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", ports[lane % len(ports)], timeout=30)
        for body in documents[lane::lanes]:
            connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
            response = connection.getresponse()
            response.read()
            acknowledged[lane] += response.status == 200
        connection.close()

    threads = [threading.Thread(target=send, args=(lane,)) for lane in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(acknowledged)


def exact_run(options: List[str], devices: int, folder: Path) -> Tuple[int, int, int, int]:
    """Every device's callback exactly 4 times, shuffled, over 16 connections (a Python client:
    wrk cannot stop at an exact count). Returns (sent, acknowledged, events, attempts)."""
    documents = []
    for count in range(1, 5):
        for n in range(devices):
            callback = CallbackRequest(
                "bench-request", devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),),
                service="CarrierService", action="Suspend", status="Success", callback_count=count,
                max_callback_threshold=4,
            )  # fmt: skip
            documents.append(render_callback(callback))
    random.Random(1).shuffle(documents)
    db = folder / "exact.db"
    receiver, port = start_receiver(db, options)
    try:
        acknowledged = deliver(documents, [port])
    finally:
        stop_receiver(receiver)
    connection = sqlite3.connect(str(db))
    events, attempts = (connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "attempts"))
    return len(documents), acknowledged, events, attempts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="per timed run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", action="append", choices=sorted(CONFIGS), help="run these configurations only")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    best: Dict[str, Tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "load.lua"
        script.write_text(lua_script(args.devices))
        print(f"{args.devices:,} devices x 4 callbacks over {CONNECTIONS} connections, {args.seconds:g} s per run")
        for _ in range(args.rounds):
            for label, options in CONFIGS.items():
                if args.only and label not in args.only and label != OURS:
                    continue
                figures = timed_run(options, script, args.seconds)
                if label not in best or figures[0] > best[label][0]:
                    best[label] = figures
        for label, (rate, p50, p99) in best.items():
            print(f"  {label:36} {rate:7,.0f} callbacks/s   p50 {p50:5.1f} ms   p99 {p99:5.1f} ms")
        ours = best[OURS][0]
        for baseline in ("uvicorn x2, one commit per callback", "waitress, one commit per callback"):
            if baseline in best:
                print(f"  ours / {baseline}: {ours / best[baseline][0]:.2f}x")
        for floor in ("floor: parse only (uvicorn x2)", "floor: answer only (uvicorn x2)"):
            if floor in best:
                print(f"  ours / {floor}: {ours / best[floor][0]:.2f} of its callbacks/s, p99 "
                  f"{best[OURS][2]:.1f} ms against {best[floor][2]:.1f} ms")  # fmt: skip
        sent, acked, events, attempts = exact_run(CONFIGS[OURS], args.devices, Path(folder))
        print(f"  exact run: {sent:,} deliveries (every device 4 times, shuffled), {acked:,} acknowledged -> "
              f"{events:,} events, {attempts:,} attempts")  # fmt: skip


if __name__ == "__main__":
    main()
