"""Two receiver processes on one PostgreSQL database (UWS_TEST_POSTGRES_URL; skipped without it,
except under CI): kill -9 of either at random moments under load loses nothing acknowledged;
re-sends spread over both are stored once and all counted; handler runs are shared, each run once.
(Durations are never asserted; a receiver that never takes traffic fails after a generous bound.)"""

from __future__ import annotations

import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import psycopg
import pytest
from pgserver import fresh_schema, upgraded
from servers import HttpServer, closed_port, wait_until

from uws_adapter import CallbackRequest, ReportedDevice, render_callback

RESTART_BOUND = 60.0
#: Kills per run: each at a random moment under load (the durability campaigns ran
#: dozens; three in every run keep the suite short and still land in different phases of a commit).
KILLS = 3
SERVERS = {
    "waitress": ["--server", "waitress", "--threads", "8"],
    "uvicorn": ["--server", "uvicorn", "--workers", "1"],
}


@pytest.fixture
def database() -> Iterator[str]:
    for url in fresh_schema():
        yield upgraded(url)


def _start(db: str, port: int, server: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "uws_adapter", "receiver", "--port", str(port), "--db", db, "--allow-anonymous",
         *SERVERS[server]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


class Poster:
    """Keep-alive POSTs to one receiver, from one thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: Optional[http.client.HTTPConnection] = None

    def post(self, body: bytes) -> Optional[int]:
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
            response = self.connection.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):  # a kill mid-answer is an incomplete read
            if self.connection is not None:
                self.connection.close()
            self.connection = None
            return None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def post_once(port: int, body: bytes) -> Optional[int]:
    poster = Poster(port)
    try:
        return poster.post(body)
    finally:
        poster.close()


def _callback(n: int, count: int = 1) -> bytes:
    return render_callback(
        CallbackRequest(
            f"req-{n // 100}", devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService",
            action="Suspend", status="Success", callback_count=count,
        )
    )  # fmt: skip


def _rows(db: str, query: str) -> List[Tuple[object, ...]]:
    with psycopg.connect(db) as connection:
        return list(connection.execute(query).fetchall())  # type: ignore[arg-type]


def test_kill_9_of_either_receiver_under_load_loses_nothing_acknowledged(database: str) -> None:
    ports = [closed_port(), closed_port()]
    rng = random.Random(20261130)
    acknowledged: Set[int] = set()
    lock = threading.Lock()
    counter = iter(range(10**9))
    stop = threading.Event()

    def load(worker: int) -> None:
        posters = [Poster(port) for port in ports]
        while not stop.is_set():
            with lock:
                n = next(counter)
            if posters[(n + worker) % 2].post(_callback(n)) == 200:
                with lock:
                    acknowledged.add(n)
            else:
                time.sleep(0.05)  # refused while it restarts: six threads spinning would slow the restart
        for poster in posters:
            poster.close()

    def takes_traffic(port: int) -> bool:
        with lock:
            n = next(counter)
        if post_once(port, _callback(n)) != 200:
            return False
        with lock:
            acknowledged.add(n)
        return True

    processes = [_start(database, ports[0], "uvicorn"), _start(database, ports[1], "waitress")]
    workers = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(6)]
    try:
        for port in ports:
            wait_until(lambda port=port: takes_traffic(port), RESTART_BOUND, "the receivers to take traffic")
        for worker in workers:
            worker.start()
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))  # under load for a random while: the moment of the kill
            victim = rng.randrange(2)
            os.killpg(processes[victim].pid, signal.SIGKILL)
            processes[victim].wait(timeout=10)
            processes[victim] = _start(database, ports[victim], ["uvicorn", "waitress"][victim])
            wait_until(
                lambda victim=victim: takes_traffic(ports[victim]),
                RESTART_BOUND,
                f"receiver {victim} after kill {kill + 1}",
            )
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
        for process in processes:
            _stop(process)
    stored = {int(str(row[0]).split(":")[1]) - 350000000000000 for row in _rows(database, "SELECT device FROM events")}
    assert len(acknowledged) > 100, "the load generator barely got through"
    assert acknowledged - stored == set()
    # Every stored event has its attempts (one transaction each): none half-written by a kill.
    assert _rows(database, "SELECT count(*) FROM events e WHERE NOT EXISTS"
                           " (SELECT 1 FROM attempts a WHERE a.event_id = e.id)") == [(0,)]  # fmt: skip


def test_four_deliveries_of_1000_callbacks_over_two_receivers_are_1000_events_and_4000_attempts(
    database: str,
) -> None:
    ports = [closed_port(), closed_port()]
    processes = [_start(database, ports[0], "uvicorn"), _start(database, ports[1], "waitress")]
    # Each callback's four deliveries go to both receivers, in rounds that overlap: re-sends race.
    deliveries = [(n, count) for count in range(1, 5) for n in range(1000)]
    random.Random(7).shuffle(deliveries)
    answers: Counter[Optional[int]] = Counter()
    lock = threading.Lock()

    def send(share: List[Tuple[int, int]], worker: int) -> None:
        posters = [Poster(port) for port in ports]
        for n, count in share:
            status = posters[(n + count + worker) % 2].post(_callback(n, count))
            with lock:
                answers[status] += 1
        for poster in posters:
            poster.close()

    try:
        for port in ports:
            wait_until(
                lambda port=port: post_once(port, _callback(10**6)) == 200, RESTART_BOUND, "the receivers to start"
            )
        threads = [threading.Thread(target=send, args=(deliveries[w::8], w)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for process in processes:
            _stop(process)
    assert answers == {200: 4000}
    events = _rows(database, "SELECT count(*) FROM events WHERE request_id <> 'req-10000'")
    attempts = _rows(database, "SELECT count(*) FROM attempts a JOIN events e ON e.id = a.event_id"
                               " WHERE e.request_id <> 'req-10000'")  # fmt: skip
    assert (events, attempts) == ([(1000,)], [(4000,)])
    per_event = _rows(database, "SELECT count(*) FROM attempts GROUP BY event_id")
    assert {row[0] for row in per_event} <= {4, 2}  # the start-up probes: one event, two attempts


def test_handlers_on_two_receivers_run_once_per_event(database: str) -> None:
    sink = HttpServer(lambda body: (200, "text/plain", b""))
    ports = [closed_port(), closed_port()]
    script = str(Path(__file__).with_name("handler_receiver.py"))
    processes = [
        subprocess.Popen([sys.executable, script, database, str(port), sink.url], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        for port in ports
    ]  # fmt: skip
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        posters: Dict[int, Poster] = {port: Poster(port) for port in ports}
        for port in ports:
            wait_until(
                lambda port=port: posters[port].post(_callback(0)) == 200, RESTART_BOUND, "the receivers to start"
            )
        for n in range(1, 300):  # each callback to one receiver, then re-sent to the other
            assert posters[ports[n % 2]].post(_callback(n)) == 200
            assert posters[ports[(n + 1) % 2]].post(_callback(n, 2)) == 200
        wait_until(lambda: len(sink.bodies) >= 300, 120.0, "every handler run")
        wait_until(lambda: _rows(database, "SELECT count(*) FROM handler_queue") == [(0,)], 60.0, "an empty queue")
        for poster in posters.values():
            poster.close()
    finally:
        for process in processes:
            _stop(process)
        sink.close()
    ran = Counter(int(body.split()[1]) for body in sink.bodies)
    runners = {body.split()[0] for body in sink.bodies}
    event_ids = {int(str(row[0])) for row in _rows(database, "SELECT id FROM events")}
    assert len(event_ids) == 300
    assert set(ran) == event_ids
    assert set(ran.values()) == {1}  # once each, across both
    assert len(runners) == 2  # both instances ran handlers
