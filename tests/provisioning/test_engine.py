"""The sending engine and its options value: one validated SendOptions (the clients' older keywords
mapped onto it), the outcome rules in words (connection refused, name not found, a wrong endpoint),
no redirect followed, a header that cannot be written, the fault-code table, one check per send, a typed error for a batch that
stopped part way, and clients that log out when closed."""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

import pytest
from conftest import client_for, rest_client_for
from servers import HttpServer, closed_port

import uws_adapter.uws.envelope as envelope_module
from uws_adapter import (
    BatchFailed,
    ConnectionFailed,
    Device,
    DeviceFault,
    Emulator,
    InputError,
    InvalidInputFault,
    OutcomeUnknown,
    RestClient,
    SendOptions,
    SessionExpired,
    Suspend,
    TransportError,
    UnknownFault,
    UwsClient,
    generated_devices,
    select,
)
from uws_adapter.errors import Code, Refused, fault_class
from uws_adapter.provisioning.engine import Engine, Outgoing, Stakes

DEVICE = Device.parse("MEID:A100000A000001")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timeout": (0, 5)}, "timeout"),
        ({"timeout": None, "deadline": -1}, "deadline"),
        ({"deadline": float("inf")}, "deadline"),
        ({"max_answer_bytes": 0}, "max_answer_bytes"),
        ({"max_answer_bytes": True}, "max_answer_bytes"),
        ({"connect_retries": -1}, "connect_retries"),
        ({"backoff": "1"}, "backoff"),
    ],
)
def test_bad_options_are_refused_naming_the_field(changes: Dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as info:
        SendOptions().with_(**changes)
    assert info.value.field == field


def test_the_older_keywords_map_onto_the_options_value() -> None:
    client = UwsClient(token="t", deadline=7, max_answer_bytes=1000, timeout=(1, 2), connect_retries=0)
    assert client.options == SendOptions(timeout=(1.0, 2.0), deadline=7.0, max_answer_bytes=1000, connect_retries=0)
    given = SendOptions(deadline=9)
    rest = RestClient(bearer_token="b", token="t", options=given, max_answer_bytes=5)
    assert rest.options == given.with_(max_answer_bytes=5)
    assert given.deadline == 9
    assert given.max_answer_bytes != 5
    with pytest.raises(TypeError, match="deadlin"):
        UwsClient(token="t", deadlin=3)
    with pytest.raises(InputError, match=r"^deadline"):
        UwsClient(token="t", deadline=0)


def test_connection_refused_is_said_in_words_with_the_masked_url_and_the_attempts() -> None:
    pauses: List[float] = []
    url = f"http://user:hunter2@127.0.0.1:{closed_port()}/api/v2"
    client = client_for(url, connect_retries=2, sleep=pauses.append)
    with pytest.raises(ConnectionFailed) as info:
        client.suspend(select([DEVICE]))
    message = str(info.value)
    assert "connection refused" in message
    assert "(3 attempts)" in message
    assert "nothing was sent" in message
    assert "hunter2" not in message
    assert "***@127.0.0.1" in message
    assert "NewConnectionError" not in message
    assert "Pool" not in message
    assert "Max retries" not in message
    assert len(pauses) == 2


def test_https_to_a_plain_http_service_fails_at_once_and_says_so() -> None:
    # Our waitress services waited for headers a TLS handshake never sends: the client waited for
    # its connect timeout, four times, and blamed the timeout.
    with Emulator() as emulator:
        client = client_for(emulator.root_url.replace("http://", "https://") + "/api/v2", connect_retries=0)
        with pytest.raises(ConnectionFailed) as info:
            client.login()
    message = str(info.value)
    assert "TLS asked of a server that answered in plain HTTP" in message
    assert "SSLError" not in message


def test_a_name_that_is_not_found_is_said_in_words() -> None:
    client = client_for("http://no-such-host.invalid/api/v2", connect_retries=0)
    with pytest.raises(ConnectionFailed) as info:
        client.login()
    message = str(info.value)
    assert "name not found" in message
    assert "(1 attempt)" in message
    assert "no-such-host.invalid" in message
    assert "NameResolutionError" not in message
    assert "Max retries" not in message


@pytest.mark.parametrize("make", [client_for, rest_client_for], ids=["uws", "rest"])
def test_a_404_from_a_wrong_endpoint_says_check_the_endpoint_url(make: object) -> None:
    server = HttpServer(lambda _: (404, "text/html", b"<html><body>Not Found</body></html>"))
    try:
        client = make(server.url + "/wrong", connect_retries=0)  # type: ignore[operator]
        with pytest.raises(TransportError) as info:
            client.suspend(select([DEVICE]))
        assert "check the endpoint URL" in str(info.value)
        assert "log in again" not in str(info.value)
        assert not isinstance(info.value, OutcomeUnknown)
    finally:
        server.close()


def test_no_redirect_is_followed() -> None:
    target = HttpServer(lambda _: (200, "text/plain", b"ok"))
    redirecting = HttpServer(lambda _: (307, "text/plain", b"", {"Location": target.url + "/elsewhere"}))
    try:
        engine = Engine(SendOptions(connect_retries=0))
        request = Outgoing("POST", redirecting.url, "test", (), b"<a/>", stakes=Stakes.REPEATABLE)
        assert engine.send(request).status_code == 307
        assert target.bodies == []
    finally:
        target.close()
        redirecting.close()


@pytest.mark.parametrize(
    ("headers", "auth"),
    [
        ((("X-Token", "S3cr3t\u20ac"),), None),
        ((("X-Token", "S3cr3t\r\nX-Injected: 1"),), None),
        ((), ("k\u20ac", "S3cr3t")),
    ],
    ids=["not-iso-8859-1", "line-break", "basic-key-not-iso-8859-1"],
)
def test_a_header_that_cannot_be_written_is_input_naming_the_headers_and_nothing_is_sent(
    headers: Tuple[Tuple[str, str], ...], auth: Optional[Tuple[str, str]]
) -> None:
    # http.client writes headers in ISO-8859-1: any other character was a raw UnicodeEncodeError,
    # and requests' refusal of a line break was reported as a URL that cannot be sent to.
    server = HttpServer(lambda _: (200, "text/plain", b"ok"))
    try:
        engine = Engine(SendOptions(connect_retries=0))
        engine.send(Outgoing("POST", server.url, "test", (), b"<a/>", stakes=Stakes.REPEATABLE))  # kept alive
        request = Outgoing("POST", server.url, "test", headers, b"<a/>", stakes=Stakes.ONCE, auth=auth)
        with pytest.raises(InputError) as info:
            engine.send(request)
        assert info.value.field == "headers"
        assert "nothing was sent" in str(info.value)
        assert "S3cr3t" not in str(info.value)
        assert engine.send(Outgoing("POST", server.url, "test", (), b"<b/>", stakes=Stakes.ONCE)).status_code == 200
        assert server.bodies == [b"<a/>", b"<b/>"]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("CarrierService.INPUT_INVALID.Some.New.Code", InvalidInputFault),  # the family's entry
        ("a:CarrierService.REQUEST_FAILED.SessionToken.Expired", SessionExpired),
        ("SessionService.REQUEST_FAILED.DeviceNotFound", DeviceFault),
        ("REQUEST_FAILED.NoDeviceNotFoundHere", UnknownFault),  # no substring matching
        ("REQUEST_FAILED.Device.Whatever", UnknownFault),
        ("", UnknownFault),
    ],
)
def test_fault_codes_map_by_the_table_not_by_substring(code: str, kind: type) -> None:
    assert fault_class(code) is kind


def test_our_servers_and_our_clients_share_the_codes() -> None:
    """A code our emulator refuses with comes back to the client as the class the table says."""
    with Emulator(devices=generated_devices(1)) as emulator:
        with pytest.raises(InvalidInputFault) as info:
            client_for(emulator.base_url).suspend(select(account="0000999999-00001"))
        assert info.value.code.endswith(Code.ACCOUNT_NOT_FOUND)
    assert isinstance(Refused(Code.DEVICE_STATE, "x").code, str)


def test_the_request_is_checked_once_per_send(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[object] = []
    real = envelope_module.check_request

    def counting(action: object, selection: object) -> None:
        calls.append(selection)
        real(action, selection)

    monkeypatch.setattr(envelope_module, "check_request", counting)
    lines = generated_devices(2)
    with Emulator(devices=lines) as emulator:
        client_for(emulator.base_url).suspend(select([lines[0].device]))
    assert len(calls) == 1


def test_a_batch_that_fails_part_way_is_a_typed_error() -> None:
    answers = iter([200, 200, 502])
    requests_seen: List[bytes] = []

    def respond(body: bytes) -> tuple:  # type: ignore[type-arg]
        requests_seen.append(body)
        if b"LogIn" in body:
            return 200, "text/xml", _login_answer()
        status = next(answers)
        return status, "text/html" if status >= 500 else "text/xml", _request_id_answer(len(requests_seen))

    server = HttpServer(respond)
    try:
        client = client_for(server.url, connect_retries=0)
        devices = [line.device for line in generated_devices(5)]
        with pytest.raises(BatchFailed) as info:
            client.change_device_state_in_batches(Suspend(), devices, batch_size=2)
        failed = info.value
        assert [len(batch.devices) for batch in failed.sent] == [2, 2]
        assert isinstance(failed.error, OutcomeUnknown)
        assert failed.__cause__ is failed.error
        assert failed.unsent == 1
        assert "in doubt" in str(failed)
        assert not hasattr(failed.error, "sent")
    finally:
        server.close()


def test_the_first_batch_failing_raises_its_own_error() -> None:
    client = client_for(f"http://127.0.0.1:{closed_port()}/api/v2", connect_retries=0)
    with pytest.raises(ConnectionFailed):
        client.change_device_state_in_batches(Suspend(), [DEVICE], batch_size=1)


@pytest.mark.parametrize("make", [client_for, rest_client_for], ids=["uws", "rest"])
def test_closing_a_client_logs_out_the_session_it_opened(make: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "uws_adapter.wire")
    lines = generated_devices(1)
    with Emulator(devices=lines) as emulator:
        with make(emulator.base_url if make is client_for else emulator.rest_url) as client:  # type: ignore[operator]
            client.suspend(select([lines[0].device]))
            token = client.token
            emulator.sessions.touch(token)  # open
        assert client.token is None
        with pytest.raises(Refused):
            emulator.sessions.touch(token)  # logged out
        given = make(emulator.base_url if make is client_for else emulator.rest_url, token=None)  # type: ignore[operator]
        own = given.ensure_login()
        kept = make(emulator.base_url if make is client_for else emulator.rest_url, token=own, username=None)  # type: ignore[operator]
        kept.close()  # a session given as token= is the caller's: left open
        emulator.sessions.touch(own)


def _login_answer() -> bytes:
    from uws_adapter.soap.service import login_response

    return login_response("tok")


def _request_id_answer(number: int) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ChangeDeviceStateResponse>'
        f"<RequestId>req-{number}</RequestId></ChangeDeviceStateResponse></s:Body></s:Envelope>"
    ).encode()
