"""The relay under hostile listeners (issue 17 item 8): every relay sent through the engine under
a deadline well inside its lease (no redirect followed, the answer capped); a lane of workers per
handler, so that a listener trickling its answer holds back only its own relays; one run claimed
at a time, so that two bridges on one store with a short lease and slow answers never relay a
callback twice, and after a kill -9 only the runs that were in flight wait for their lease."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, Tuple

import pytest
from servers import HttpServer, SilentServer, wait_until
from test_bridge import LegacyListener

from uws_adapter.bridge.app import LegacyRelay
from uws_adapter.callbacks.uws_xml import parse_callback
from uws_adapter.errors import InputError, OutcomeUnknown, RelayRefused
from uws_adapter.model.callbacks import CallbackRequest, ReportedDevice
from uws_adapter.provisioning.options import RELAY_OPTIONS
from uws_adapter.receiver.app import Receiver
from uws_adapter.store.sqlite import Store, StoredEvent
from uws_adapter.store.sqlite_writes import CallbackWork

HERE = Path(__file__).parent


def callback(n: int) -> CallbackRequest:
    return CallbackRequest(
        request_id=f"req-{n}", devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService",
        action="Suspend", status="Success",
    )  # fmt: skip


def event(n: int) -> StoredEvent:
    return StoredEvent(n, callback(n), 1, False, 0.0)


class Trickler:
    """A listener that reads the request, then answers one byte a second, for ever."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/listener"
        self.taken = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.taken += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
                    if self._stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    server = Trickler()
    yield server
    server.close()


def test_a_relay_to_a_trickling_listener_ends_at_its_deadline(trickler: Trickler) -> None:
    relay = LegacyRelay(trickler.url, options=RELAY_OPTIONS.with_(deadline=1.0))
    # The deadline's watchdog or the read timeout it bounds, whichever a loaded machine fires first.
    with pytest.raises(OutcomeUnknown, match=r"1 s deadline|ReadTimeout"):
        relay(event(1))


def test_a_relay_follows_no_redirect_and_caps_the_answer() -> None:
    target = LegacyListener()
    redirecting = HttpServer(lambda _: (307, "text/plain", b"", {"Location": target.url}))
    huge = HttpServer(lambda _: (200, "text/xml", b"<a>" + b"x" * (RELAY_OPTIONS.max_answer_bytes + 10) + b"</a>"))
    try:
        with pytest.raises(RelayRefused, match="HTTP 307"):
            LegacyRelay(redirecting.url)(event(1))
        assert target.answers == []
        with pytest.raises(OutcomeUnknown, match="byte limit"):
            LegacyRelay(huge.url)(event(2))
    finally:
        for server in (target, redirecting, huge):
            server.close()


def test_a_relay_over_its_limits_names_the_listener_not_the_clients_settings(trickler: Trickler) -> None:
    # The relay's bounds are not the client's: raising UWS_ADAPTER_DEADLINE or --max-answer-bytes
    # changes nothing for it, so its errors (kept as the handler's last error) do not say to.
    huge = HttpServer(lambda _: (200, "text/xml", b"<a>" + b"x" * (RELAY_OPTIONS.max_answer_bytes + 10) + b"</a>"))
    try:
        for url, options in ((huge.url, RELAY_OPTIONS), (trickler.url, RELAY_OPTIONS.with_(deadline=1.0))):
            with pytest.raises(OutcomeUnknown) as caught:
                LegacyRelay(url, options=options)(event(1))
            said = str(caught.value)
            if "ReadTimeout" in said:  # a loaded machine's read timeout fired before the deadline
                continue
            assert "UWS_ADAPTER_" not in said
            assert "--deadline" not in said
            assert "--max-answer-bytes" not in said
            assert "legacy listener" in said
    finally:
        huge.close()


def test_a_lease_not_well_above_the_relay_deadline_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        with pytest.raises(InputError, match=r"handler_lease: 40 s .* 30 s .* at least 60 s \(--handler-lease\)"):
            Receiver(
                store, allow_anonymous=True, handlers={"relay": LegacyRelay("http://127.0.0.1:1/")}, handler_lease=40
            )
    finally:
        store.close()


def test_a_trickling_listener_does_not_hold_back_relays_to_another(tmp_path: Path, trickler: Trickler) -> None:
    fast = LegacyListener()
    store = Store(tmp_path / "c.db")
    receiver = Receiver(
        store, allow_anonymous=True, handler_backoff=0.05,
        handlers={"slow": LegacyRelay(trickler.url), "fast": LegacyRelay(fast.url)},
    )  # fmt: skip
    try:
        for n in range(12):
            store.write(CallbackWork(callback(n), ("slow", "fast")))
        receiver.wake_handlers()
        wait_until(lambda: len(fast.acknowledged()) == 12, what="the fast listener's relays")
        assert sorted(cb.request_id for cb in fast.acknowledged()) == sorted(f"req-{n}" for n in range(12))
        assert 1 <= trickler.taken <= 4  # its own lane only, the rest of its runs wait their turn
    finally:
        receiver.close()
        store.close()
        fast.close()


def test_two_bridges_on_one_store_with_a_short_lease_and_slow_answers_relay_each_callback_once(
    tmp_path: Path,
) -> None:
    def slowly(body: bytes) -> Tuple[int, str, bytes]:
        time.sleep(0.5)  # the listener's slowness, the condition under test
        return 200, "text/xml", b""

    slow = HttpServer(slowly)
    stores = [Store(tmp_path / "c.db"), Store(tmp_path / "c.db")]
    options = RELAY_OPTIONS.with_(deadline=1.0, timeout=(1.0, 1.0))
    receivers = [
        Receiver(
            store,
            allow_anonymous=True,
            handler_backoff=0.05,
            handler_lease=2.0,
            handlers={"relay": LegacyRelay(slow.url, options=options)},
        )
        for store in stores
    ]
    try:
        for n in range(25):
            stores[n % 2].write(CallbackWork(callback(n), ("relay",)))
        for receiver in receivers:
            receiver.wake_handlers()
        wait_until(lambda: stores[0].counts()["handler_queue"] == 0, timeout=60, what="every relay done")
        relayed = Counter(parse_callback(body).request_id for body in slow.bodies)
        assert sorted(relayed) == sorted(f"req-{n}" for n in range(25))
        assert max(relayed.values()) == 1, [rid for rid, times in relayed.items() if times > 1]
    finally:
        for receiver in receivers:
            receiver.close()
        for store in stores:
            store.close()
        slow.close()


RELAYING_PROCESS = """
import sys, threading
from uws_adapter.bridge.app import LegacyRelay
from uws_adapter.receiver.app import Receiver
from uws_adapter.store.sqlite import Store
store = Store(sys.argv[1])
Receiver(store, allow_anonymous=True, handler_backoff=0.05, handler_lease=120, handler_workers=2,
         handlers={"relay": LegacyRelay(sys.argv[2])})
print("ready", flush=True)
threading.Event().wait()
"""


def test_after_a_kill_9_only_the_runs_in_flight_wait_for_their_lease(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = Store(db)
    for n in range(10):
        store.write(CallbackWork(callback(n), ("relay",)))
    silent = SilentServer()
    process = subprocess.Popen(
        [sys.executable, "-c", RELAYING_PROCESS, str(db), silent.url], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    listener = LegacyListener()
    receiver = None
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        wait_until(lambda: silent.requests == 2, what="two relays in flight to the silent listener")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        receiver = Receiver(
            store, allow_anonymous=True, handler_backoff=0.05, handlers={"relay": LegacyRelay(listener.url)}
        )
        receiver.wake_handlers()
        # The 8 runs the killed process never claimed are relayed now, not in 120 s.
        wait_until(lambda: len(listener.acknowledged()) == 8, what="the unclaimed runs relayed")
        wait_until(lambda: store.counts()["handler_queue"] == 2, what="the 8 relays recorded")
        assert silent.requests == 2  # the two in flight wait for their lease: claimed, not run again
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        if receiver is not None:
            receiver.close()
        store.close()
        listener.close()
        silent.close()
