"""Metrics and health endpoints over real loopback servers: the receiver on waitress (WSGI) and on
uvicorn (ASGI), a two-worker uvicorn receiver started by the CLI, and the bridge with its REST
client. Counters are process-wide, so each test compares a scrape after known traffic with one
before it."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, DATA, PASSWORD, USER, ManualClock
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from servers import AsgiServer, HttpServer, WaitressServer, wait_until

from uws_adapter import (
    CallbackRequest,
    Emulator,
    ReportedDevice,
    RestoreResult,
    __version__,
    generated_devices,
    render_callback,
)
from uws_adapter import metrics as uws_metrics
from uws_adapter.bridge.app import Bridge, LegacyRelay
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.receiver.app import Receiver, server_options
from uws_adapter.receiver.asgi import AsyncReceiver, server_config
from uws_adapter.rest.client import RestClient
from uws_adapter.store.sqlite import Store, StoredEvent

SECRET = "metrics-pw"
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def get(port: int, path: str) -> Tuple[int, Dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def post(port: int, body: bytes, content_type: str = "text/xml; charset=utf-8", **headers: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if "Content-Length" in headers:  # announced over the limit: the headers only, as a careful client
            connection.putrequest("POST", "/callbacks")
            for name, value in {"Content-Type": content_type, **headers}.items():
                connection.putheader(name, value)
            connection.endheaders()
        else:
            connection.request("POST", "/callbacks", body=body, headers={"Content-Type": content_type, **headers})
        return connection.getresponse().status
    finally:
        connection.close()


def scrape(port: int) -> Samples:
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(body.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def callback(n: int, password: Optional[str] = SECRET, count: int = 1) -> bytes:
    return render_callback(
        CallbackRequest(
            request_id="metrics-req",
            devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),),
            username="listener",
            password=password,
            service="CarrierService",
            action="Restore",
            status="Success",
            callback_count=count,
            max_callback_threshold=4,
            restore=RestoreResult(True),
        )
    )


class Serving:
    """A receiver behind waitress or uvicorn on loopback."""

    def __init__(self, app: Receiver, server: str) -> None:
        self.app = app
        self.kind = server
        if server == "waitress":
            wsgi = WaitressServer(app, **server_options(app, threads=8))
            self.port, self._stop = wsgi.port, wsgi.close
        else:
            asgi = AsyncReceiver(app)
            running = AsgiServer(asgi, **server_config(asgi))
            self.port, self._stop = running.port, running.close

    def close(self) -> None:
        self._stop()
        self.app.close()


@pytest.fixture(params=["waitress", "uvicorn"])
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[[Receiver], Serving]]:
    started: List[Serving] = []

    def make(app: Receiver) -> Serving:
        started.append(Serving(app, request.param))
        return started[-1]

    yield make
    for serving in started:
        serving.close()


def test_a_scrape_counts_callbacks_by_outcome_and_handler_runs(tmp_path: Path, serve: Callable[..., Serving]) -> None:
    seen: Dict[int, int] = {}

    def flaky(event: StoredEvent) -> None:  # fails the first run of each event
        seen[event.id] = seen.get(event.id, 0) + 1
        if event.handler_attempts == 0:
            raise RuntimeError("first run fails")

    with Store(tmp_path / "callbacks.db") as store:
        app = Receiver(
            store, username="listener", password=SECRET, max_body=100_000, handlers={"audit": flaky},
            handler_backoff=0.02,
        )  # fmt: skip
        running = serve(app)
        before = scrape(running.port)
        assert [post(running.port, callback(n)) for n in range(3)] == [200, 200, 200]
        assert post(running.port, callback(0, count=2)) == 200  # a re-send
        assert post(running.port, callback(7, password="wrong")) == 401
        assert post(running.port, b"<not-a-callback/>") == 400  # kept as a dead letter
        assert post(running.port, gzip.compress(callback(8)), **{"Content-Encoding": "gzip"}) == 415
        assert post(running.port, b"", **{"Content-Length": "200000"}) == 413
        wait_until(lambda: store.counts()["handler_queue"] == 0, what="the handler runs")
        after = scrape(running.port)

    # waitress answers an announced body over the limit itself, before the application sees it:
    # that 413 is counted under uvicorn only (docs/production.md).
    oversized = 1 if running.kind == "uvicorn" else 0
    assert delta(after, before, "uws_adapter_callbacks_received_total") == 7 + oversized
    assert delta(after, before, "uws_adapter_callbacks_stored_total") == 3
    assert delta(after, before, "uws_adapter_callbacks_duplicate_total") == 1
    for status in ("401", "400", "415"):
        assert delta(after, before, "uws_adapter_callbacks_refused_total", reason=status) == 1, status
    assert delta(after, before, "uws_adapter_callbacks_refused_total", reason="413") == oversized
    assert delta(after, before, "uws_adapter_dead_letters_total", outcome="kept") == 1
    assert delta(after, before, "uws_adapter_handler_runs_total", handler="audit", outcome="failed") == 3
    assert delta(after, before, "uws_adapter_handler_runs_total", handler="audit", outcome="done") == 3
    assert delta(after, before, "uws_adapter_handler_retries_total", handler="audit") == 3
    if running.kind == "uvicorn":
        # Group commits: 5 writes (3 events, 1 attempt, 1 dead letter) in however many groups.
        assert delta(after, before, "uws_adapter_commit_group_size_sum") == 5
        groups = delta(after, before, "uws_adapter_commit_group_size_count")
        assert 1 <= groups <= 5
        assert delta(after, before, "uws_adapter_commit_seconds_count") == groups


def test_one_group_counts_its_new_events_re_sends_and_dead_letters(tmp_path: Path) -> None:
    # The ASGI receiver counts a group's outcomes at once: five callbacks parked in one loop
    # iteration are one group (two of them re-sends of others in it), with a malformed one (kept as
    # a dead letter, answered 400) beside; the new events reach their handler.
    woken = threading.Event()
    store = Store(tmp_path / "callbacks.db")
    receiver = Receiver(store, username="listener", password=SECRET, handlers={"seen": lambda event: woken.set()})
    app = AsyncReceiver(receiver)
    malformed = callback(9).replace(b"<CallbackCount>1<", b"<CallbackCount>99999999999999999999<")
    bodies = [callback(1), callback(2), callback(3), callback(1, count=2), callback(2, count=2), malformed]

    async def deliver(body: bytes) -> int:
        sent: List[Dict[str, object]] = []
        scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/", "client": ("127.0.0.1", 1),
                 "headers": [(b"content-type", b"text/xml"), (b"content-length", str(len(body)).encode())]}  # fmt: skip

        async def receive() -> Dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Dict[str, object]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return int(sent[0]["status"])  # type: ignore[call-overload]

    async def group() -> List[int]:
        return list(await asyncio.gather(*(deliver(body) for body in bodies)))

    before = parse(receiver.scrape_metrics().body.decode())
    try:
        assert asyncio.run(group()) == [200] * 5 + [400]
        after = parse(receiver.scrape_metrics().body.decode())
        assert woken.wait(10)
    finally:
        receiver.close()
        store.close()
    assert delta(after, before, "uws_adapter_callbacks_stored_total") == 3
    assert delta(after, before, "uws_adapter_callbacks_duplicate_total") == 2
    assert delta(after, before, "uws_adapter_dead_letters_total", outcome="kept") == 1
    assert delta(after, before, "uws_adapter_commit_group_size_count") == 1


def test_queue_depth_and_oldest_age_are_read_from_the_store(tmp_path: Path) -> None:
    clock = ManualClock(5000.0)

    def failing(event: StoredEvent) -> None:
        raise RuntimeError("the downstream system is down")

    with Store(tmp_path / "callbacks.db", clock=clock) as store:
        # A long backoff: with the clock standing still, each run fails once and waits.
        app = Receiver(store, allow_anonymous=True, handlers={"relay": failing}, handler_backoff=100.0)
        running = Serving(app, "waitress")
        try:
            assert [post(running.port, callback(n, password=None)) for n in range(2)] == [200, 200]

            def failed_once() -> bool:
                with sqlite3.connect(tmp_path / "callbacks.db") as db:
                    return db.execute("SELECT min(attempts) FROM handler_queue").fetchone()[0] == 1

            wait_until(failed_once, what="both runs to fail once")
            clock.advance(42.0)
            samples = scrape(running.port)
        finally:
            running.close()
    assert value(samples, "uws_adapter_handler_queue_depth", handler="relay") == 2
    assert value(samples, "uws_adapter_handler_queue_oldest_seconds", handler="relay") == 42.0


def test_health_answers_without_credentials_and_says_nothing_more(
    tmp_path: Path, serve: Callable[..., Serving]
) -> None:
    store = Store(tmp_path / "callbacks.db")
    running = serve(Receiver(store, username="listener", password=SECRET))
    for path in ("/healthz", "/health", "/", "/readyz"):
        status, headers, body = get(running.port, path)
        assert (status, body) == (200, b"ok\n"), path
        shown = body.decode() + " ".join(headers.values())
        assert str(tmp_path) not in shown, path
        assert __version__ not in shown, path
    before = scrape(running.port)
    store.close()  # the store is gone: not ready, still alive, and nothing is acknowledged
    status, headers, body = get(running.port, "/readyz")
    assert (status, body) == (503, b"not ready: store\n")
    assert str(tmp_path) not in body.decode() + " ".join(headers.values())
    assert get(running.port, "/healthz")[0] == 200
    assert post(running.port, callback(1)) == 503
    assert delta(scrape(running.port), before, "uws_adapter_callbacks_refused_total", reason="503") == 1


def test_a_readiness_probe_needs_a_writable_store(tmp_path: Path) -> None:
    with Store(tmp_path / "callbacks.db") as store:
        assert store.ready()
        before = store.counts()
        # Another connection holds the write lock longer than the probe waits: not ready.
        blocker = sqlite3.connect(tmp_path / "callbacks.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            store.lock_timeout = 0.05
            assert not store.ready()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.ready()
        assert store.counts() == before  # the probe's write was rolled back


def _worker_values(folder: Path, metric: str) -> Dict[str, float]:
    """Per worker process (by the pid in the file name): its value of ``metric``."""
    found: Dict[str, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = path.stem.split("_", 1)[1]
        for entry in MmapedDict.read_all_values_from_file(str(path)):  # (key, value, ...) by version
            key, number = entry[0], entry[1]
            if f'"{metric}"' in key:
                found[pid] = found.get(pid, 0.0) + number
    return found


def _holding(parent: int, path: str) -> List[int]:
    """The child processes of ``parent`` that have ``path`` open (a worker that built its receiver)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) != parent:
                continue
            if any(os.readlink(link) == path for link in (entry / "fd").iterdir()):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def test_a_two_worker_uvicorn_receiver_reports_the_sum_of_both(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    env.pop(uws_metrics.MULTIPROC_VARIABLE, None)
    command = [sys.executable, "-m", "uws_adapter", "receiver", "--server", "uvicorn", "--workers", "2",
               "--port", "0", "--db", str(tmp_path / "callbacks.db"), "--allow-anonymous"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])

        def answers() -> bool:
            try:
                return get(port, "/healthz")[0] == 200
            except OSError:
                return False

        wait_until(answers, 30, "the receiver to start")
        # /healthz proves one worker serves: until the other has built its receiver (its store open),
        # the first takes every connection, and on a loaded machine a worker's start outlasted the
        # 4,000 callbacks below (the test failed as if one worker took every connection).
        store = os.path.realpath(tmp_path / "callbacks.db")
        wait_until(lambda: len(_holding(process.pid, store)) == 2, 60, "both workers to open the store")
        folders = list(temp.glob("uws-adapter-metrics-*"))
        assert len(folders) == 1  # made by the CLI for this run
        sent = 0
        failures: List[BaseException] = []

        def send(first: int, count: int) -> None:
            try:
                for n in range(first, first + count):
                    assert post(port, callback(n, password=None)) == 200
            except BaseException as exc:  # said by the test, not lost with its thread (the sum failed instead)
                failures.append(exc)

        # Concurrent connections until both workers have taken some (the kernel decides who accepts).
        while len(_worker_values(folders[0], "uws_adapter_callbacks_received_total")) < 2:
            assert sent < 4000, "one worker took every connection"
            threads = [threading.Thread(target=send, args=(sent + 10 * t, 10)) for t in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == []
            sent += 80
        per_worker = _worker_values(folders[0], "uws_adapter_callbacks_received_total")
        assert sum(per_worker.values()) == sent
        assert all(v > 0 for v in per_worker.values())
        for _ in range(4):  # whichever worker answers the scrape, it reports both
            samples = scrape(port)
            assert value(samples, "uws_adapter_callbacks_received_total") == sent
            assert value(samples, "uws_adapter_callbacks_stored_total") == sent
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert not folders[0].exists()  # removed when the run ended


@pytest.fixture
def legacy() -> Iterator[HttpServer]:
    server = HttpServer(lambda body: (200, "text/xml", b""))
    yield server
    server.close()


LEGACY_SYSTEM = """
import sys
from uws_adapter import Device, UwsClient, ServiceFault, select
client = UwsClient(base_url=sys.argv[1], username="legacy", password="legacy-pw", timeout=(2.0, 5.0))
client.restore(select([Device.parse(text) for text in sys.argv[2:]]))
print("sent")
try:
    client.restore(select(account="9999999999-00001"))
except ServiceFault as fault:
    print(fault.code.rpartition(".")[2])
"""


def bridge_traffic(tmp_path: Path, legacy_url: str) -> str:
    """A bridge between a legacy client and the emulator's REST side: one restore, one fault, the
    callbacks relayed; the bridge's scrape after it."""
    lines = generated_devices(2, state="Suspended")
    with Emulator(devices=lines) as emulator, Store(tmp_path / "bridge.db") as store:
        rest = RestClient(
            base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USER,
            password=PASSWORD, store=store, timeout=(2.0, 5.0),
        )  # fmt: skip
        relay = LegacyRelay(legacy_url, username="legacy-listener", password="listener-secret", timeout=(1.0, 2.0))
        bridge = Bridge(
            rest, store, legacy_users={"legacy": "legacy-pw"}, relay=relay, callback_username="bridge",
            callback_password="bridge-pw", handler_backoff=0.05,
        )  # fmt: skip
        server = WaitressServer(bridge, **bridge.server_options(threads=8))
        try:
            bridge.register(DEFAULT_ACCOUNT, f"{server.url}/callbacks")
            # The legacy system is another process: its client's own metrics are not the bridge's.
            done = subprocess.run(
                [sys.executable, "-c", LEGACY_SYSTEM, f"{server.url}/api/v2", *(str(line.device) for line in lines)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.stdout.split() == ["sent", "AccountNotFound"], done.stderr
            wait_until(lambda: store.counts()["events"] == 2 and store.counts()["handler_queue"] == 0)
            return get(server.port, "/metrics")[2].decode()
        finally:
            server.close()
            bridge.close()


def test_the_bridge_reports_its_rest_client_and_its_relay(tmp_path: Path, legacy: HttpServer) -> None:
    before = parse((uws_metrics.scrape() or b"").decode())
    after = parse(bridge_traffic(tmp_path, legacy.url))
    rest = {"api": "rest", "action": "Restore"}
    assert delta(after, before, "uws_adapter_provisioning_requests_total", **rest, outcome="accepted") == 1
    assert delta(after, before, "uws_adapter_provisioning_requests_total", **rest, outcome="fault") == 1
    assert (
        delta(after, before, "uws_adapter_provisioning_faults_total", api="rest", code="REQUEST_FAILED.AccountNotFound")
        == 1
    )
    assert delta(after, before, "uws_adapter_callbacks_stored_total") == 2
    assert delta(after, before, "uws_adapter_handler_runs_total", handler="legacy-relay", outcome="done") == 2
    assert delta(after, before, "uws_adapter_bridge_soap_calls_total", kind="logins") == 1
    assert delta(after, before, "uws_adapter_bridge_soap_calls_total", kind="requests") >= 3


def families(text: str) -> Dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_the_readme_sample_scrape_is_what_a_bridge_serves(tmp_path: Path, legacy: HttpServer) -> None:
    """tests/data/metrics-sample.txt (the sample in docs/production.md) was written by this scenario; every
    metric it shows, and only those, comes out of a bridge after the same traffic. After adding a
    metric, rewrite it in a fresh process (so that only this scenario's values show) with
    ``UWS_WRITE_METRICS_SAMPLE=1 pytest tests/test_metrics.py -k readme_sample``."""
    served = bridge_traffic(tmp_path, legacy.url)
    if os.environ.get("UWS_WRITE_METRICS_SAMPLE") == "1":
        (DATA / "metrics-sample.txt").write_text(served)
    sample = (DATA / "metrics-sample.txt").read_text()
    assert families(sample) == families(served)
    shown = parse(sample)
    assert set(shown) <= set(parse(served))


def test_callbacks_received_from_many_threads_are_each_counted_once_by_the_folds() -> None:
    """callback_received is one next() on a counter, added to prometheus_client's counter by the
    folds (a group's counts, a refusal, a scrape): every call is counted once, whatever the folds
    running meanwhile in other threads."""
    name = "uws_adapter_callbacks_received_total"
    before = value(parse(uws_metrics.scrape().decode()), name)  # type: ignore[union-attr]
    go = threading.Event()

    def receive() -> None:
        go.wait()
        for _ in range(5000):
            uws_metrics.callback_received()

    def fold() -> None:
        go.wait()
        for _ in range(300):
            uws_metrics.callbacks_committed(0, 0)

    threads = [threading.Thread(target=receive) for _ in range(4)] + [threading.Thread(target=fold) for _ in range(2)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join()
    after = value(parse(uws_metrics.scrape().decode()), name)  # type: ignore[union-attr]
    assert after - before == 20_000


WITHOUT_PROMETHEUS = """
import sys
sys.modules["prometheus_client"] = None  # what an installation without the metrics extra has
from uws_adapter import metrics
from uws_adapter.receiver.app import Receiver
from uws_adapter.store.sqlite import Store
metrics.callback_received(); metrics.commit_group(3, 0.01); metrics.provisioning_fault("rest", "X")
assert metrics.scrape() is None and not metrics.available()
with metrics.multiprocess_dir() as folder:
    assert folder is None
with Store(sys.argv[1]) as store:
    app = Receiver(store, allow_anonymous=True)
    answer = app.screen("GET", "/metrics", None, None, None).answer()
    assert answer.status == 404 and b"pip install '.[metrics]'" in answer.body, answer
    assert app.screen("GET", "/readyz", None, None, None).answer().status == 200
print("no-ops")
"""


def test_without_prometheus_client_the_functions_do_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PROMETHEUS, str(tmp_path / "c.db")], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "no-ops", done.stderr


def test_fault_codes_from_a_server_cannot_grow_the_labels_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uws_metrics, "_fault_codes", {})
    assert uws_metrics._fault_label("REQUEST_FAILED.AccountNotFound") == "REQUEST_FAILED.AccountNotFound"
    assert uws_metrics._fault_label("<script>") == "other"
    for n in range(uws_metrics.MAX_FAULT_CODES + 5):
        uws_metrics._fault_label(f"Made.Up{n}")
    assert uws_metrics._fault_label("Made.Up.Late") == "other"


def test_a_screen_verdict_kept_for_a_request_shape_still_counts_every_callback(tmp_path: Path) -> None:
    # Receiver.screen keeps the verdicts of the POSTs it let through, by their request line and
    # headers: each POST is still counted as received, a refusal is never kept (counted each time),
    # and what is kept stays bounded.
    from uws_adapter.receiver.app import _SCREENED_KEPT

    with Store(tmp_path / "callbacks.db") as store:
        receiver = Receiver(store, username="listener", password=SECRET)
        before = parse(uws_metrics.scrape().decode())  # type: ignore[union-attr]
        xml = ("POST", "/", "1200", None, "text/xml; charset=utf-8")
        assert [receiver.screen(*xml) for _ in range(3)] == [(1200, "text/xml")] * 3
        png = ("POST", "/", "10", None, "image/png")
        assert [receiver.screen(*png).status for _ in range(2)] == [415, 415]  # type: ignore[union-attr]
        assert receiver.screen("POST", "/", "1201", None, "text/xml; charset=utf-8") == (1201, "text/xml")
        after = parse(uws_metrics.scrape().decode())  # type: ignore[union-attr]
        for length in range(2 * _SCREENED_KEPT):
            receiver.screen("POST", "/", str(length), None, "application/json")
        assert 0 < len(receiver._screened) <= _SCREENED_KEPT
    assert delta(after, before, "uws_adapter_callbacks_received_total") == 6
    assert delta(after, before, "uws_adapter_callbacks_refused_total", reason="415") == 2
