"""Outcome rules: a URL nothing can be sent to is an InputError before any I/O; OutcomeUnknown only
when bytes of the provisioning request may have reached the server; a non-SOAP answer is named by
its HTTP status and content type."""

from __future__ import annotations

import re
import socket
import threading
from typing import Iterator, List

import pytest
from servers import HttpServer, SilentServer

from uws_adapter import ConnectionFailed, Device, InputError, OutcomeUnknown, RestClient, UwsClient, select
from uws_adapter.errors import TransportError
from uws_adapter.provisioning.urls import check_url

DEVICES = select([Device.parse("IMEI:990003420535573")])


@pytest.mark.parametrize(
    ("url", "problem"),
    [("not-a-url", "is not an http(s) URL"), ("http://", "has no host"), ("ftp://h/x", "is not an http(s) URL"),
     ("http://h:99999/api", "has a port that is not a number"), ("http://h:port/api", "has a port"),
     ("http://h /api", "spaces or control characters"), ("", "no URL")],
    ids=["no-scheme", "no-host", "ftp", "port-too-big", "port-not-a-number", "space", "empty"],
)  # fmt: skip
def test_a_url_that_cannot_be_sent_to_is_refused_at_construction(url: str, problem: str) -> None:
    with pytest.raises(InputError, match=f"base_url: .*{re.escape(problem)}"):
        UwsClient(base_url=url, username="u", password="p")
    with pytest.raises(InputError, match=f"base_url: .*{re.escape(problem)}"):
        RestClient(base_url=url, client_id="c", client_secret="s", username="u", password="p")


def test_a_password_in_a_refused_url_is_not_shown() -> None:
    with pytest.raises(InputError) as caught:
        check_url("http://user:hunter2@h:99999/", "--endpoint")
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith("--endpoint: ")


class _Closer:
    """Accepts TCP connections and closes them at once: a TLS handshake fails before any byte
    of the request is written."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def closer() -> Iterator[_Closer]:
    server = _Closer()
    yield server
    server.close()


def test_a_failed_tls_handshake_is_not_an_unknown_outcome(closer: _Closer) -> None:
    # Connected, but the request never left: safe to retry, and reported as a connection failure.
    slept: List[float] = []
    client = UwsClient(base_url=f"https://127.0.0.1:{closer.port}/api/v2", token="t", timeout=(2.0, 2.0),
                       connect_retries=1, sleep=slept.append)  # fmt: skip
    with pytest.raises(ConnectionFailed, match="2 attempts"):
        client.restore(DEVICES)
    assert closer.accepted == 2
    assert len(slept) == 1


def test_a_request_that_reached_the_server_is_an_unknown_outcome() -> None:
    silent = SilentServer()
    try:
        client = UwsClient(base_url=silent.url + "/api/v2", token="t", timeout=(2.0, 0.5), connect_retries=3)
        with pytest.raises(OutcomeUnknown, match="may have been carried out"):
            client.restore(DEVICES)
        silent.settle()
        assert silent.requests == 1  # never sent again
    finally:
        silent.close()


def test_a_non_soap_answer_names_its_status_and_content_type() -> None:
    page = HttpServer(lambda body: (404, "text/html; charset=utf-8", b"<html><body>Not Found</body></html>"))
    try:
        client = UwsClient(base_url=page.url + "/api/v2", token="t", timeout=(2.0, 5.0))
        with pytest.raises(TransportError, match="HTTP 404 text/html, not a SOAP answer") as caught:
            client.restore(DEVICES)
        assert not isinstance(caught.value, OutcomeUnknown)
        assert caught.value.http_status == 404
    finally:
        page.close()


EMPTY_ENVELOPE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<ChangeDeviceStateResponse xmlns="http://nphase.com/unifiedwebservice/v2"/></s:Body></s:Envelope>'
)


@pytest.mark.parametrize("api", ["uws", "rest"])
def test_a_2xx_without_a_request_id_is_an_unknown_outcome_on_both_apis(api: str) -> None:
    # The outcome rule is one: a 2xx to a provisioning request that cannot be read may have been
    # carried out, on either API (the UWS client once said "no usable answer", inviting a resend).
    if api == "uws":
        server = HttpServer(lambda body: (200, "text/xml; charset=utf-8", EMPTY_ENVELOPE))
    else:
        server = HttpServer(lambda body: (200, "application/json", b"{}"))
    try:
        client = (
            UwsClient(base_url=server.url + "/api/v2", token="t", timeout=(2.0, 5.0))
            if api == "uws"
            else RestClient(base_url=server.url + "/api", bearer_token="b", token="s", timeout=(2.0, 5.0))
        )
        with pytest.raises(OutcomeUnknown, match=r"check (its )?callbacks before sending it again") as caught:
            client.restore(DEVICES)
        assert caught.value.request is not None  # what was sent, to reconcile
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_a_lost_answer_to_a_repeatable_request_does_not_ask_to_check_callbacks() -> None:
    # A listing (or a registration, a relay) changes nothing when sent twice: "check its callbacks
    # before sending it again" is the advice for provisioning only.
    silent = SilentServer()
    try:
        client = RestClient(base_url=silent.url + "/api", bearer_token="b", token="s", timeout=(2.0, 0.5))
        with pytest.raises(TransportError) as caught:
            client.callback_listeners("0000123456-00001")
        assert "callbacks before sending it again" not in str(caught.value)
        assert "safe" in str(caught.value)
    finally:
        silent.close()


def test_a_5xx_page_answering_a_repeatable_request_does_not_ask_to_check_callbacks() -> None:
    # The twin of the lost answer above: a proxy's 502 page to a listing said "check its callbacks
    # before sending it again" (provisioning's advice) where a lost answer said it is safe.
    server = HttpServer(lambda _: (502, "text/html", b"<html>Bad Gateway</html>"))
    try:
        client = RestClient(base_url=server.url + "/api", bearer_token="b", token="s", timeout=(2.0, 2.0))
        with pytest.raises(OutcomeUnknown) as caught:
            client.callback_listeners("0000123456-00001")
        assert "callbacks before sending it again" not in str(caught.value)
        assert "sending it again is safe" in str(caught.value)
        assert caught.value.http_status == 502
    finally:
        server.close()
