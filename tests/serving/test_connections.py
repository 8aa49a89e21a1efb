"""Bounded connections, against the services started as the CLI starts them (``python -m uws_adapter
receiver|bridge``, as processes): idle and slow clients up to the connection limit never keep a
callback out; slow and idle connections are closed at their deadlines; at the limit idle, then slow
connections make room for a newcomer, which is otherwise refused at once, never left hanging; a
request smuggled behind Content-Length + Transfer-Encoding is refused and its connection closed."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
from servers import closed_port, read_answer

from uws_adapter import CallbackRequest, Emulator, ReportedDevice, render_callback
from uws_adapter.errors import InputError
from uws_adapter.serving.limits import ConnectionLimits
from uws_adapter.store.sqlite import Store

USERNAME, SECRET = "listener", "Conn-Test-S3cret"

SERVICES: Dict[str, List[str]] = {
    "waitress": ["receiver", "--server", "waitress", "--threads", "4"],
    "uvicorn-1-worker": ["receiver", "--server", "uvicorn", "--workers", "1"],
    "uvicorn-2-workers": ["receiver", "--server", "uvicorn", "--workers", "2"],
    "bridge": ["bridge", "--legacy-login", "legacy:legacy-pw", "--threads", "4"],
}
#: A service kind as a test parameter whose tests share one service of that kind (``shared``): they
#: run on one pytest-xdist worker, so each kind starts once per run instead of once per test.
SHARED = [pytest.param(name, marks=pytest.mark.xdist_group(f"serving-{name}")) for name in SERVICES]
#: Services that run one process: there the connection limit is the whole server's.
SINGLE_PROCESS = ["waitress", "uvicorn-1-worker", "bridge"]
#: Every wait on a condition is bounded by this; nothing asserts on how long it took.
PATIENCE = 20.0


class Service:
    """A receiver or bridge process on loopback, its store, its log files."""

    def __init__(self, tmp_path: Path, name: str, **limits: float) -> None:
        self.db = tmp_path / f"{name}.db"
        options = [f"--{key.replace('_', '-')}={value}" for key, value in limits.items()]
        env = {key: value for key, value in os.environ.items() if not key.startswith(("UWS_", "THINGSPACE_"))}
        env.update(
            UWS_CALLBACK_USERNAME=USERNAME, UWS_CALLBACK_PASSWORD=SECRET,
            # The bridge's REST side is never called here (no --register): a closed port.
            THINGSPACE_CLIENT_ID="id", THINGSPACE_CLIENT_SECRET="secret", UWS_USERNAME="u", UWS_PASSWORD="p",
            UWS_ADAPTER_REST_URL=f"http://127.0.0.1:{closed_port()}/api",
        )  # fmt: skip
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uws_adapter", *SERVICES[name], "--port", "0", "--db", str(self.db), *options],
                stdout=out, stderr=err, env=env, start_new_session=True,
            )  # fmt: skip
        self.port = self._announced_port()
        until(lambda: get_health(self.port) == 200, "the service answers /health")

    def _announced_port(self) -> int:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            first = self.out.read_text().partition("\n")
            if first[1]:
                # "... on http://127.0.0.1:PORT/ ..." or "bridge: UWS at http://127.0.0.1:PORT/api/v2, ..."
                address = first[0].partition("http://127.0.0.1:")[2]
                return int(address.partition("/")[0])
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no announcement; stderr: {self.err.read_text()[-2000:]}")

    def stored(self) -> int:
        with Store(self.db) as store:
            return len(store.events())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(15)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: List[Service] = []

    def make(name: str, **limits: float) -> Service:
        service = Service(tmp_path, name, **limits)
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Service]]:
    """Services with the default limits, one per kind for the run (started again if one died): the
    tests that use them only attack and send, count what they add to the store, and number their
    callbacks with ``fresh()`` so that none is a re-send of another test's."""
    folder = tmp_path_factory.mktemp("shared-services")
    services: Dict[str, Service] = {}

    def get(name: str) -> Service:
        if name not in services or services[name].process.poll() is not None:
            services[name] = Service(folder, name)
        return services[name]

    yield get
    for service in services.values():
        service.stop()


_NUMBERS = itertools.count(10_000)


def fresh(count: int = 1) -> int:
    """The first of ``count`` callback numbers no other test of this worker has used."""
    first = next(_NUMBERS)
    for _ in range(count - 1):
        next(_NUMBERS)
    return first


def until(condition: Callable[[], object], what: str, patience: float = PATIENCE) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {patience} s: {what}")


def get_health(port: int) -> Optional[int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def callback_body(n: int) -> bytes:
    return render_callback(
        CallbackRequest(
            f"conn-{n}",
            devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),),
            username=USERNAME,
            password=SECRET,
            service="CarrierService",
            action="Suspend",
            status="Success",
            callback_count=1,
        )
    )


def post_callback(port: int, n: int) -> Optional[int]:
    """One carrier attempt: the status, or None when the connection failed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/callbacks", body=callback_body(n), headers={"Content-Type": "text/xml"})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_raw(port: int, data: bytes) -> Tuple[bytes, bool]:
    """``data`` sent on a new connection as it is, and :func:`read_answer` of what comes back."""
    sock = connect(port)
    try:
        sock.settimeout(5)
        sock.sendall(data)
        return read_answer(sock)
    finally:
        sock.close()


def idle_client(port: int) -> socket.socket:
    """A keep-alive connection after one valid GET /health, then silent."""
    sock = connect(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: receiver\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk, "closed before answering /health"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.lower().partition(b"content-length:")[2].split(b"\r\n")[0])
    body = head.partition(b"\r\n\r\n")[2]
    while len(body) < length:
        body += sock.recv(65536)
    return sock


SLOW_HEADERS = b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\nX-Slow: " + b"a" * 10_000
SLOW_BODY_HEAD = (
    b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n"
)


class Trickler:
    """Sends one byte a second (every ``interval``) on each of its connections: slow headers or
    slow bodies that never complete. Stops on close; counts connections the server closed."""

    def __init__(self, interval: float = 1.0) -> None:
        self.sockets: List[socket.socket] = []
        self.closed: List[socket.socket] = []
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, sock: socket.socket, prefix: bytes = b"") -> socket.socket:
        if prefix:
            sock.sendall(prefix)
        with self._lock:
            self.sockets.append(sock)
        return sock

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                for sock in list(self.sockets):
                    try:
                        sock.send(b"a")
                    except OSError:  # the server closed it
                        self.sockets.remove(sock)
                        self.closed.append(sock)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets + self.closed:
            sock.close()


def slow_header_client(port: int, trickler: Trickler) -> socket.socket:
    return trickler.add(connect(port), SLOW_HEADERS[:40])


def slow_body_client(port: int, trickler: Trickler) -> socket.socket:
    return trickler.add(connect(port), SLOW_BODY_HEAD)


@pytest.mark.parametrize("name", list(SERVICES))
def test_idle_and_slow_clients_up_to_the_limit_never_keep_a_callback_out(
    start: Callable[..., Service], name: str
) -> None:
    limit, slow = 24, 4
    # Deadlines far beyond the wait: the callback must get in while every slow client is still held.
    service: Service = start(name, max_connections=limit, idle_timeout=120, header_timeout=120, body_timeout=120)
    idle = [idle_client(service.port) for _ in range(limit)]
    trickler = Trickler()
    try:
        for _ in range(slow):
            slow_header_client(service.port, trickler)
            slow_body_client(service.port, trickler)
        began = time.monotonic()
        assert post_callback(service.port, 1) == 200
        acknowledged = time.monotonic() - began
        until(lambda: service.stored() == 1, "the callback is in the store")
        print(f"\n{name}: {limit} idle + {2 * slow} slow connections, callback acknowledged in {acknowledged:.3f} s")
        assert not trickler.closed, "slow clients were closed before their deadline"
    finally:
        trickler.close()
        for sock in idle:
            sock.close()


@pytest.mark.parametrize("name", list(SERVICES))
def test_idle_silent_and_slow_connections_are_closed_at_their_deadlines(
    start: Callable[..., Service], name: str
) -> None:
    service: Service = start(name, max_connections=50, idle_timeout=1, header_timeout=2, body_timeout=2)
    idle, silent = idle_client(service.port), connect(service.port)
    trickler = Trickler(interval=0.5)
    try:
        slow_headers = slow_header_client(service.port, trickler)
        slow_body = slow_body_client(service.port, trickler)
        until(lambda: len(trickler.closed) == 2, "both slow clients are cut off")
        for sock in (idle, silent):
            assert read_answer(sock) == (b"", True)  # closed without a word: no request was under way
        for sock in (slow_headers, slow_body):
            sock.settimeout(5)
            answer, closed = read_answer(sock)
            # The 408 may be lost to a reset when the server closes with our bytes unread; the close never is.
            assert closed
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
        assert post_callback(service.port, 2) == 200
        until(lambda: service.stored() == 1, "the callback is in the store")
    finally:
        trickler.close()
        idle.close()
        silent.close()


def attempt(port: int, n: int) -> bytes:
    """One carrier attempt over a raw socket: what the server said before closing (b"" for a bare
    close). A newcomer at the limit must be answered or refused, never left hanging."""
    body = callback_body(n)
    sock = connect(port)
    with contextlib.suppress(OSError):  # refused and closed before our request was written
        sock.sendall(
            b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
    answer, closed = read_answer(sock)
    sock.close()
    assert closed, f"left hanging at the limit: {answer!r}"
    return answer


@pytest.mark.parametrize("name", SINGLE_PROCESS)
def test_at_the_limit_slow_clients_give_way_and_no_newcomer_hangs(start: Callable[..., Service], name: str) -> None:
    limit = 6
    service: Service = start(name, max_connections=limit, idle_timeout=120, header_timeout=120, body_timeout=120)
    trickler = Trickler()
    outcomes: List[bytes] = []
    try:
        for _ in range(limit // 2):
            slow_header_client(service.port, trickler)
            slow_body_client(service.port, trickler)

        # A carrier retrying: refused (503, or a bare close) while every slow client is younger than
        # the eviction grace, then in, at the expense of the oldest slow client.
        def carrier_attempt() -> bool:
            outcomes.append(attempt(service.port, 5)[:12])
            return outcomes[-1] == b"HTTP/1.1 200"

        until(carrier_attempt, "a callback got in")
        until(lambda: service.stored() == 1, "the callback is in the store")
        assert set(outcomes) <= {b"HTTP/1.1 200", b"HTTP/1.1 503", b""}, outcomes
        until(lambda: len(trickler.closed) >= 1, "the oldest slow client was closed to make room")
        tally = {outcome.decode() or "closed": outcomes.count(outcome) for outcome in set(outcomes)}
        print(f"\n{name}: attempts at the limit while {limit} slow clients were held: {tally}")
    finally:
        trickler.close()


@pytest.mark.parametrize("name", SINGLE_PROCESS)
def test_at_the_limit_an_idle_connection_makes_room_for_a_callback(start: Callable[..., Service], name: str) -> None:
    limit = 6
    service: Service = start(name, max_connections=limit, idle_timeout=120, header_timeout=120, body_timeout=120)
    idle = [idle_client(service.port) for _ in range(limit)]
    try:
        assert post_callback(service.port, 3) == 200
        until(lambda: service.stored() == 1, "the callback is in the store")
        # One idle connection, and only one, made room. Which is the longest idle depends on when the
        # server finished writing each /health answer, which a loaded machine can reorder.
        readable, _, _ = select.select(idle, [], [], 5)
        closed = []
        for sock in readable:
            sock.settimeout(1)
            closed.append(read_answer(sock))
        assert closed == [(b"", True)]
    finally:
        for sock in idle:
            sock.close()


SMUGGLING = {
    # RFC 9112 6.1: answer (or refuse) a request with both, then close the connection.
    "length-and-chunked": b"HTTP/1.1\r\nContent-Length: %d\r\nTransfer-Encoding: chunked",
    "chunked-and-length": b"HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: %d",
    # A coding we do not take, beside a length: 400 too (waitress answered 501, uvicorn 400).
    "gzip-chunked-and-length": b"HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: %d",
    # HTTP/1.0 has no Transfer-Encoding: its framing is faulty whatever the Content-Length.
    "http-1.0-keep-alive-chunked": b"HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: %d\r\n"
    b"Transfer-Encoding: chunked",
}


@pytest.mark.parametrize("name", SHARED)
def test_a_request_smuggled_behind_content_length_and_transfer_encoding_is_refused(
    shared: Callable[[str], Service], name: str
) -> None:
    service = shared(name)  # one service for every framing: each is tried on its own connection
    stored = service.stored()
    body = callback_body(fresh())
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    for framing, head_line in SMUGGLING.items():
        smuggler = connect(service.port)
        smuggler.settimeout(5)
        smuggler.sendall(
            b"POST /callbacks "
            + head_line % len(chunked)
            + b"\r\nHost: receiver\r\nContent-Type: text/xml\r\n\r\n"
            + chunked
            + b"GET /smuggled HTTP/1.1\r\nHost: receiver\r\n\r\n"
        )
        answer, closed = read_answer(smuggler)
        smuggler.close()
        assert closed, framing
        status_line = answer.partition(b"\r\n")[0]
        assert status_line in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.0 400 Bad Request"), (framing, answer)
        head, _, rest = answer.partition(b"\r\n\r\n")
        length = int(head.lower().partition(b"content-length:")[2].partition(b"\r\n")[0])
        assert rest[length:] == b"", (framing, answer)  # nothing answered for what was smuggled behind it
        assert b"keep-alive" not in head.lower(), framing
    assert service.stored() == stored


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize(
    "target", [b"http://elsewhere.example/callbacks", b"HTTP://127.0.0.1/callbacks", b"127.0.0.1:80"]
)
def test_a_target_not_in_origin_form_is_refused_and_nothing_stored(
    shared: Callable[[str], Service], name: str, target: bytes
) -> None:
    # uvicorn's scope holds only the path of an absolute-form target (httptools parses it away):
    # the receiver there stored, and acknowledged, a callback that waitress refused with 400.
    service = shared(name)
    stored, body = service.stored(), callback_body(fresh())
    answer, _ = send_raw(
        service.port,
        b"POST "
        + target
        + b" HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\nConnection: close\r\n"
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    assert answer.startswith((b"HTTP/1.1 400 Bad Request", b"HTTP/1.0 400 Bad Request")), answer[:300]
    if target.lower().startswith(b"http"):  # httptools refuses an authority-form POST itself
        assert b"is not a path starting with one /" in answer, answer[:300]
    assert service.stored() == stored


@pytest.mark.parametrize("name", list(SERVICES))
def test_pipelined_requests_are_all_answered_within_the_deadlines(start: Callable[..., Service], name: str) -> None:
    service: Service = start(name, idle_timeout=1, header_timeout=2, body_timeout=2)
    body = callback_body(6)
    post = b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
    answer, closed = send_raw(  # then closed once idle
        service.port,
        post % (len(body), body) + b"GET /health HTTP/1.1\r\nHost: receiver\r\n\r\n" + post % (len(body), body),
    )
    assert closed
    assert answer.count(b"HTTP/1.1 200") == 3, answer
    assert service.stored() == 1


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize(
    "broken",
    [b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
     b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n"],
    ids=["not-http", "header-line-too-long", "broken-chunked-body"],
)  # fmt: skip
def test_a_request_refused_behind_pipelined_callbacks_is_answered_after_them(
    shared: Callable[[str], Service], name: str, broken: bytes
) -> None:
    # uvicorn wrote its refusal (400, 431) as soon as it read the broken request and closed: the
    # callbacks before it were stored, and logged as answered 200, but their answers were dropped,
    # and a client reading answers in order took the refusal for its first callback's answer.
    service = shared(name)
    stored, first = service.stored(), fresh(2)
    post = b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
    callbacks = [callback_body(first + n) for n in range(2)]
    answer, closed = send_raw(service.port, b"".join(post % (len(body), body) for body in callbacks) + broken)
    assert closed
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)  # an answer follows the body before it
    assert statuses[:2] == [b"200", b"200"], answer[-600:]
    assert statuses[2:] in ([b"400"], [b"431"]), answer[-600:]
    assert service.stored() == stored + 2


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_connections", 0), ("idle_timeout", 0), ("header_timeout", -1), ("body_timeout", 7200)],
    ids=["no-connections", "no-idle-time", "negative-header-time", "two-hour-body"],
)
def test_limits_out_of_range_are_refused_naming_the_option(option: str, value: float) -> None:
    with pytest.raises(InputError, match="--" + option.replace("_", "-")):
        ConnectionLimits(**{option: value})  # type: ignore[arg-type]


def test_a_limit_beyond_the_open_file_hard_limit_refuses_to_start(tmp_path: Path) -> None:
    def low_hard_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    finished = subprocess.run(
        [sys.executable, "-m", "uws_adapter", "receiver", "--server", "waitress", "--port", "0",
         "--db", str(tmp_path / "c.db"), "--max-connections", "1000"],
        env={**os.environ, "UWS_CALLBACK_USERNAME": USERNAME, "UWS_CALLBACK_PASSWORD": SECRET},
        preexec_fn=low_hard_limit, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert finished.returncode != 0
    assert "--max-connections" in finished.stderr
    assert "ulimit -Hn" in finished.stderr


def test_a_tls_handshake_on_a_waitress_port_is_answered_400_at_once() -> None:
    # A ClientHello's first bytes: a handshake record (0x16) of TLS 1.0's record version.
    with Emulator() as emulator:
        host, port = emulator.root_url.rpartition("/")[2].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            answer, closed = read_answer(sock)
        assert closed
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"this port speaks plain HTTP, not TLS: use an http:// URL" in answer
        assert requests.get(emulator.root_url + "/api/v2/CarrierService.svc?wsdl", timeout=5).status_code == 200
