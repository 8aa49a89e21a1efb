"""Legitimate callbacks' latency during a flood of unauthenticated 1 MB bodies of empty elements, on a
live receiver (waitress, and uvicorn), against the same receiver's quiet run and its floor (issue 17
item 3).

One client sends signed callbacks one after another over a keep-alive connection for ``--seconds``;
in the flood run, ``--senders`` processes meanwhile POST 1 MB bodies of ``<a/>`` elements with a
wrong password, as fast as the receiver takes them. The floor run floods the same number of bytes
as one element's text (nothing to count: what receiving 1 MB costs the server, and the senders cost
the machine). Printed per server: the legitimate p50 of each run and the ratios; flood / floor is
what the elements themselves cost (1.0: nothing beyond receiving the bytes). The machine's load
moves absolute times; the ratios are taken within one run of the script.

    python benchmarks/flood_latency.py [--seconds S] [--senders N] [--workers W]

To measure another checkout (e.g. before a change), run from outside any checkout (``python -m``
puts the working directory first on the path): ``cd /tmp && PYTHONPATH=/path/to/checkout python
/path/to/benchmarks/flood_latency.py``.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from uws_adapter import CallbackRequest, ReportedDevice, render_callback

USERNAME, PASSWORD = "listener", "Flood-Bench-S3cret"
NS = 'xmlns="http://nphase.com/unifiedwebservice/v2"'
FLOOD_BODY = (
    f"<CallbackRequest {NS}><Username>{USERNAME}</Username><Password>wrong</Password><RequestId>flood</RequestId>"
    "<Data><Data>"
).encode()
FLOOD_BODY += b"<a/>" * ((1000 * 1000 - len(FLOOD_BODY)) // 4) + b"</Data></Data></CallbackRequest>"
#: The floor's flood: as many bytes in one Comment's text (a C parse of next to nothing, refused 401).
FLOOR_BODY = FLOOD_BODY.split(b"<Data>")[0] + b"<Data><Data><Comment>"
FLOOR_BODY += b"a" * (len(FLOOD_BODY) - len(FLOOR_BODY) - 38) + b"</Comment></Data></Data></CallbackRequest>"
BODIES = {"quiet": b"", "floor": FLOOR_BODY, "flood": FLOOD_BODY}


def start_receiver(db: Path, options: List[str]) -> Tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "UWS_CALLBACK_USERNAME": USERNAME, "UWS_CALLBACK_PASSWORD": PASSWORD}
    receiver = subprocess.Popen(
        [sys.executable, "-m", "uws_adapter", "receiver", "--port", "0", "--db", str(db), *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=env,
    )  # fmt: skip
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the workers start after the line is printed
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.1)
    return receiver, port


def stop_receiver(receiver: subprocess.Popen[str]) -> None:
    os.killpg(receiver.pid, signal.SIGINT)
    try:
        receiver.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(receiver.pid, signal.SIGKILL)
        receiver.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of a process and its descendants (uvicorn's workers), from /proc."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def legitimate(port: int, seconds: float) -> List[float]:
    """Signed callbacks one after another for ``seconds``: each one's latency (seconds)."""
    latencies: List[float] = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        body = render_callback(
            CallbackRequest(
                "flood-bench", devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),), username=USERNAME,
                password=PASSWORD, service="CarrierService", action="Suspend", status="Success", callback_count=1,
            )
        )  # fmt: skip
        started = time.perf_counter()
        connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"a legitimate callback was answered {response.status}")
        latencies.append(time.perf_counter() - started)
        n += 1
    connection.close()
    return latencies


def flood(port: int, body: bytes, stop: Any, answered: Any) -> None:
    """POST flood bodies until ``stop`` is set, counting answers (run in its own process, so that
    the flood's client work never shares the legitimate client's interpreter)."""
    while not stop.is_set():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while not stop.is_set():
                connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
                response = connection.getresponse()
                response.read()
                with answered.get_lock():
                    answered.value += 1
                if response.getheader("Connection", "").lower() == "close":
                    break
            connection.close()
        except OSError:
            continue


def run(options: List[str], seconds: float, senders: int) -> Dict[str, Tuple[float, int, int, float]]:
    figures: Dict[str, Tuple[float, int, int, float]] = {}
    for phase, body in BODIES.items():
        with tempfile.TemporaryDirectory() as folder:
            receiver, port = start_receiver(Path(folder) / "bench.db", options)
            stop = multiprocessing.Event()
            answered = multiprocessing.Value("i", 0)
            senders_here = [multiprocessing.Process(target=flood, args=(port, body, stop, answered), daemon=True)
                            for _ in range(senders if body else 0)]  # fmt: skip
            try:
                cpu = cpu_seconds(receiver.pid)
                for process in senders_here:
                    process.start()
                latencies = legitimate(port, seconds)
                cpu = cpu_seconds(receiver.pid) - cpu
            finally:
                stop.set()
                for process in senders_here:
                    process.join(60)
                stop_receiver(receiver)
        figures[phase] = (statistics.median(latencies) * 1000, len(latencies), int(answered.value), cpu)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per run")
    parser.add_argument("--senders", type=int, default=2, help="flood connections")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    servers = {
        "waitress": ["--server", "waitress", "--threads", "4"],
        f"uvicorn x{args.workers}": ["--server", "uvicorn", "--workers", str(args.workers)],
    }
    print(f"flood: {args.senders} connections of {len(FLOOD_BODY):,}-byte element bodies (wrong password); "
          f"{args.seconds:g} s per run")  # fmt: skip
    for label, options in servers.items():
        figures = run(options, args.seconds, args.senders)
        quiet, floor, flooded = (figures[phase][0] for phase in BODIES)
        print(f"  {label}: legitimate p50 (callbacks served; flood bodies answered; server CPU per flood body)")
        # The server CPU the legitimate callbacks took is taken out at the quiet run's cost per callback.
        quiet_cost = figures["quiet"][3] / max(1, figures["quiet"][1])
        per_body: Dict[str, float] = {}
        for phase, (p50, served, answered, cpu) in figures.items():
            per_body[phase] = (cpu - served * quiet_cost) / answered * 1000 if answered else 0.0
            print(f"    {phase:6} {p50:8.2f} ms ({served} served; {answered} answered; "
                  f"{per_body[phase]:.1f} ms CPU each)")  # fmt: skip
        print(f"    p50 flood / quiet {flooded / quiet:5.2f}, flood / floor {flooded / floor:5.2f}, floor / quiet "
              f"{floor / quiet:5.2f}; server CPU per body flood / floor "
              f"{per_body['flood'] / max(per_body['floor'], 1e-9):5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
