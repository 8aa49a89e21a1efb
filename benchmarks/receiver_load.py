"""Load on a live receiver on loopback, with wrk (Debian package ``wrk``): callbacks/s and p99 of
``uws-adapter receiver --server uvicorn --workers 2`` (group commit, SQLite with full synchronous
commits, access log, metrics) as ratios to two floors served the same way in the same run: an app
that only answers 200, and one that only parses the body with the hardened parser
(``receiver_floors.py``).

The load is the callbacks of a 10,000-device request, each device sent 4 times (CallbackCount 1 to
4), over 32 keep-alive connections. Each round runs every configuration once, the floors next to the
receiver; the ratios are taken within a round (a shared machine's load moves between rounds) and
printed per round with their median and range, with the servers' CPU time per callback (user and
system, all their processes, from /proc: the figure that others' load on a shared machine moves
least). The receiver logs as in production (INFO, one access line per request, to a file) and
serves metrics (prometheus_client's multiprocess files): after each run its ``/metrics`` and its
log are read back to show both were on, and each run of the receiver prints its groups' mean size
(from ``/metrics``) and its CPU per callback in the event loops' threads and in the others (the
committers). ``--baselines`` adds one commit per callback and waitress.
A last run sends every device's callback exactly 4 times, shuffled, and reports the events (one per
device) and attempts (one per delivery) the store ends with.

    python benchmarks/receiver_load.py [--devices N] [--seconds S] [--rounds R] [--baselines] [--no-exact]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from uws_adapter import CallbackRequest, ReportedDevice, render_callback

HERE = Path(__file__).resolve().parent
OURS = "receiver, uvicorn x2, group commit"
ANSWER, PARSE = "floor: answers 200 only", "floor: parses only"
FLOORS: Dict[str, List[str]] = {ANSWER: ["answer", "--workers", "2"], PARSE: ["parse", "--workers", "2"]}
RECEIVERS: Dict[str, List[str]] = {OURS: ["--server", "uvicorn", "--workers", "2", "--commit", "group"]}
BASELINES: Dict[str, List[str]] = {
    "receiver, uvicorn x2, one commit per callback": ["--server", "uvicorn", "--workers", "2", "--commit", "each"],
    "receiver, waitress, group commit": ["--server", "waitress", "--commit", "group"],
    "receiver, waitress, one commit per callback": ["--server", "waitress", "--commit", "each"],
}
THREADS, CONNECTIONS = 2, 32
Figures = Tuple[float, float, float, float]  # callbacks/s, p50 ms, p99 ms, server CPU us per callback

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


def start(command: List[str], log: Optional[Path] = None) -> Tuple[subprocess.Popen[str], int]:
    """Start a server process (its first stdout line names its port) and wait until it answers."""
    stderr = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed by the child's exit)
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True, cwd=HERE
        )
    finally:
        if log is not None:
            stderr.close()  # type: ignore[union-attr]
    assert process.stdout is not None
    try:
        port = int(process.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        wait_until_serving([port])
    except BaseException:
        stop(process)
        raise
    return process, port


def wait_until_serving(ports: List[int]) -> None:
    """Until every port answers ``GET /health`` (uvicorn's workers bind after the banner)."""
    deadline = time.monotonic() + 60
    for port in ports:
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    connection.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing answered on port {port} within 60 s")
            time.sleep(0.1)


def receiver_command(db: str, options: List[str]) -> List[str]:
    return [sys.executable, "-m", "uws_adapter", "receiver", "--port", "0", "--db", db, "--allow-anonymous",
            "--log-level", "info", *options]  # fmt: skip


def floor_command(options: List[str]) -> List[str]:
    return [sys.executable, str(HERE / "receiver_floors.py"), *options]


def stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)


def wrk(port: int, script: Path, seconds: float, threads: int = THREADS, connections: int = CONNECTIONS) -> str:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
               f"http://127.0.0.1:{port}/"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def figures(out: str) -> Tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, requests) of one wrk output; a refusal ends the benchmark."""
    if "Non-2xx" in out or "error" in out.lower():
        raise SystemExit(f"the server refused callbacks:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = milliseconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rate, p50, p99, count


def process_tree(pid: int) -> List[int]:
    """``pid`` and its descendants (the receiver and its uvicorn workers), read from /proc."""
    children: Dict[int, List[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], ()))
    return found


def cpu_seconds(pids: List[int]) -> float:
    """User and system CPU seconds the processes ``pids`` have used (0 where /proc is missing):
    a figure a shared machine's load moves less than it moves throughput."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.0


def thread_seconds(pids: List[int]) -> Tuple[float, float, int]:
    """CPU seconds of the processes ``pids`` in their main threads (a uvicorn worker's event loop)
    and in their other threads (the committers, readers and store writer), and their threads'
    voluntary context switches (each wait: for the GIL, a lock, the disk or the network), read
    from /proc."""
    main = other = switches = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                status = (task / "status").read_text()
            except OSError:
                continue
            ticks = int(fields[11]) + int(fields[12])
            if task.name == str(pid):
                main += ticks
            else:
                other += ticks
            found = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M)
            switches += int(found.group(1)) if found else 0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return main / tick, other / tick, switches


def loaded(port: int, script: Path, seconds: float, pid: int) -> Tuple[float, float, float, int, float]:
    """wrk on ``port``: (requests/s, p50 ms, p99 ms, requests, server CPU microseconds per request)."""
    rate, p50, p99, count, cpu, _ = loaded_threads(port, script, seconds, pid)
    return rate, p50, p99, count, cpu


def loaded_threads(
    port: int, script: Path, seconds: float, pid: int
) -> Tuple[float, float, float, int, float, Tuple[float, float, float]]:
    """As :func:`loaded`, and the CPU microseconds per request in the servers' main threads and in
    their other threads, and their voluntary context switches per request (:func:`thread_seconds`)."""
    pids = process_tree(pid) if Path("/proc").is_dir() else []
    before, threads_before = cpu_seconds(pids), thread_seconds(pids)
    rate, p50, p99, count = figures(wrk(port, script, seconds))
    after, threads_after = cpu_seconds(pids), thread_seconds(pids)
    per = 1e6 / max(count, 1)
    split = (
        (threads_after[0] - threads_before[0]) * per,
        (threads_after[1] - threads_before[1]) * per,
        (threads_after[2] - threads_before[2]) / max(count, 1),
    )
    return rate, p50, p99, count, (after - before) * per, split


def scraped(port: int, name: str) -> float:
    """The value of the metric ``name`` (no labels) at ``/metrics`` (-1 when it is not there)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else -1.0


def timed_run(label: str, script: Path, seconds: float, folder: Path) -> Figures:
    """One run of configuration ``label``; a receiver's metrics and access log are checked after it."""
    if label in FLOORS:
        process, port = start(floor_command(FLOORS[label]))
        try:
            rate, p50, p99, _, cpu = loaded(port, script, seconds, process.pid)
        finally:
            stop(process)
        return rate, p50, p99, cpu
    log = folder / "receiver.log"
    with tempfile.TemporaryDirectory() as store:
        process, port = start(receiver_command(str(Path(store) / "bench.db"), {**RECEIVERS, **BASELINES}[label]), log)
        try:
            rate, p50, p99, count, cpu, (main, other, switches) = loaded_threads(port, script, seconds, process.pid)
            received = scraped(port, "uws_adapter_callbacks_received_total")
            groups = scraped(port, "uws_adapter_commit_group_size_count")
            grouped = scraped(port, "uws_adapter_commit_group_size_sum")
        finally:
            stop(process)
        # Where a callback's CPU went, and how large the groups were: what the per-group costs
        # (a thread's wake-up, the transaction, the fsync) are spread over.
        if groups > 0:
            print(f"    {label}: groups of {grouped / groups:.1f} callbacks on average; CPU per callback "
                  f"{main:.0f} us in the event loops' threads, {other:.0f} us in the other threads; "
                  f"{switches:.2f} voluntary context switches")  # fmt: skip
    lines = sum(1 for line in log.read_text().splitlines() if '"POST /" 200' in line)
    # wrk counts what was answered in its time; what it had sent when it stopped is answered too.
    if received not in (-1.0,) and received < count:
        raise SystemExit(f"{label}: /metrics counted {received:.0f} callbacks of {count}")
    if lines < count:
        raise SystemExit(f"{label}: {lines} access lines for {count} callbacks")
    return rate, p50, p99, cpu


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
    receiver, port = start(receiver_command(str(db), options))
    try:
        acknowledged = deliver(documents, [port])
    finally:
        stop(receiver)
    connection = sqlite3.connect(str(db))
    events, attempts = (connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "attempts"))
    return len(documents), acknowledged, events, attempts


def report(rounds: List[Dict[str, Figures]], ours: str, answer: str, parse: str) -> None:
    """Every run's figures, then ``ours`` as ratios to the floors of its own round: per round, and
    their median and range (the spread says how much the shared machine moved)."""
    for label in rounds[0]:
        runs = "  ".join(
            f"{rate:6,.0f}/s p99 {p99:5.1f} ms {cpu:4.0f} us" for rate, _, p99, cpu in (r[label] for r in rounds)
        )
        print(f"  {label:46} {runs}")
    ratios = {
        "throughput / parse-only floor": [r[ours][0] / r[parse][0] for r in rounds],
        "throughput / answer-only floor": [r[ours][0] / r[answer][0] for r in rounds],
        "p99 / parse-only floor's p99": [r[ours][2] / r[parse][2] for r in rounds],
    }
    if all(r[ours][3] > 0 and r[parse][3] > 0 for r in rounds):
        ratios["CPU per callback / parse-only's"] = [r[ours][3] / r[parse][3] for r in rounds]
    for name, values in ratios.items():
        each = " ".join(f"{v:.2f}" for v in values)
        middle, low, high = statistics.median(values), min(values), max(values)
        print(f"  {name:32} median {middle:5.2f}  range {low:.2f}-{high:.2f}  ({each})")
    p99s = [r[ours][2] for r in rounds]
    print(f"  {ours} p99: median {statistics.median(p99s):.1f} ms, range {min(p99s):.1f}-{max(p99s):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baselines", action="store_true", help="also one commit per callback, and waitress")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-count run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    labels = [ANSWER, PARSE, *RECEIVERS, *(BASELINES if args.baselines else ())]
    rounds: List[Dict[str, Figures]] = []
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "load.lua"
        script.write_text(lua_script(args.devices))
        print(f"{args.devices:,} devices x 4 callbacks over {CONNECTIONS} connections, {args.seconds:g} s per run, "
              f"{args.rounds} rounds; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        for _ in range(args.rounds):
            rounds.append({label: timed_run(label, script, args.seconds, Path(folder)) for label in labels})
        report(rounds, OURS, ANSWER, PARSE)
        print(f"  load average {os.getloadavg()[0]:.1f} at the end")
        if not args.no_exact:
            sent, acked, events, attempts = exact_run(RECEIVERS[OURS], args.devices, Path(folder))
            print(f"  exact run: {sent:,} deliveries (every device 4 times, shuffled), {acked:,} acknowledged -> "
                  f"{events:,} events, {attempts:,} attempts")  # fmt: skip


if __name__ == "__main__":
    main()
