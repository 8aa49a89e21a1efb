"""Two receiver processes on one PostgreSQL database, under wrk (Debian package ``wrk``): durable
callbacks/s and p99 as ratios to two floors served the same way in the same run (two processes of an
app that only answers 200, and of one that only parses the body with the hardened parser:
``receiver_floors.py``), with the servers' CPU time per callback.

As behind a load balancer, each receiver takes half the load (one wrk per receiver, 16 keep-alive
connections each): the callbacks of a 10,000-device request, each device sent 4 times (CallbackCount
1 to 4), the two halves on different devices. Every receiver run starts on an empty schema; each round
runs every configuration once and the ratios are taken within a round (median and range printed).
The rate is the sum of both wrks'; p50 and p99 are the worse of the two. The receivers log as in
production (INFO, one access line per request, to a file) and count metrics. ``--baselines`` adds one
commit per callback. A last run sends every device's callback exactly 4 times, shuffled, spread over
both receivers, and reports the events and attempts stored. Durable means acknowledged after COMMIT,
with the server's synchronous_commit (on, in .ci/postgres.sh).

    eval "$(.ci/postgres.sh start)"
    python benchmarks/receiver_load_postgres.py --db "$UWS_TEST_POSTGRES_URL" [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Dict, List, Tuple
from urllib.parse import quote

# The sibling benchmark (python puts this folder on sys.path): the same servers, load and report.
from receiver_load import (
    Figures,
    cpu_seconds,
    deliver,
    figures,
    floor_command,
    process_tree,
    receiver_command,
    report,
    scraped,
    start,
    stop,
)

from uws_adapter import CallbackRequest, ReportedDevice, render_callback

OURS = "2 x receiver (uvicorn), group commit"
_GROUP_METRICS = (
    "uws_adapter_commit_group_size_sum", "uws_adapter_commit_group_size_count",
    "uws_adapter_commit_seconds_sum", "uws_adapter_commit_seconds_count",
)  # fmt: skip
ANSWER, PARSE = "2 x floor: answers 200 only", "2 x floor: parses only"
FLOORS: Dict[str, List[str]] = {ANSWER: ["answer", "--workers", "1"], PARSE: ["parse", "--workers", "1"]}
RECEIVERS: Dict[str, List[str]] = {OURS: ["--server", "uvicorn", "--workers", "1", "--commit", "group"]}
BASELINES: Dict[str, List[str]] = {
    "2 x receiver (uvicorn), one commit per callback": ["--server", "uvicorn", "--workers", "1", "--commit", "each"]
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


def timed_run(url: str, label: str, scripts: List[Path], seconds: float, folder: Path) -> Figures:
    """One run of ``label``: two processes, half the load each; a receiver's access log is checked."""
    schema = Schema(url) if label not in FLOORS else None
    logs = [folder / f"receiver{i}.log" for i in range(2)]
    if schema is not None:
        options = {**RECEIVERS, **BASELINES}[label]
        servers = [start(receiver_command(schema.url, options), log) for log in logs]
    else:
        servers = [start(floor_command(FLOORS[label])) for _ in range(2)]
    try:
        pids = [pid for process, _ in servers for pid in process_tree(process.pid)]
        before = cpu_seconds(pids)
        backends_before = _backends(url) if schema is not None else {}
        loads = [
            subprocess.Popen(
                ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script),
                 f"http://127.0.0.1:{port}/"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for (_, port), script in zip(servers, scripts)
        ]  # fmt: skip
        outs = [load.communicate()[0] for load in loads]
        cpu = cpu_seconds(pids) - before
        if schema is not None:
            # How large the groups were and how long their commits took (both processes): what
            # a callback's wait and the per-group costs come from.
            sums = [sum(scraped(port, name) for _, port in servers) for name in _GROUP_METRICS]
            served = sum(figures(out)[3] for out in outs)
            server = _backends(url)
            used = sum(seconds - backends_before.get(pid, 0.0) for pid, seconds in server.items())
            if sums[1] > 0:
                print(f"    {label}: groups of {sums[0] / sums[1]:.1f} callbacks on average, "
                      f"a commit {sums[2] / max(sums[3], 1) * 1e3:.1f} ms on average"
                      + (f"; the server's backends {used * 1e6 / max(served, 1):.0f} us of CPU a callback"
                         if server else ""))  # fmt: skip
    finally:
        for process, _ in servers:
            stop(process)
        if schema is not None:
            schema.drop()
    rate, p50, p99, count = 0.0, 0.0, 0.0, 0
    for out in outs:
        one = figures(out)
        rate, p50, p99, count = rate + one[0], max(p50, one[1]), max(p99, one[2]), count + one[3]
    if schema is not None:
        lines = sum(log.read_text().count('"POST /" 200') for log in logs)
        if lines < count:
            raise SystemExit(f"{label}: {lines} access lines for {count} callbacks")
    return rate, p50, p99, cpu * 1e6 / max(count, 1)


def _backends(url: str) -> Dict[int, float]:
    """CPU seconds so far of each server process serving the receivers (``application_name``
    uws-adapter), read from /proc: empty when the server runs on another machine. Its CPU is
    taken from the same cores as the receivers' when it runs on this one."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'uws-adapter'").fetchall()
    return {int(row[0]): cpu_seconds([int(row[0])]) for row in rows if _local_postgres(int(row[0]))}


def _local_postgres(pid: int) -> bool:
    try:  # a process of this machine's server, not one that happens to have a remote backend's pid
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


def exact_run(url: str, options: List[str], devices: int) -> Tuple[int, int, int, int]:
    """Every device's callback exactly 4 times, shuffled, over 16 connections spread over both
    receivers (a Python client: wrk cannot stop at an exact count)."""
    documents = [_document(n, count) for count in range(1, 5) for n in range(devices)]
    random.Random(1).shuffle(documents)
    schema = Schema(url)
    receivers = [start(receiver_command(schema.url, options)) for _ in range(2)]
    try:
        acknowledged = deliver(documents, [port for _, port in receivers])
        events, attempts = schema.counts()
    finally:
        for receiver, _ in receivers:
            stop(receiver)
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baselines", action="store_true", help="also one commit per callback")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-count run")
    args = parser.parse_args()
    if not args.db or not args.db.startswith(("postgresql://", "postgres://")):
        raise SystemExit('give --db postgresql://... (eval "$(.ci/postgres.sh start)" starts a server)')
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    labels = [ANSWER, PARSE, *RECEIVERS, *(BASELINES if args.baselines else ())]
    rounds: List[Dict[str, Figures]] = []
    with tempfile.TemporaryDirectory() as folder:
        scripts = [Path(folder) / f"load{i}.lua" for i in range(2)]
        for offset, script in enumerate(scripts):
            script.write_text(lua_script(args.devices, offset))
        print(f"2 processes on one PostgreSQL database; {args.devices:,} devices x 4 callbacks over "
              f"2 x {CONNECTIONS} connections, {args.seconds:g} s per run, {args.rounds} rounds; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        for _ in range(args.rounds):
            rounds.append({label: timed_run(args.db, label, scripts, args.seconds, Path(folder)) for label in labels})
        report(rounds, OURS, ANSWER, PARSE)
        print(f"  load average {os.getloadavg()[0]:.1f} at the end")
    if not args.no_exact:
        sent, acked, events, attempts = exact_run(args.db, RECEIVERS[OURS], args.devices)
        print(f"  exact run: {sent:,} deliveries (every device 4 times, shuffled, over both), {acked:,} acknowledged"
              f" -> {events:,} events, {attempts:,} attempts")  # fmt: skip


if __name__ == "__main__":
    main()
