"""CPU per callback of the receiver's own code, without an HTTP server or a load generator: the
application each ``uws-adapter receiver --server uvicorn`` worker builds (access line, receiver,
group commit in committer threads, metrics in prometheus_client's multiprocess files, logging to a
file at INFO) against the parse-only floor app of ``receiver_floors.py``, both driven in one process
on uvloop by ASGI messages, in bursts of ``--burst`` callbacks (one group each).

Why: on a shared 2-core machine the load benchmarks' throughput moves with the others' load by a
factor of two within minutes; the CPU time of one process doing a fixed amount of work moves far
less. It counts every thread of the process (user and system, ``getrusage``), so the committer
threads' statements and fsyncs are in it; the committer threads' own share is printed beside it.
Each round runs the floor and the receiver once; the median over rounds is printed.

    python benchmarks/receiver_stack_cpu.py [--callbacks N] [--burst B] [--rounds R] [--db URL]

Without ``--db`` the store is a SQLite file (synchronous FULL, as the receiver's default), else the
PostgreSQL database at URL (a schema of its own, dropped at the end). ``--no-commit`` makes the
store answer every group at once (each callback a new event, nothing written): what is left is the
event loop's own work and the handoff to the committer threads, free of the variance of the
WAL's fsync, which can be larger than a change to the loop's side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Sequence, Tuple

App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def documents(count: int) -> List[bytes]:
    """Callbacks of 10,000 devices, each device again with the next CallbackCount."""
    from uws_adapter import CallbackRequest, ReportedDevice, render_callback

    return [
        render_callback(
            CallbackRequest(
                "bench-request", devices=(ReportedDevice("IMEI", f"{350000000000000 + n % 10_000}"),),
                service="CarrierService", action="Suspend", status="Success", callback_count=1 + n // 10_000,
                max_callback_threshold=4,
            )
        )
        for n in range(count)
    ]  # fmt: skip


async def deliver(app: App, body: bytes) -> None:
    scope = {
        "type": "http", "method": "POST", "path": "/", "raw_path": b"/", "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"127.0.0.1:8081"), (b"content-type", b"text/xml; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    sent: List[MutableMapping[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"answered {sent[0]['status']}: {sent[1].get('body')!r}")


def cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


async def timed(app: App, bodies: Sequence[bytes], burst: int, lanes: int = 0) -> float:
    """CPU microseconds per callback of delivering ``bodies`` (after a warm-up of 320): in bursts of
    ``burst``, or (``lanes``) by that many clients each sending its next callback once the last
    one is answered, as wrk's connections do."""
    if lanes:
        await in_lanes(app, bodies[:320], lanes)
        before = cpu()
        await in_lanes(app, bodies, lanes)
        return (cpu() - before) * 1e6 / len(bodies)
    for start in range(0, 320, burst):
        await asyncio.gather(*(deliver(app, body) for body in bodies[start : start + burst]))
    before = cpu()
    for start in range(0, len(bodies), burst):
        await asyncio.gather(*(deliver(app, body) for body in bodies[start : start + burst]))
    return (cpu() - before) * 1e6 / len(bodies)


async def in_lanes(app: App, bodies: Sequence[bytes], lanes: int) -> None:
    """``lanes`` clients sending ``bodies`` one after another, each waiting 0 to 7 loop iterations
    (a seeded draw) before its next: their callbacks arrive spread over iterations, as a server's
    connections' do, so that groups are handed over while others commit."""
    queued = iter(bodies)
    draw = random.Random(1).randrange

    async def lane() -> None:
        for body in queued:
            await deliver(app, body)
            for _ in range(draw(8)):
                await asyncio.sleep(0)

    await asyncio.gather(*(lane() for _ in range(lanes)))


class CommitterClock:
    """The committer threads' CPU time, summed around ``AsyncReceiver._commit``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.callbacks = 0
        self.groups = 0

    def install(self) -> None:
        from uws_adapter.receiver.asgi import AsyncReceiver

        original = AsyncReceiver._commit
        clock = self

        def commit(receiver: Any, writes: Any) -> Any:
            started = time.thread_time()
            try:
                return original(receiver, writes)
            finally:
                clock.seconds += time.thread_time() - started
                clock.callbacks += len(writes)
                clock.groups += 1

        AsyncReceiver._commit = commit  # type: ignore[method-assign]

    def take(self) -> Tuple[float, float]:
        """The committer threads' CPU microseconds per callback, and the groups' mean size, since
        the last call."""
        per = self.seconds * 1e6 / max(1, self.callbacks)
        size = self.callbacks / max(1, self.groups)
        self.seconds, self.callbacks, self.groups = 0.0, 0, 0
        return per, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=4000)
    parser.add_argument("--burst", type=int, default=16, help="callbacks in flight at once (one group)")
    parser.add_argument("--lanes", type=int, default=0, help="instead of bursts: clients sending one after another")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--no-commit", action="store_true", help="the store answers every group at once")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # before the metrics are made, as in a worker
    import uvloop
    from receiver_floors import parse_only
    from receiver_load_postgres import Schema

    from uws_adapter.logs import configure_logging
    from uws_adapter.receiver.app import Receiver
    from uws_adapter.receiver.asgi import AsyncReceiver
    from uws_adapter.serving.access import AsgiAccessLog
    from uws_adapter.store import open_store

    out = sys.stdout
    log = open(folder / "receiver.log", "w")  # noqa: SIM115 (open for the whole run)
    sys.stderr = log  # the access lines go where a worker's go: a file
    configure_logging("info")
    schema = Schema(args.db) if args.db else None  # the PostgreSQL benchmark's: a schema of its own
    store = open_store(schema.url if schema is not None else str(folder / "bench.db"))
    if args.no_commit:
        from uws_adapter.store.interfaces import Outcome

        def answered(writes: Sequence[Any]) -> List[Outcome]:
            return [Outcome((number, True)) for number in range(1, len(writes) + 1)]

        store.commit_group = answered  # type: ignore[method-assign]
    receiver = Receiver(store, allow_anonymous=True)
    ours = AsgiAccessLog(AsyncReceiver(receiver), "receiver")
    floor = parse_only()
    committer = CommitterClock()
    committer.install()
    bodies = documents(args.callbacks)
    rows: List[Tuple[float, float, float, float]] = []

    async def rounds() -> None:
        for number in range(args.rounds):
            floor_cpu = await timed(floor, bodies, args.burst, args.lanes)
            committer.take()
            our_cpu = await timed(ours, bodies, args.burst, args.lanes)
            rows.append((floor_cpu, our_cpu, *committer.take()))
            print(f"  round {number + 1}: parse-only floor {floor_cpu:6.1f} us, receiver {our_cpu:6.1f} us "
                  f"(committer threads {rows[-1][2]:5.1f} us, groups of {rows[-1][3]:.1f}), "
                  f"{our_cpu / floor_cpu:4.2f}x", file=out)  # fmt: skip

    shape = f"{args.lanes} lanes" if args.lanes else f"bursts of {args.burst}"
    print(f"{args.callbacks:,} callbacks in {shape}, {args.rounds} rounds, store: "
          f"{'PostgreSQL' if args.db else 'SQLite FULL'}{' (not committing)' if args.no_commit else ''}; "
          f"load average {os.getloadavg()[0]:.1f}", file=out)  # fmt: skip
    try:
        uvloop.install()
        asyncio.run(rounds())
    finally:
        receiver.close()
        store.close()
        if schema is not None:
            schema.drop()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
    extra = statistics.median(o - f for f, o, _, _ in rows)
    ratio = statistics.median(o / f for f, o, _, _ in rows)
    print(f"  median: receiver - floor {extra:.1f} us CPU per callback, receiver / floor {ratio:.2f}x, "
          f"committer threads {statistics.median(c for _, _, c, _ in rows):.1f} us, "
          f"groups of {statistics.median(g for _, _, _, g in rows):.1f}; "
          f"load average {os.getloadavg()[0]:.1f} at the end", file=out)  # fmt: skip


if __name__ == "__main__":
    main()
