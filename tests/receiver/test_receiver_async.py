"""The asyncio receiver on a real uvicorn server: concurrent callbacks share commits, and a failed
commit is answered 503 (the carrier sends again) without losing the next ones. The rest of its
protocol runs in test_receiver.py, against both servers."""

from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import pytest
from servers import AsgiServer, wait_until

from uws_adapter import CallbackRequest, ReportedDevice, render_callback
from uws_adapter.receiver.app import Receiver
from uws_adapter.receiver.asgi import AsyncReceiver, server_config
from uws_adapter.store.interfaces import Outcome, Write
from uws_adapter.store.sqlite import Store, StoreError


class CountingStore(Store):
    """A real store that counts its group commits and can be told to fail the next one."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.groups: List[int] = []
        self.fail_next = False

    def commit_group(self, writes: Sequence[Write]) -> List[Outcome]:
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full (injected)")
        self.groups.append(len(writes))
        return super().commit_group(writes)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Tuple[CountingStore, int]]:
    store = CountingStore(tmp_path / "callbacks.db")
    receiver = Receiver(store, allow_anonymous=True)
    app = AsyncReceiver(receiver)
    server = AsgiServer(app, **server_config(app))
    yield store, server.port
    server.close()
    receiver.close()
    store.close()


def post(port: int, n: int) -> int:
    body = render_callback(
        CallbackRequest(
            "r-1", (ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService", action="Suspend",
            status="Success", callback_count=1,
        )
    )  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
        return connection.getresponse().status
    finally:
        connection.close()


LOAD = """
import http.client, sys, threading
from uws_adapter import CallbackRequest, ReportedDevice, render_callback
port, ok, lock = int(sys.argv[1]), [0], threading.Lock()
def lane(numbers):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n in numbers:
        body = render_callback(CallbackRequest("r-1", (ReportedDevice("IMEI", str(350000000000000 + n)),),
                               service="CarrierService", action="Suspend", status="Success", callback_count=1))
        connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
        response = connection.getresponse()
        response.read()
        with lock:
            ok[0] += response.status == 200
lanes = [threading.Thread(target=lane, args=(range(i, 400, 32),)) for i in range(32)]
[t.start() for t in lanes]
[t.join() for t in lanes]
print(ok[0])
"""


def test_concurrent_callbacks_share_commits(served: Tuple[CountingStore, int]) -> None:
    store, port = served
    # The clients run in another process: in this one they would take turns with the server on the GIL.
    result = subprocess.run([sys.executable, "-c", LOAD, str(port)], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["400"], result.stderr
    assert sum(store.groups) == 400
    assert len(store.groups) < 400  # some commits carried several callbacks
    assert store.counts()["events"] == 400


def test_a_failed_commit_is_503_and_the_next_callbacks_are_stored(served: Tuple[CountingStore, int]) -> None:
    store, port = served
    store.fail_next = True
    assert post(port, 1) == 503
    assert store.counts()["events"] == 0
    assert post(port, 1) == 200  # the carrier's re-send
    assert post(port, 2) == 200
    assert store.counts()["events"] == 2


def test_the_asgi_factory_under_a_users_own_uvicorn_closes_its_store_at_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uws_adapter.receiver.asgi import create_app

    db = tmp_path / "own.db"
    monkeypatch.setenv("UWS_CALLBACK_DB", str(db))
    monkeypatch.setenv("UWS_CALLBACK_ALLOW_ANONYMOUS", "1")
    server = AsgiServer(create_app(), lifespan="on", log_level="warning")
    try:
        # The store is open in WAL mode while it serves. Waited for: its writer thread opens its own
        # connection when it first runs, and under load the setup's connection may be closed first
        # (SQLite removes the WAL with the last connection).
        wait_until(lambda: db.with_name("own.db-wal").exists(), 10, "the store's WAL")
    finally:
        server.close()
    # uvicorn's shutdown closed the handlers, then the store: SQLite removed its WAL files.
    assert not db.with_name("own.db-wal").exists()
    assert not db.with_name("own.db-shm").exists()
