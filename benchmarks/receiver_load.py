"""Load on a live receiver on loopback: callbacks/s, p50 and p99, for one commit per callback and
for our group commit, with full synchronous commits.

Replays the callbacks of a 10,000-device request, each sent 4 times (shuffled), from separate load
processes over keep-alive connections, then checks that the store holds exactly 10,000 events.

    python benchmarks/receiver_load.py [--devices N] [--processes P] [--connections C]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from uws_adapter import CallbackRequest, ReportedDevice, render_callback


def bodies(devices: int) -> List[bytes]:
    out = []
    for n in range(devices):
        for count in range(1, 5):
            out.append(
                render_callback(
                    CallbackRequest(
                        "bench-request", devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),),
                        service="CarrierService", action="Suspend", status="Success", callback_count=count,
                        max_callback_threshold=4,
                    )
                )
            )  # fmt: skip
    random.Random(1).shuffle(out)
    return out


def lane(port: int, documents: List[bytes], results: multiprocessing.Queue[Tuple[List[float], int]]) -> None:
    import threading

    latencies: List[float] = []
    failures = 0
    lock = threading.Lock()

    def connection_worker(items: List[bytes]) -> None:
        nonlocal failures
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        bad = 0
        for body in items:
            start = time.perf_counter()
            connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            bad += response.status != 200
        connection.close()
        with lock:
            latencies.extend(mine)
            failures += bad

    threads = [threading.Thread(target=connection_worker, args=(part,)) for part in documents_split(documents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((latencies, failures))


CONNECTIONS_PER_PROCESS = 8
THREADS = 8


def documents_split(documents: List[bytes]) -> List[List[bytes]]:
    return [documents[i::CONNECTIONS_PER_PROCESS] for i in range(CONNECTIONS_PER_PROCESS)]


def run(mode: str, documents: List[bytes], processes: int) -> Tuple[float, float, float, int, int]:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        receiver = subprocess.Popen(
            [sys.executable, "-m", "uws_adapter", "receiver", "--port", "0", "--db", str(db), "--threads", str(THREADS),
             "--commit", mode],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        results: multiprocessing.Queue[Tuple[List[float], int]] = multiprocessing.Queue()
        parts = [documents[i::processes] for i in range(processes)]
        workers = [multiprocessing.Process(target=lane, args=(port, part, results)) for part in parts]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        latencies: List[float] = []
        failures = 0
        for _ in workers:
            got, bad = results.get()
            latencies.extend(got)
            failures += bad
        elapsed = time.perf_counter() - start
        for worker in workers:
            worker.join()
        receiver.send_signal(signal.SIGINT)
        receiver.wait(timeout=30)
        events = sqlite3.connect(str(db)).execute("SELECT count(*) FROM events").fetchone()[0]
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    return len(latencies) / elapsed, p50, p99, events, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2, help="load processes, 8 connections each")
    args = parser.parse_args()
    documents = bodies(args.devices)
    connections = args.processes * CONNECTIONS_PER_PROCESS
    print(f"{len(documents):,} callbacks ({args.devices:,} devices x 4) over {connections} connections")
    figures = {}
    for mode, label in (("each", "one commit per callback"), ("group", "group commit (ours)")):
        rate, p50, p99, events, failures = run(mode, documents, args.processes)
        figures[mode] = rate
        print(f"  {label:26} {rate:8,.0f} callbacks/s   p50 {p50 * 1e3:6.1f} ms   p99 {p99 * 1e3:6.1f} ms   "
              f"events {events:,}   non-200 {failures}")  # fmt: skip
    print(f"  group commit is {figures['group'] / figures['each']:.2f}x one commit per callback")


if __name__ == "__main__":
    main()
