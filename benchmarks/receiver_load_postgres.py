"""Two receiver processes on one PostgreSQL database, under wrk (Debian package ``wrk``): durable
callbacks/s, p50 and p99, for group commit and for one commit per callback.

As behind a load balancer, each receiver takes half the load (one wrk per receiver, 16 keep-alive
connections each): the callbacks of a 10,000-device request, each device sent 4 times (CallbackCount
1 to 4), the two halves on different devices. Every run starts on an empty schema; runs are
interleaved over ``--rounds`` and the best of each configuration is kept. The rate is the sum of
both wrks'; p50 and p99 are the worse of the two. A last run sends every device's callback exactly 4
times, shuffled, spread over both receivers, and reports the events and attempts stored. Durable
means acknowledged after COMMIT, with the server's synchronous_commit (on, in .ci/postgres.sh).

    eval "$(.ci/postgres.sh start)"
    python benchmarks/receiver_load_postgres.py --db "$UWS_TEST_POSTGRES_URL" [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Tuple
from urllib.parse import quote

from receiver_load import deliver  # the sibling benchmark: python puts this folder on sys.path

from uws_adapter import CallbackRequest, ReportedDevice, render_callback

CONFIGS: Dict[str, List[str]] = {
    "2 x uvicorn, one commit per callback": ["--server", "uvicorn", "--workers", "1", "--commit", "each"],
    "2 x uvicorn, group commit (ours)": ["--server", "uvicorn", "--workers", "1", "--commit", "group"],
}
CONNECTIONS = 16  # per receiver

# wrk i of 2 sends request k = 2n + i: device k % D, CallbackCount k // D % 4 + 1.
LUA = """
local n = 0
local template = [==[%(template)s]==]
function request()
  local k = n * 2 + %(offset)d
  n = n + 1
  return wrk.format("POST", "/", {["Content-Type"] = "text/xml; charset=utf-8"},
    string.format(template, 350000000000000 + k %% %(devices)d, math.floor(k / %(devices)d) %% 4 + 1))
end
function response(status, headers, body)
  if status ~= 200 then error("HTTP " .. status) end
end
"""


def _document(n: int, count: int) -> bytes:
    return render_callback(
        CallbackRequest(
            "bench-request", devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService",
            action="Suspend", status="Success", callback_count=count, max_callback_threshold=4,
        )
    )  # fmt: skip


def lua_script(devices: int, offset: int) -> str:
    template = _document(1, 3).decode().replace("350000000000001", "%d")
    template = template.replace("<CallbackCount>3<", "<CallbackCount>%d<")
    return LUA % {"template": template, "devices": devices, "offset": offset}


class Schema:
    """A schema of its own on the server, with the store's schema in it; dropped on exit."""

    def __init__(self, url: str) -> None:
        import psycopg

        from uws_adapter.store import upgrade_store

        self.server = url
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {self.name}")  # type: ignore[arg-type]
        self.url = f"{url}{'&' if '?' in url else '?'}options={quote(f'-c search_path={self.name}')}"
        upgrade_store(self.url)

    def counts(self) -> Tuple[int, int]:
        import psycopg

        with psycopg.connect(self.url) as db:
            events = db.execute("SELECT count(*) FROM events").fetchone()
            attempts = db.execute("SELECT count(*) FROM attempts").fetchone()
        return int(events[0]), int(attempts[0])  # type: ignore[index]

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {self.name} CASCADE")  # type: ignore[arg-type]


def start_receiver(db: str, options: List[str]) -> Tuple[subprocess.Popen[str], int]:
    receiver = subprocess.Popen(
        [sys.executable, "-m", "uws_adapter", "receiver", "--port", "0", "--db", db, "--allow-anonymous", *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # uvicorn binds after the line is printed
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.1)
    return receiver, port


def stop_receiver(receiver: subprocess.Popen[str]) -> None:
    os.killpg(receiver.pid, signal.SIGINT)
    receiver.wait(timeout=30)


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def timed_run(url: str, options: List[str], scripts: List[Path], seconds: float) -> Tuple[float, float, float]:
    schema = Schema(url)
    receivers = [start_receiver(schema.url, options) for _ in range(2)]
    try:
        loads = [
            subprocess.Popen(
                ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script),
                 f"http://127.0.0.1:{port}/"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for (_, port), script in zip(receivers, scripts)
        ]  # fmt: skip
        outs = [load.communicate()[0] for load in loads]
    finally:
        for receiver, _ in receivers:
            stop_receiver(receiver)
        schema.drop()
    rate, p50, p99 = 0.0, 0.0, 0.0
    for out in outs:
        if "Non-2xx" in out or "error" in out.lower():
            raise SystemExit(f"a receiver refused callbacks:\n{out}")
        rate += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = max(p50, milliseconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)))  # type: ignore[union-attr]
        p99 = max(p99, milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)))  # type: ignore[union-attr]
    return rate, p50, p99


def exact_run(url: str, options: List[str], devices: int) -> Tuple[int, int, int, int]:
    """Every device's callback exactly 4 times, shuffled, over 16 connections spread over both
    receivers (a Python client: wrk cannot stop at an exact count)."""
    documents = [_document(n, count) for count in range(1, 5) for n in range(devices)]
    random.Random(1).shuffle(documents)
    schema = Schema(url)
    receivers = [start_receiver(schema.url, options) for _ in range(2)]
    try:
        acknowledged = deliver(documents, [port for _, port in receivers])
        events, attempts = schema.counts()
    finally:
        for receiver, _ in receivers:
            stop_receiver(receiver)
        schema.drop()
    return len(documents), acknowledged, events, attempts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", default=os.environ.get("UWS_TEST_POSTGRES_URL"), metavar="URL",
        help="a postgresql:// URL whose user may create schemas (default $UWS_TEST_POSTGRES_URL)",
    )  # fmt: skip
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="per timed run")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.db or not args.db.startswith(("postgresql://", "postgres://")):
        raise SystemExit('give --db postgresql://... (eval "$(.ci/postgres.sh start)" starts a server)')
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    best: Dict[str, Tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        scripts = [Path(folder) / f"load{i}.lua" for i in range(2)]
        for offset, script in enumerate(scripts):
            script.write_text(lua_script(args.devices, offset))
        print(f"2 receivers on one PostgreSQL database; {args.devices:,} devices x 4 callbacks over "
              f"2 x {CONNECTIONS} connections, {args.seconds:g} s per run")  # fmt: skip
        for _ in range(args.rounds):
            for label, options in CONFIGS.items():
                figures = timed_run(args.db, options, scripts, args.seconds)
                if label not in best or figures[0] > best[label][0]:
                    best[label] = figures
        for label, (rate, p50, p99) in best.items():
            print(f"  {label:38} {rate:7,.0f} callbacks/s   p50 {p50:5.1f} ms   p99 {p99:5.1f} ms")
        ours, baseline = best["2 x uvicorn, group commit (ours)"][0], best["2 x uvicorn, one commit per callback"][0]
        print(f"  group commit / one commit per callback: {ours / baseline:.2f}x")
    sent, acked, events, attempts = exact_run(args.db, CONFIGS["2 x uvicorn, group commit (ours)"], args.devices)
    print(f"  exact run: {sent:,} deliveries (every device 4 times, shuffled, over both), {acked:,} acknowledged"
          f" -> {events:,} events, {attempts:,} attempts")  # fmt: skip


if __name__ == "__main__":
    main()
