"""Clients against a hostile loopback server: the deadline bounds a whole exchange however slowly
the answer trickles, the size cap bounds the answer after decompression while it is read, and no
password, token or client secret shows in anything the clients expose.

Limits are tiny (a fraction of a second, 64 KiB), so each test is quick; the servers are bounded
too, so that a client that failed to stop would fail its test instead of hanging it."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from typing import Any, Callable, Iterator, List, Optional

import pytest
import requests
from conftest import client_for, rest_client_for

from uws_adapter import (
    Device,
    OutcomeUnknown,
    Provisioner,
    RestClient,
    Suspend,
    TransportError,
    UwsClient,
    load_settings,
    select,
)
from uws_adapter.provisioning.sent import SentRequest, redact_xml
from uws_adapter.provisioning.transport import DeadlineAdapter
from uws_adapter.soap.service import change_response, login_response
from uws_adapter.uws.envelope import build_envelope

CAP = 64 * 1024
DEADLINE = 0.4
#: Per read: longer than any pause of the servers below, so that only the deadline can end the reads.
PATIENT = (1.0, 2.0)
DEVICE = Device.of("ESN", "09611822299")

Behaviour = Callable[[socket.socket, threading.Event], None]


class HostileServer:
    """A raw-socket HTTP server on 127.0.0.1: reads each request, then lets ``behaviour`` answer
    it (slowly, hugely, endlessly...). It counts requests and stops every connection on close."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: List[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)  # bounded: a client that stops reading cannot hold this thread
        try:
            while _read_request(conn):
                with self._lock:
                    self.requests += 1
                self.behaviour(conn, self._stop)
        except OSError:
            pass  # the client hung up: what these tests want
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for conn in self._conns:
                conn.close()
        self._sock.close()


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def _head(*headers: str) -> bytes:
    return ("HTTP/1.1 200 OK\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def trickled_body(conn: socket.socket, stop: threading.Event) -> None:
    """A byte every 50 ms: each read well inside the timeout, the whole far beyond the deadline."""
    conn.sendall(_head("Content-Type: text/xml", "Content-Length: 1000"))
    for _ in range(200):  # 10 s at most
        if stop.wait(0.05):
            return
        conn.sendall(b" ")


def trickled_headers(conn: socket.socket, stop: threading.Event) -> None:
    """The status line, then an endless header a byte at a time."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(200):
        if stop.wait(0.05):
            return
        conn.sendall(b"a")


def slow_endless_chunks(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_head("Content-Type: application/json", "Transfer-Encoding: chunked"))
    for _ in range(200):
        if stop.wait(0.05):
            return
        conn.sendall(b"1\r\n \r\n")


def oversized(conn: socket.socket, stop: threading.Event) -> None:
    size = 4 * CAP
    conn.sendall(_head("Content-Type: text/xml", f"Content-Length: {size}") + b" " * size)


def endless_chunks(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_head("Content-Type: application/json", "Transfer-Encoding: chunked"))
    chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"
    for _ in range(4096):  # 64 MiB at most
        if stop.is_set():
            return
        conn.sendall(chunk)


#: 16 MiB of spaces in about 16 KiB of gzip: far over the cap once inflated, tiny on the wire.
BOMB = gzip.compress(b" " * (16 * 1024 * 1024), compresslevel=9)


def gzip_bomb(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_head("Content-Type: text/xml", "Content-Encoding: gzip", f"Content-Length: {len(BOMB)}") + BOMB)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    """Reads the request and never answers."""
    stop.wait(10)


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], HostileServer]]:
    servers: List[HostileServer] = []

    def start(behaviour: Behaviour) -> HostileServer:
        servers.append(HostileServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def soap(url: str, **options: Any) -> UwsClient:
    defaults = {"token": "t", "timeout": PATIENT, "deadline": DEADLINE, "max_answer_bytes": CAP}
    return client_for(url + "/api/v2", **{**defaults, **options})


def rest(url: str, **options: Any) -> RestClient:
    defaults = {"bearer_token": "b", "token": "t", "timeout": PATIENT, "deadline": DEADLINE, "max_answer_bytes": CAP}
    return rest_client_for(url, **{**defaults, **options})


CLIENTS = {"soap": soap, "rest": rest}


@pytest.mark.parametrize("api", CLIENTS)
@pytest.mark.parametrize(
    ("behaviour", "limit"),
    [
        (trickled_body, "0.4 s deadline"),
        (trickled_headers, "0.4 s deadline"),
        (slow_endless_chunks, "0.4 s deadline"),
        (oversized, "65,536-byte limit"),
        (endless_chunks, "65,536-byte limit"),
        (gzip_bomb, "65,536-byte limit (decompressed)"),
    ],
    ids=["trickled-body", "trickled-headers", "slow-endless-chunks", "oversized", "endless-chunks", "gzip-bomb"],
)
def test_a_hostile_answer_to_a_provisioning_request_is_outcome_unknown_and_never_resent(
    hostile: Callable[[Behaviour], HostileServer], api: str, behaviour: Behaviour, limit: str
) -> None:
    server = hostile(behaviour)
    client = CLIENTS[api](server.url)
    with pytest.raises(OutcomeUnknown, match="may have been carried out") as info:
        client.suspend(select([DEVICE]))
    message = str(info.value)
    assert limit in message
    # The message says how to change the limit that was hit.
    assert ("deadline=" in message) if "deadline" in limit else ("max_answer_bytes=" in message)
    assert info.value.request.action == "Suspend"
    assert info.value.request.devices == (DEVICE,)
    assert server.requests == 1


@pytest.mark.parametrize("api", CLIENTS)
@pytest.mark.parametrize(
    "behaviour", [trickled_body, gzip_bomb, silent], ids=["trickled-body", "gzip-bomb", "never-answers"]
)
def test_a_hostile_answer_to_a_login_is_an_error_of_the_login(
    hostile: Callable[[Behaviour], HostileServer], api: str, behaviour: Behaviour
) -> None:
    server = hostile(behaviour)
    client = CLIENTS[api](server.url, token=None, bearer_token=None) if api == "rest" else soap(server.url, token=None)
    with pytest.raises(TransportError, match="nothing was provisioned") as info:
        client.suspend(select([DEVICE]))
    assert not isinstance(info.value, OutcomeUnknown)
    assert server.requests == 1  # the login, never the suspend


def test_a_compressed_answer_within_the_cap_is_read(hostile: Callable[[Behaviour], HostileServer]) -> None:
    answers = iter([login_response("session-1"), change_response("req-1")])

    def gzipped(conn: socket.socket, stop: threading.Event) -> None:
        body = gzip.compress(next(answers))
        conn.sendall(_head("Content-Type: text/xml", "Content-Encoding: gzip", f"Content-Length: {len(body)}") + body)

    server = hostile(gzipped)
    client = soap(server.url, token=None)
    assert client.suspend(select([DEVICE])) == "req-1"
    assert (client.token, server.requests) == ("session-1", 2)


def test_the_limits_are_checked_and_shown() -> None:
    client = UwsClient(deadline=5, max_answer_bytes=1000, token="t")
    assert (client.deadline, client.max_answer_bytes) == (5.0, 1000)
    assert "deadline=5" in repr(client)
    for options, field in [({"deadline": 0}, "deadline"), ({"max_answer_bytes": -1}, "max_answer_bytes")]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            UwsClient(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"deadline": 1e10}, "deadline"),
        ({"timeout": (10.0, 1e10)}, r"timeout(?=: .* \(read 10+\.0 seconds is longer than a year\))"),
        ({"deadline": 400 * 86400.0}, "deadline"),
    ],
    ids=["deadline-centuries", "read-timeout-centuries", "deadline-over-a-year"],
)
def test_a_wait_no_socket_or_lock_can_make_is_refused_by_its_name(options: Any, field: str) -> None:
    # Once accepted (finite), then an OverflowError out of the exchange (and out of the deadline
    # watchdog's thread, which serves every exchange).
    with pytest.raises(ValueError, match=f"^{field}: "):
        UwsClient(token="t", **options)
    UwsClient(token="t", deadline=300 * 86400.0)  # long, but a platform's wait: accepted


# Secrets ---------------------------------------------------------------------------------------

PASSWORD, CLIENT_SECRET = "pw-Zq81&<x", "cs-Yt55"
TOKEN, BEARER, LISTENER_PASSWORD = "tok-Wn42", "bear-Vm39", "cb-Ux27"
SECRETS = (PASSWORD, CLIENT_SECRET, TOKEN, BEARER, LISTENER_PASSWORD, "pw-Zq81&amp;&lt;x")


def exposed(thing: object, seen: Optional[set] = None) -> Iterator[str]:  # type: ignore[type-arg]
    """Every text a user can get from ``thing``: str and repr, and for an error its message,
    arguments, request (body and headers too) and the errors it was raised from."""
    seen = set() if seen is None else seen
    if id(thing) in seen or thing is None:
        return
    seen.add(id(thing))
    yield str(thing)
    yield repr(thing)
    if isinstance(thing, BaseException):
        yield from (repr(arg) for arg in thing.args)
        yield from exposed(getattr(thing, "request", None), seen)
        yield from exposed(thing.__cause__, seen)
        yield from exposed(thing.__context__, seen)
    if isinstance(thing, SentRequest):
        yield thing.text
        yield repr(dict(thing.headers))


def assert_no_secret(things: List[object], caplog: Optional[pytest.LogCaptureFixture] = None) -> None:
    texts = [text for thing in things for text in exposed(thing)]
    texts += [record.getMessage() for record in caplog.records] if caplog is not None else []
    for secret in SECRETS:
        assert not [text for text in texts if secret in text], f"{secret!r} shown"


def _raised(call: Callable[[], object]) -> BaseException:
    with pytest.raises(TransportError) as info:
        call()
    return info.value


def test_no_secret_in_what_a_soap_client_exposes(
    hostile: Callable[[Behaviour], HostileServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = hostile(silent)
    logging_in = soap(server.url, token=None, username="u", password=PASSWORD)
    login_error = _raised(lambda: logging_in.suspend(select([DEVICE])))
    with_token = soap(server.url, token=TOKEN)
    change_error = _raised(lambda: with_token.suspend(select([DEVICE])))
    logout_error = _raised(with_token.logout)
    assert isinstance(change_error, OutcomeUnknown)
    request = change_error.request
    assert (request.operation, request.action, request.devices) == ("ChangeDeviceState", "Suspend", (DEVICE,))
    assert b"09611822299" in request.body
    assert b"***" in request.body
    assert isinstance(logout_error, OutcomeUnknown)
    assert logout_error.request.operation == "LogOut"
    assert_no_secret([logging_in, with_token, login_error, change_error, logout_error], caplog)


def test_no_secret_in_what_a_rest_client_exposes(
    hostile: Callable[[Behaviour], HostileServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = hostile(silent)
    oauth = rest(server.url, bearer_token=None, token=None, client_id="id", client_secret=CLIENT_SECRET)
    session = rest(server.url, bearer_token=BEARER, token=None, username="u", password=PASSWORD)
    ready = rest(server.url, bearer_token=BEARER, token=TOKEN)
    oauth_error = _raised(lambda: oauth.suspend(select([DEVICE])))
    session_error = _raised(lambda: session.suspend(select([DEVICE])))
    change_error = _raised(lambda: ready.suspend(select([DEVICE])))
    listener_error = _raised(
        lambda: ready.register_callback("0000123456-00001", "CarrierService", "https://x.example/cb", username="l",
                                        password=LISTENER_PASSWORD)
    )  # fmt: skip
    assert isinstance(change_error, OutcomeUnknown)
    assert change_error.request.headers == {}  # Authorization and VZ-M2M-Token are never kept
    assert isinstance(listener_error, OutcomeUnknown)
    assert b'"password": "***"' in listener_error.request.body
    assert b"https://x.example/cb" in listener_error.request.body
    errors = [oauth_error, session_error, change_error, listener_error]
    assert_no_secret([oauth, session, ready, *errors], caplog)


def test_no_secret_in_settings(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        environ={"UWS_PASSWORD": PASSWORD, "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET, "UWS_USERNAME": "u"}
    )
    assert_no_secret([settings], caplog)


def test_a_sent_request_redacts_secret_headers() -> None:
    sent = SentRequest("POST", "http://x", "op", headers={"Authorization": f"Bearer {BEARER}", "VZ-M2M-Token": TOKEN})
    assert dict(sent.headers) == {"Authorization": "***", "VZ-M2M-Token": "***"}
    provisioner: Provisioner = UwsClient(username="u", password=PASSWORD, token=TOKEN)
    assert_no_secret([sent, provisioner])


def test_a_large_envelope_is_kept_redacted_not_dropped() -> None:
    devices = [Device.of("ESN", f"{n:011d}") for n in range(6000)]  # over xmlsafe's 1 MiB default
    body = build_envelope(Suspend(), select(devices), token=TOKEN).body
    redacted = redact_xml(body)
    assert len(body) > 1024 * 1024
    assert TOKEN.encode() not in redacted
    assert redacted.count(b"<DeviceIdentifier>") == 6000


def test_a_session_passed_in_gets_the_deadline_too(hostile: Callable[[Behaviour], HostileServer]) -> None:
    server = hostile(trickled_headers)
    client = soap(server.url, session=requests.Session())
    with pytest.raises(OutcomeUnknown, match=r"0\.4 s deadline"):
        client.suspend(select([DEVICE]))
    assert isinstance(client.session.get_adapter(server.url), DeadlineAdapter)


def unavailable(conn: socket.socket, stop: threading.Event) -> None:
    body = b"<html>Service Unavailable</html>"
    conn.sendall(_head(f"Content-Length: {len(body)}", "Content-Type: text/html").replace(b"200 OK", b"503 No") + body)


@pytest.mark.parametrize("api", CLIENTS)
def test_a_login_answered_with_503_is_an_error_of_the_login(
    hostile: Callable[[Behaviour], HostileServer], api: str
) -> None:
    server = hostile(unavailable)
    client = CLIENTS[api](server.url, token=None, bearer_token=None) if api == "rest" else soap(server.url, token=None)
    with pytest.raises(TransportError, match="logging in failed") as info:
        client.suspend(select([DEVICE]))
    assert not isinstance(info.value, OutcomeUnknown)
    assert info.value.http_status == 503
    assert server.requests == 1
