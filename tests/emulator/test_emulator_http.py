"""The emulator's HTTP side (one WSGI app on waitress) and the robustness of its callback delivery:
chunked bodies, keep-alive, broken Content-Length headers and unusable listener URLs."""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable, Dict, Iterator, Tuple

import pytest
import requests
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, client_for, rest_client_for
from servers import HttpServer, closed_port

from uws_adapter import Emulator, InputError, generated_devices, parse_callback, select
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, Listener
from uws_adapter.wire import NS_SESSION, NS_V2

LOGIN = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    f'<LogIn xmlns="{NS_V2}"><Input xmlns:a="{NS_SESSION}"><a:Username>{USER}</a:Username>'
    f"<a:Password>{PASSWORD}</a:Password></Input></LogIn>"
    "</s:Body></s:Envelope>"
).encode()
SOAP_PATH = "/api/v2/SessionService.svc"
TOKEN_PATH = "/api/ts/v1/oauth2/token"
Answer = Tuple[int, Dict[str, str], bytes]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(devices=generated_devices(2)) as running:
        yield running


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


class Connection:
    """One raw HTTP/1.1 connection, for what requests will not send (and to see keep-alive)."""

    def __init__(self, emulator: Emulator) -> None:
        host, port = emulator.root_url.rpartition("/")[2].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buffer = b""

    def send(self, head: str, body: bytes = b"") -> None:
        self.sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)

    def answer(self) -> Answer:
        """The next whole answer (status, headers, body); the body by its Content-Length."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed; had {self.buffer!r}")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def chunked(body: bytes, size: int = 100) -> bytes:
    parts = [body[n : n + size] for n in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def test_a_chunked_soap_request_is_read_whole_and_the_connection_kept(emulator: Emulator) -> None:
    connection = Connection(emulator)
    try:
        for _ in range(3):  # three requests, one connection
            connection.send(
                f"POST {SOAP_PATH} HTTP/1.1\nHost: x\nContent-Type: text/xml; charset=utf-8\n"
                "Transfer-Encoding: chunked\n",
                chunked(LOGIN),
            )
            status, _, body = connection.answer()
            assert status == 200
            assert b"SessionToken>" in body
        assert emulator.counters["logins"] == 3
    finally:
        connection.close()


def test_a_chunked_rest_request_is_read_whole(emulator: Emulator) -> None:
    connection = Connection(emulator)
    try:
        form = b"grant_type=client_credentials"
        connection.send(
            f"POST {TOKEN_PATH} HTTP/1.1\nHost: x\nAuthorization: Basic dHMtY2xpZW50OnRzLXNlY3JldA==\n"
            "Content-Type: application/x-www-form-urlencoded\nTransfer-Encoding: chunked\n",
            chunked(form, 7),
        )
        status, _, body = connection.answer()
        assert (status, b"access_token" in body) == (200, True)
    finally:
        connection.close()


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", " 12x"], ids=["negative", "word", "exponent", "trailing-junk"])
@pytest.mark.parametrize("path", [SOAP_PATH, TOKEN_PATH], ids=["soap", "rest"])
def test_a_broken_content_length_is_400_and_the_emulator_serves_on(emulator: Emulator, length: str, path: str) -> None:
    connection = Connection(emulator)
    try:
        connection.send(f"POST {path} HTTP/1.1\nHost: x\nContent-Type: text/xml\nContent-Length: {length}\n", LOGIN)
        status, _, _ = connection.answer()
        assert status == 400
        assert connection.closed_by_server()  # what followed the header cannot be told from a next request
    finally:
        connection.close()
    assert client_for(emulator.base_url).login()


def test_the_size_and_media_rules_are_the_receivers(emulator: Emulator) -> None:
    connection = Connection(emulator)
    try:
        connection.send(f"POST {SOAP_PATH} HTTP/1.1\nHost: x\nContent-Type: text/xml\nContent-Length: 99999999\n")
        assert connection.answer()[0] == 413
    finally:
        connection.close()
    for headers in ("Content-Type: text/xml\nContent-Encoding: gzip\n", "Content-Type: application/json\n"):
        connection = Connection(emulator)
        try:
            connection.send(f"POST {SOAP_PATH} HTTP/1.1\nHost: x\n{headers}Content-Length: {len(LOGIN)}\n", LOGIN)
            assert connection.answer()[0] == 415
        finally:
            connection.close()
    assert emulator.counters["logins"] == 0


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "ftp://x", "http://", "not a url", "http://user:p\u00e9ss@127.0.0.1/", "http://exa mple/"],
    ids=["open-bracket", "ftp", "no-host", "no-scheme", "non-latin-password", "space"],
)
def test_unusable_listener_urls_are_refused_at_registration(emulator: Emulator, url: str) -> None:
    with pytest.raises(InputError, match="listener url"):
        emulator.register_listener(DEFAULT_ACCOUNT, url)
    if url.startswith(("http://", "https://")):  # the REST client runs the same check before sending
        with pytest.raises(InputError, match=r"^url: "):
            rest_client_for(emulator.rest_url).register_callback(DEFAULT_ACCOUNT, "CarrierService", url)
    assert emulator.listeners == {}


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "ftp://x", "http://user:s3cr\u0100t@127.0.0.1:{port}/", "http://127.0.0.1:{port}/"],
    ids=["open-bracket", "ftp", "non-latin-password", "nobody-listening"],
)
def test_a_listener_that_cannot_be_reached_does_not_stop_deliveries(
    callbacks: HttpServer, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    lines = generated_devices(2)
    caplog.set_level(logging.WARNING, logger="uws_adapter.emulator")
    with Emulator(devices=lines, delivery_workers=1, callback_spacing=0.01, max_callback_threshold=2) as emulator:
        # Planted as a listener registered before the URL checks would be (or one that broke since).
        url = url.replace("{port}", str(closed_port()))
        emulator.listeners[(DEFAULT_ACCOUNT, "CarrierService")] = Listener(url, "listener", "s3cr\u00e9t")
        client = client_for(emulator.base_url)
        client.suspend(select([lines[0].device]))
        wait_until(lambda: emulator.counters["callbacks_sent"] == 2)  # sent, re-sent, then dropped
        emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url)
        client.suspend(select([lines[1].device]))
        delivered = parse_callback(callbacks.wait_for(1)[0])
        assert delivered.devices[0].identifier == lines[1].device.identifiers[0].identifier
        wait_until(lambda: emulator.counters["callbacks_acknowledged"] == 1)
    messages = [record.getMessage() for record in caplog.records if record.name == "uws_adapter.emulator"]
    assert len(messages) == 3  # two failed attempts, one drop
    assert not any("s3cr" in message for message in messages)


def test_callbacks_follow_no_redirect_and_a_redirect_is_not_an_acknowledgement(callbacks: HttpServer) -> None:
    """The emulator's callbacks go through the sending engine (as the carrier's would): a listener
    answering 307 is not followed to where it points, and the callback is re-sent, then dropped."""
    redirecting = HttpServer(lambda _: (307, "text/plain", b"", {"Location": callbacks.url}))
    lines = generated_devices(1)
    try:
        with Emulator(devices=lines, delivery_workers=1, callback_spacing=0.01, max_callback_threshold=2) as emulator:
            emulator.register_listener(DEFAULT_ACCOUNT, redirecting.url)
            client_for(emulator.base_url).suspend(select([lines[0].device]))
            wait_until(lambda: emulator.counters["callbacks_sent"] == 2)
            assert emulator.counters["callbacks_acknowledged"] == 0
        assert len(redirecting.bodies) == 2
        assert callbacks.bodies == []
    finally:
        redirecting.close()


def test_a_callback_over_its_answer_cap_names_the_listener_not_the_clients_settings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The emulator's callbacks have their own bounds: the client's settings change nothing for them.
    from uws_adapter.provisioning.options import CALLBACK_OPTIONS

    huge = HttpServer(lambda _: (200, "text/xml", b"<a>" + b"x" * (CALLBACK_OPTIONS.max_answer_bytes + 10) + b"</a>"))
    lines = generated_devices(1)
    caplog.set_level(logging.WARNING, logger="uws_adapter.emulator")
    try:
        with Emulator(devices=lines, delivery_workers=1, callback_spacing=0.01, max_callback_threshold=1) as emulator:
            emulator.register_listener(DEFAULT_ACCOUNT, huge.url)
            client_for(emulator.base_url).suspend(select([lines[0].device]))
            wait_until(lambda: emulator.counters["callbacks_sent"] == 1)
    finally:
        huge.close()
    said = " ".join(record.getMessage() for record in caplog.records if "byte limit" in record.getMessage())
    assert "byte limit" in said
    assert "listener" in said
    assert "UWS_ADAPTER_" not in said
    assert "--max-answer-bytes" not in said


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000, "nested deeper"),
        (b'{"username": ' + b"9" * 5_000 + b"}", "digits"),
        (b'{"username": NaN}', "NaN"),
        (b'{"username": "\xff"}', "UTF-8"),
    ],
    ids=["nested-100000-deep", "integer-5000-digits", "nan", "not-utf8"],
)
def test_a_rest_body_is_read_by_the_hardened_json_path(emulator: Emulator, body: bytes, reason: str) -> None:
    # The REST front decoded bodies with plain json.loads: a 5,000-digit integer is converted in
    # quadratic time on Python 3.9, and NaN was taken.
    token = requests.post(f"{emulator.rest_url}/ts/v1/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()["access_token"]  # fmt: skip
    answer = requests.post(f"{emulator.rest_url}/m2m/v1/session/login", data=body, timeout=10,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 400
    assert "the body is not JSON" in answer.text
    assert reason in answer.text
