"""The budget guard's cost as a store's history grows: one 10,000-line device list sent three times
(suspend, restore, suspend) through the SOAP client, with a request log, to the carrier emulator on
loopback. The floor is the first send (its check finds no history); the third finds two requests
per line. Prints each send's time, the third/first ratio (goal: at most 1.3) and, after the third
send, the check alone: the count of the lines' recent actions (``over_budget``) and the reservation
(the count and the pending row in one transaction, then released). Each round starts from a fresh
store; the median ratio of the rounds is printed last (a loaded machine moves single runs a lot).

Then the cost of one call as the bridge makes it (a one-line reservation with the budget check, then
its confirmation under a RequestId), p50 of ``--calls``, on an empty store and again once the store
holds ``--history`` succeeded callbacks of the last 24 hours (of requests in the log, 10 lines each,
as the bridge leaves them): the floor is the empty store's, the ratio should stay near 1.

With ``--other-lines N``, the check alone again (on the store opened anew, as a command's first
check) once the summary also holds N other lines' rows
(a fleet's history: written straight into ``budget_identities``, the table the check reads, since
as many requests would take minutes to send; then analysed, as autovacuum would): the check should
stay what it was, whatever the store holds besides the lines checked.

Runs on a SQLite file, and on PostgreSQL too when ``UWS_TEST_POSTGRES_URL`` is set (a schema of its
own, dropped afterwards).

    python benchmarks/budget_check.py [--lines N] [--rounds R] [--checks K] [--history N] [--calls K] [--no-sends]
                                      [--other-lines N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, List
from urllib.parse import quote

from uws_adapter import Device, Emulator, UwsClient, generated_devices, select
from uws_adapter.emulator.core import EmulatedDevice
from uws_adapter.model.callbacks import CallbackRequest, ReportedDevice
from uws_adapter.provisioning.base import DEFAULT_DAILY_BUDGET
from uws_adapter.provisioning.budget import BUDGET_WINDOW, lines_over
from uws_adapter.store import Backend, open_store, upgrade_store
from uws_adapter.store.core import SqlCore
from uws_adapter.store.interfaces import CallbackWrite

USER, PASSWORD = "uws-user", "uws-password"


def _postgres() -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards (nothing when none is set)."""
    url = os.environ.get("UWS_TEST_POSTGRES_URL", "").strip()
    if not url:
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        located = f"{url}{'&' if '?' in url else '?'}options={quote(f'-c search_path={schema}')}"
        upgrade_store(located)
        yield located
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _median_ms(work: Callable[[], object], times: int) -> float:
    taken: List[float] = []
    for _ in range(times):
        start = time.perf_counter()
        work()
        taken.append((time.perf_counter() - start) * 1000)
    return statistics.median(taken)


# N rows of lines never sent in this run, on the day of ? (SQLite: a recursive count; PostgreSQL:
# generate_series), and the statistics a planner reads.
_OTHERS = {
    "sqlite": "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) INSERT INTO"
    " budget_identities SELECT 'IMEI:9' || n, 'IMEI:9' || n, 1, 0, ?, 1, 0 FROM g",
    "postgresql": "INSERT INTO budget_identities SELECT 'IMEI:9' || g, 'IMEI:9' || g, 1, FALSE, ?, 1, 0"
    " FROM generate_series(1, ?::integer) g",
}


def other_lines(store: Backend, count: int) -> None:
    """``count`` other lines' rows in the summary, analysed."""
    assert isinstance(store, SqlCore)  # both backends are
    day = int(store.clock() // 86400)
    dialect = store.dialect.name
    args = (count, day) if dialect == "sqlite" else (day, count)
    store._transact("other lines", lambda db: db.run(_OTHERS[dialect], args))
    store._transact("analyse", lambda db: db.run("ANALYZE" if dialect == "sqlite" else "ANALYZE budget_identities"))


def run(
    name: str, store: Backend, emulator: Emulator, devices: List[Device], checks: int, others: int = 0,
    location: str = "",
) -> float:  # fmt: skip
    """Three sends on one store; prints them and the check alone, returns third/first."""
    client = UwsClient(base_url=emulator.base_url, username=USER, password=PASSWORD, timeout=(10.0, 120.0),
                       deadline=300.0, store=store)  # fmt: skip
    client.ensure_login()
    sends: List[float] = []
    for action in (client.suspend, client.restore, client.suspend):
        start = time.perf_counter()
        action(select(devices))
        sends.append(time.perf_counter() - start)
    count_ms = _median_ms(lambda: client.over_budget(devices), checks)
    since = store.clock() - BUDGET_WINDOW

    def reservation() -> None:
        reserved = store.reserve_request(
            "Suspend", devices, api="soap", since=since, admit=lambda found: False, at_least=DEFAULT_DAILY_BUDGET
        )
        assert reserved is not None
        store.release_request(reserved)

    reserve_ms = _median_ms(reservation, checks)
    ratio = sends[2] / sends[0]
    print(
        f"{name:<10} sends {sends[0]:5.2f} s {sends[1]:5.2f} s {sends[2]:5.2f} s  third/first {ratio:4.2f}  "
        f"then the check {count_ms:6.1f} ms, a reservation {reserve_ms:6.1f} ms (3 earlier requests a line)",
        flush=True,
    )
    if others:
        other_lines(store, others)
        # On a store opened anew, as a command's first check: a connection that ran a statement five
        # times has psycopg prepare it, and PostgreSQL may then plan it for any list (fewer rows).
        with open_store(location) as fresh:
            found = _median_ms(lambda: _check(fresh, devices), min(checks, 5))
        print(f"{name:<10} the check with {others:,} other lines in the summary {found:6.1f} ms", flush=True)
    client.close()
    return ratio


def _check(store: Backend, devices: List[Device]) -> object:
    """What ``over_budget`` does, on ``store``."""
    since = store.clock() - BUDGET_WINDOW
    found = store.device_actions(devices, since, at_least=DEFAULT_DAILY_BUDGET)
    return lines_over(devices, found, DEFAULT_DAILY_BUDGET)


def fill_history(store: Backend, callbacks: int) -> None:
    """``callbacks`` succeeded Suspend callbacks of requests in the log, 10 lines a request; lines
    numbered from a billion, apart from the timed ones (bridge_call.py's too)."""
    for start in range(0, callbacks, 10):
        devices = [Device.parse(f"IMEI:{10**9 + n}") for n in range(start, min(start + 10, callbacks))]
        request_id = f"history-{start // 10}"
        store.record_request(request_id, "Suspend", tuple(devices), api="rest")
        store.commit_group([
            CallbackWrite(CallbackRequest(
                request_id, (ReportedDevice("IMEI", device.identifiers[0].identifier),),
                service="CarrierService", action="Suspend", status="Success",
            ), ())
            for device in devices
        ])  # fmt: skip


def _per_call(store: Backend, calls: int, first: int) -> float:
    """p50 in ms of a one-line reservation with the budget check, then its confirmation; each call
    on a line of its own (numbered from ``first``), so that only the history grows."""
    taken: List[float] = []
    for n in range(first, first + calls):
        device = [Device.parse(f"IMEI:{359000000000000 + n}")]
        start = time.perf_counter()
        since = store.clock() - BUDGET_WINDOW
        reserved = store.reserve_request("Suspend", device, api="rest", since=since, at_least=DEFAULT_DAILY_BUDGET)
        assert reserved is not None
        store.confirm_request(reserved, f"call-{uuid.uuid4()}")
        taken.append((time.perf_counter() - start) * 1000)
    return statistics.median(taken)


def calls_with_history(name: str, store: Backend, history: int, calls: int) -> None:
    empty = _per_call(store, calls, 0)
    fill_history(store, history)
    full = _per_call(store, calls, calls)
    print(
        f"{name:<10} one call (reservation, confirmation), p50 of {calls}: {empty:6.2f} ms on an empty store,"
        f" {full:6.2f} ms with {history:,} callbacks of the last 24 h: {full / empty:5.2f}x",
        flush=True,
    )


def _sqlite_round(folder: Path, lines: List[EmulatedDevice], checks: int, others: int) -> float:
    with Emulator(devices=lines, daily_budget=1000) as emulator, open_store(folder / "b.db") as store:
        return run("sqlite", store, emulator, [line.device for line in lines], checks, others, str(folder / "b.db"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="fresh stores, each sent to three times")
    parser.add_argument("--checks", type=int, default=5, help="times the check alone is timed (median)")
    parser.add_argument("--history", type=int, default=20_000, help="callbacks in the store for the per-call row")
    parser.add_argument("--calls", type=int, default=200, help="timed calls on each store (median)")
    parser.add_argument("--no-sends", action="store_true", help="only the per-call row")
    parser.add_argument("--other-lines", type=int, default=0, help="other lines' rows in the summary, then the check")
    args = parser.parse_args()
    lines = generated_devices(args.lines)
    devices = [line.device for line in lines]
    ratios: Dict[str, List[float]] = {}
    # The emulator's own daily limit is out of the way; callbacks go nowhere (no listener).
    for _ in range(0 if args.no_sends else args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            ratios.setdefault("sqlite", []).append(_sqlite_round(Path(folder), lines, args.checks, args.other_lines))
        for url in _postgres():
            with Emulator(devices=lines, daily_budget=1000) as emulator, open_store(url) as pg:
                ratio = run("postgresql", pg, emulator, devices, args.checks, args.other_lines, url)
                ratios.setdefault("postgresql", []).append(ratio)
    for name, found in ratios.items():
        median = statistics.median(found)
        print(f"{name:<10} third/first, median of {len(found)} rounds: {median:.2f} (goal: 1.3 at most)")
    with tempfile.TemporaryDirectory() as folder, open_store(Path(folder) / "calls.db") as store:
        calls_with_history("sqlite", store, args.history, args.calls)
    for url in _postgres():
        with open_store(url) as pg:
            calls_with_history("postgresql", pg, args.history, args.calls)


if __name__ == "__main__":
    main()
