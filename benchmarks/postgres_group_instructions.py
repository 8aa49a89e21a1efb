"""Instructions the PostgreSQL server's backend spends on a group of callbacks the store commits,
counted by valgrind: a figure the shared machine's load does not move (the same run gives the
same count to a tenth of a percent), where the server's CPU time per callback moved by a third
between runs of the same code.

    python benchmarks/postgres_group_instructions.py [--group G] [--groups K] [--mix half|new]

A throwaway cluster (Debian's postgresql package, as ``.ci/postgres.sh``) runs under
``valgrind --tool=callgrind --trace-children=yes``, so every backend writes its own count when it
exits. On a schema of its own with this release's store schema, a first connection commits 40
groups (the table is not empty), then two more connections commit 12 groups to warm up (the
statement prepared, its generic plan made) and ``--groups`` and 6 x ``--groups`` more groups; the
difference of the two backends' totals over the difference of the groups is the instructions per
group (the connection, the warm-up and the planning cancel out). Groups of ``--group`` callbacks of
one request: ``half`` alternates a group of new events and a group of re-sends of them (what a
carrier's re-sends make), ``new`` only new events. The store commits with
``commit_group``, as a receiver's committer thread does.

What it cannot see: the kernel (the WAL's write and fdatasync, the socket), time lost to caches, the
client's side (``receiver_instructions.py``, ``receiver_stack_cpu.py --db``). For A/B, run it once
with a copy of the other package first on ``PYTHONPATH``. Needs valgrind (``apt-get install
valgrind``) and the postgresql package; run as root, the cluster belongs to ``$UWS_PG_OS_USER``
(default ``uwspg``, which ``.ci/postgres.sh start`` creates).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Sequence

from uws_adapter import CallbackRequest, ReportedDevice
from uws_adapter.store import CallbackWrite, open_store, upgrade_store


def _bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    return found[-1].parent


def _as_owner(command: Sequence[str]) -> List[str]:
    if os.getuid() != 0:
        return list(command)
    return ["runuser", "-u", os.environ.get("UWS_PG_OS_USER", "uwspg"), "--", *command]


class Cluster:
    """A cluster under callgrind, on a unix socket in its folder only."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="uws-pg-callgrind-"))
        if os.getuid() == 0:
            shutil.chown(self.folder, os.environ.get("UWS_PG_OS_USER", "uwspg"))
        self.bin = _bin()
        subprocess.run(
            _as_owner([str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", "uws", "--auth=trust",
                       "-E", "UTF8", "--no-locale"]),
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        with socket.socket() as probe:  # a port number for the socket's name; nothing listens on TCP
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = subprocess.Popen(
            _as_owner(["valgrind", "--tool=callgrind", "--trace-children=yes",
                       f"--callgrind-out-file={self.folder}/cg.%p", str(self.bin / "postgres"), "-D",
                       str(self.folder / "data"), "-p", str(self.port), "-k", str(self.folder), "-c",
                       "listen_addresses=", "-c", "synchronous_commit=on", "-c", "autovacuum=off"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"postgresql://uws@/postgres?host={self.folder}&port={self.port}"
        self._wait()

    def _wait(self) -> None:
        import psycopg

        for _ in range(300):  # valgrind starts the server in seconds, bounded at a minute
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise SystemExit("the server under valgrind did not start")

    def schema(self) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute("CREATE SCHEMA bench")
        return f"{self.url}&options=-c%20search_path%3Dbench"

    def instructions(self, pid: int) -> int:
        """The total of the backend ``pid``, written when it exited."""
        out = self.folder / f"cg.{pid}"
        for _ in range(300):
            if out.exists():
                for line in out.read_text().splitlines():
                    if line.startswith("totals:"):
                        return int(line.split()[1])
            time.sleep(0.2)
        raise SystemExit(f"no count from the backend {pid}")

    def stop(self) -> None:
        subprocess.run(_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w",
                                  "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        self.server.wait(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def _callback(n: int, count: int) -> CallbackRequest:
    return CallbackRequest(
        "bench-request", (ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService",
        action="Suspend", status="Success", callback_count=count, max_callback_threshold=4,
    )  # fmt: skip


def groups(size: int, mix: str) -> Iterator[List[CallbackWrite]]:
    """Groups of ``size`` callbacks without end, new events and re-sends as ``mix`` says."""
    n = 0
    while True:
        fresh = [CallbackWrite(_callback(k, 1)) for k in range(n, n + size)]
        n += size
        yield fresh
        if mix == "half":
            yield [CallbackWrite(_callback(k, 2)) for k in range(n - size, n)]


def committed(cluster: Cluster, url: str, writes: Iterator[List[CallbackWrite]], count: int) -> int:
    """The instructions of the backend that committed ``count`` groups of ``writes`` (and exited)."""
    store = open_store(url)
    try:
        pid = store._run("read the backend", lambda db: db.info.backend_pid)
        for _ in range(count):
            outcomes = store.commit_group(next(writes))
            if any(o.error is not None for o in outcomes):
                raise SystemExit(f"a group failed: {outcomes}")
    finally:
        store.close()
    return cluster.instructions(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", type=int, default=6, help="callbacks a group (6: the benchmark's under wrk)")
    parser.add_argument("--groups", type=int, default=10, help="groups in the first counted run (6x in the second)")
    parser.add_argument("--mix", choices=("half", "new"), default="half")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    cluster = Cluster()
    try:
        url = cluster.schema()
        upgrade_store(url)
        writes = groups(args.group, args.mix)
        committed(cluster, url, writes, 40)
        few = committed(cluster, url, writes, 12 + args.groups)
        many = committed(cluster, url, writes, 12 + 6 * args.groups)
    finally:
        cluster.stop()
    per_group = (many - few) / (5 * args.groups)
    print(f"groups of {args.group} ({args.mix}): the server's backend {per_group:,.0f} instructions a group, "
          f"{per_group / args.group:,.0f} a callback")  # fmt: skip


if __name__ == "__main__":
    main()
