"""The REST client against the emulator's REST front and against misbehaving loopback servers:
OAuth2 caching and renewal, one login at a time, errorCode -> exceptions, session expiry,
and the same no-blind-retry rule as SOAP."""

from __future__ import annotations

import json
import threading
from typing import List, Optional, Type

import pytest
from conftest import ManualClock, rest_client_for
from servers import HttpServer, LoopbackHttp, Reply, Request, SilentServer, closed_port

from uws_adapter import (
    ConnectionFailed,
    Device,
    DeviceFault,
    Emulator,
    InputError,
    InvalidInputFault,
    OutcomeUnknown,
    RestClient,
    ServiceFault,
    SessionExpired,
    TransportError,
    UnknownFault,
    generated_devices,
    parse_rest_callback,
    select,
)
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.errors import AuthenticationFailed

ESN = Device.of("ESN", "09611822299")


def test_suspend_then_restore_with_json_callbacks(callbacks: HttpServer) -> None:
    lines = generated_devices(10)
    with Emulator(devices=lines) as emulator:
        client = rest_client_for(emulator.rest_url)
        client.register_callback(DEFAULT_ACCOUNT, "CarrierService", callbacks.url, username="l", password="p")
        devices = [line.device for line in lines]
        suspend_id = client.suspend(select(devices, account=DEFAULT_ACCOUNT), with_billing=True)
        received = [parse_rest_callback(body) for body in callbacks.wait_for(10)]
        assert {(cb.request_id, cb.action, cb.succeeded) for cb in received} == {(suspend_id, "Suspend", True)}
        assert {(cb.username, cb.password) for cb in received} == {("l", "p")}
        assert all(cb.suspend is not None and cb.suspend.expected_resume_date for cb in received)
        restore_id = client.restore(select(account=DEFAULT_ACCOUNT))
        restored = [parse_rest_callback(body) for body in callbacks.wait_for(20)[10:]]
        assert {(cb.request_id, cb.action, cb.succeeded) for cb in restored} == {(restore_id, "Restore", True)}
        assert all(line.state == "Active" for line in lines)
        assert (emulator.counters["oauth_tokens"], emulator.counters["logins"]) == (1, 1)


def test_the_bearer_token_is_cached_and_renewed_before_it_expires() -> None:
    now = [0.0]
    with Emulator(devices=generated_devices(1), bearer_lifetime=3600) as emulator:
        client = rest_client_for(emulator.rest_url, clock=lambda: now[0], renew_before=300)
        first = client.bearer_token()
        now[0] = 3299.0
        assert client.bearer_token() == first
        now[0] = 3301.0  # within 300 s of the end of its hour
        assert client.bearer_token() != first
        assert emulator.counters["oauth_tokens"] == 2


@pytest.mark.parametrize("lifetime", ["nan", "NaN", "soon", None, [60]])
def test_a_token_lifetime_that_is_not_a_number_counts_as_an_hour(lifetime: object) -> None:
    issued: List[str] = []

    def answer(request: Request) -> Reply:
        issued.append(request.path)
        return 200, "application/json", json.dumps({"access_token": f"b{len(issued)}", "expires_in": lifetime}).encode()

    now = [0.0]
    with LoopbackHttp(answer) as server:
        client = rest_client_for(server.url, clock=lambda: now[0], renew_before=300)
        assert client.bearer_token() == client.bearer_token() == "b1"  # "nan" fetched a token every call
        now[0] = 3301.0
        assert client.bearer_token() == "b2"


@pytest.mark.parametrize("renew_before", ["300", float("nan"), -1.0, float("inf")])
def test_a_renewal_margin_that_is_not_seconds_is_refused_by_name(renew_before: object) -> None:
    # "300" passed, and the first token fetched ended in a TypeError (str minus float).
    with pytest.raises(InputError) as info:
        rest_client_for("http://127.0.0.1:9/api", renew_before=renew_before)
    assert info.value.field == "renew_before"


def test_a_bearer_refused_with_a_bare_401_is_renewed_once_and_the_call_resent() -> None:
    lines = generated_devices(1)
    clock = ManualClock()
    with Emulator(devices=lines, bearer_lifetime=0.3, clock=clock) as emulator:
        client = rest_client_for(emulator.rest_url, clock=lambda: 0.0)  # never thinks it expired
        client.login()
        clock.advance(0.5)
        assert client.suspend(select([lines[0].device]))
        assert emulator.counters["oauth_tokens"] == 2
        assert lines[0].state == "Suspended"


def test_the_emulator_forgets_expired_bearer_tokens_as_it_issues_new_ones() -> None:
    # Every token issued was held for the emulator's life.
    clock = ManualClock()
    with Emulator(devices=generated_devices(1), bearer_lifetime=10, clock=clock) as emulator:
        for _ in range(5):
            rest_client_for(emulator.rest_url).login()
            clock.advance(4)
        assert emulator.counters["oauth_tokens"] == 5
        assert len(emulator.rest._bearers) == 3  # those issued in the last 10 s


def test_wrong_oauth_keys_are_refused_without_a_retry() -> None:
    with Emulator() as emulator:
        client = rest_client_for(emulator.rest_url, client_secret="wrong-secret")
        with pytest.raises(AuthenticationFailed) as raised:
            client.login()
        assert (raised.value.code, raised.value.http_status) == ("invalid_client", 401)
        assert "client_secret" in str(raised.value)
        assert "wrong-secret" not in str(raised.value)
        assert emulator.counters["rest_requests"] == 1


def test_threads_share_one_login() -> None:
    lines = generated_devices(8)
    with Emulator(devices=lines) as emulator:
        client = rest_client_for(emulator.rest_url)
        barrier = threading.Barrier(8)
        ids: List[str] = []

        def run(position: int) -> None:
            barrier.wait()
            ids.append(client.suspend(select([lines[position].device])))

        threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(set(ids)) == 8
        assert (emulator.counters["logins"], emulator.counters["oauth_tokens"]) == (1, 1)


def test_a_failed_login_is_not_retried() -> None:
    with Emulator() as emulator:
        client = rest_client_for(emulator.rest_url, password="wrong")
        with pytest.raises(ServiceFault, match="InvalidCredentials") as info:
            client.restore(select([ESN]))
        assert info.value.http_status == 400
        assert emulator.counters["failed_logins"] == 1


def test_a_session_the_service_forgot_logs_in_once_and_resends_once() -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines) as emulator:
        client = rest_client_for(emulator.rest_url)
        forgotten = client.login()
        emulator.close_session(forgotten)  # as a restart of the service would
        assert client.suspend(select([lines[0].device]))
        assert (emulator.counters["logins"], emulator.counters["faults"]) == (2, 1)


def test_an_expired_session_logs_in_once_and_resends_once() -> None:
    lines = generated_devices(1)
    clock = ManualClock()
    with Emulator(devices=lines, session_idle=0.2, clock=clock) as emulator:
        client = rest_client_for(emulator.rest_url)
        client.login()
        clock.advance(0.4)
        assert client.suspend(select([lines[0].device]))
        assert (emulator.counters["logins"], emulator.counters["faults"]) == (2, 1)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("REQUEST_FAILED.SessionToken.Expired", SessionExpired),
        ("INPUT_INVALID.CustomField.TooLong", InvalidInputFault),
        ("REQUEST_FAILED.AccountNotFound", InvalidInputFault),
        ("REQUEST_FAILED.DeviceNotFound", DeviceFault),
        ("INPUT_INVALID.DeviceState.Invalid", DeviceFault),
        ("400", UnknownFault),
        ("REQUEST_FAILED.UnexpectedError", UnknownFault),
    ],
)
def test_error_codes_become_the_soap_exception_classes(code: str, expected: Type[ServiceFault]) -> None:
    answer = json.dumps({"errorCode": code, "errorMessage": "refused"}).encode()
    server = HttpServer(lambda _: (400, "application/json", answer))
    try:
        client = rest_client_for(server.url, bearer_token="b", token="t", username=None, password=None)
        with pytest.raises(expected) as info:
            client.suspend(select([ESN]))
        assert (info.value.code, info.value.message, info.value.http_status) == (code, "refused", 400)
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_an_emulator_refusal_comes_back_with_its_code() -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        with pytest.raises(InvalidInputFault) as info:
            rest_client_for(emulator.rest_url).restore(select(account="9999999999-00001"))
        assert info.value.code == "REQUEST_FAILED.AccountNotFound"


def test_a_closed_port_is_retried_with_backoff_then_connection_failed() -> None:
    pauses: List[float] = []
    client = rest_client_for(f"http://127.0.0.1:{closed_port()}/api", connect_retries=2, sleep=pauses.append)
    with pytest.raises(ConnectionFailed, match="3 attempts"):
        client.restore(select([ESN]))
    assert len(pauses) == 2


def test_a_server_that_never_answers_gives_outcome_unknown_after_one_request() -> None:
    server = SilentServer()
    try:
        client = rest_client_for(server.url, bearer_token="b", token="t", timeout=(1.0, 0.5))
        with pytest.raises(OutcomeUnknown, match="may have been carried out") as info:
            client.restore(select([ESN]))
        assert b"09611822299" in info.value.request.body
        assert info.value.request.action == "Restore"
        server.settle()
        assert server.requests == 1
    finally:
        server.close()


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (503, "text/html", b"<html><body>Service Unavailable</body></html>"),
        (500, "application/json", b"{}"),
        (200, "application/json", b'{"status": "ok"}'),
        (200, "text/html", b"<html>login page</html>"),
        (200, "application/json", b'{"requestId": "abc\\u0001def"}'),
    ],
    ids=["503-html", "500-no-error-code", "200-no-request-id", "200-html", "200-request-id-with-a-control-character"],
)
def test_answers_without_a_request_id_are_outcome_unknown_and_not_resent(
    status: int, content_type: str, body: bytes
) -> None:
    server = HttpServer(lambda _: (status, content_type, body))
    try:
        client = rest_client_for(server.url, bearer_token="b", token="t")
        with pytest.raises(OutcomeUnknown):
            client.suspend(select([ESN]))
        assert len(server.bodies) == 1
    finally:
        server.close()


@pytest.mark.parametrize("field", ["client_id", "client_secret", "bearer_token", "token"])
@pytest.mark.parametrize("value", ["S3cr3t\u20ac", "S3cr3t\r\nX-Injected: 1", " S3cr3t", "S3\x00cr3t"])
def test_credentials_a_header_cannot_carry_are_refused_by_name(field: str, value: str) -> None:
    # They go into headers, which http.client writes in ISO-8859-1: they ended the first call in a
    # raw UnicodeEncodeError, or in an error about the URL.
    with pytest.raises(InputError) as info:
        rest_client_for("http://127.0.0.1:9/api", **{field: value})
    assert info.value.field == field
    assert "HTTP header" in str(info.value)
    assert "S3cr3t" not in str(info.value)


@pytest.mark.parametrize("token", ["S3cr3t\u20ac", "S3cr3t\r\nX-Injected: 1", "\tS3cr3t"])
@pytest.mark.parametrize("answering", ["oauth", "login"])
def test_a_token_answered_that_a_header_cannot_carry_is_an_error_of_the_login(answering: str, token: str) -> None:
    def answer(request: Request) -> Reply:
        if request.path.endswith("/oauth2/token"):
            issued = token if answering == "oauth" else "bearer"
            return 200, "application/json", json.dumps({"access_token": issued, "expires_in": 3600}).encode()
        if request.path.endswith("/session/login"):
            return 200, "application/json", json.dumps({"sessionToken": token}).encode()
        return 200, "application/json", b'{"requestId": "r1"}'

    with LoopbackHttp(answer) as server:
        client = rest_client_for(server.url)
        with pytest.raises(TransportError) as info:
            client.suspend(select([ESN]))
        assert not isinstance(info.value, OutcomeUnknown)
        named = "access_token" if answering == "oauth" else "sessionToken"
        assert f"{named} " in str(info.value)
        assert "HTTP header cannot carry" in str(info.value)
        assert "S3cr3t" not in str(info.value)


def test_listener_registration_listing_and_removal(callbacks: HttpServer) -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        client = rest_client_for(emulator.rest_url)
        client.register_callback(DEFAULT_ACCOUNT, "CarrierService", callbacks.url)
        client.register_callback(DEFAULT_ACCOUNT, "NiddService", callbacks.url + "/nidd")
        listed = client.callback_listeners(DEFAULT_ACCOUNT)
        assert {(x.service, x.url) for x in listed} == {
            ("CarrierService", callbacks.url),
            ("NiddService", callbacks.url + "/nidd"),
        }
        client.unregister_callback(DEFAULT_ACCOUNT, "NiddService")
        assert [x.service for x in client.callback_listeners(DEFAULT_ACCOUNT)] == ["CarrierService"]
        with pytest.raises(InputError, match="service: unknown callback service 'Carrier'"):
            client.register_callback(DEFAULT_ACCOUNT, "Carrier", callbacks.url)


def test_a_service_registered_through_uws_must_be_unregistered_there_first(callbacks: HttpServer) -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url)  # the UWS way
        client = rest_client_for(emulator.rest_url)
        with pytest.raises(ServiceFault, match="unregister it there first") as info:
            client.register_callback(DEFAULT_ACCOUNT, "CarrierService", callbacks.url)
        assert info.value.code == "REQUEST_FAILED.CallbackAlreadyRegistered"
        emulator.unregister_listener(DEFAULT_ACCOUNT)
        client.register_callback(DEFAULT_ACCOUNT, "CarrierService", callbacks.url)


def test_restoring_nb_iot_lines_sends_a_second_nidd_callback(callbacks: HttpServer) -> None:
    lines = generated_devices(3, state="Suspended")
    lines[0].nb_iot = True
    with Emulator(devices=lines) as emulator:
        client = rest_client_for(emulator.rest_url)
        for service in ("CarrierService", "NiddService"):
            client.register_callback(DEFAULT_ACCOUNT, service, callbacks.url)
        request_id = client.restore(select([line.device for line in lines]))
        received = [parse_rest_callback(body) for body in callbacks.wait_for(4)]
        assert len(received) == 4
        nidd = [cb for cb in received if cb.service == "NiddService"]
        assert [(cb.request_id, cb.status, cb.succeeded) for cb in nidd] == [(request_id, "ConfigCreated", True)]
        assert nidd[0].nidd is not None
        assert nidd[0].nidd.account_name == DEFAULT_ACCOUNT
        assert {d.identifier for d in nidd[0].nidd.devices} == {i.identifier for i in lines[0].device.identifiers}


def test_profile_resume_sends_esim_profile_callbacks(callbacks: HttpServer) -> None:
    lines = generated_devices(2, state="Suspended")
    lines[0].profile_status = "SUSPEND"
    with Emulator(devices=lines) as emulator:
        client = rest_client_for(emulator.rest_url)
        client.register_callback(DEFAULT_ACCOUNT, "DeviceProfileService", callbacks.url)
        iccids = [Device((line.device.identifiers[1],)) for line in lines]
        request_id = client.profile_resume(iccids, account=DEFAULT_ACCOUNT, service_plan="M2M Flex")
        received = sorted((parse_rest_callback(b) for b in callbacks.wait_for(2)), key=lambda cb: not cb.succeeded)
        assert [(cb.request_id, cb.service, cb.succeeded) for cb in received] == [
            (request_id, "DeviceProfileService", True),
            (request_id, "DeviceProfileService", False),
        ]
        profile = received[0].profile
        assert profile is not None
        assert (profile.state, profile.profile_status) == ("ACTIVE", "ENABLE")
        assert lines[0].state == "Active"


@pytest.mark.parametrize(("username", "password"), [("listener", None), (None, "s3cret"), ("listener", "")])
def test_a_listener_registration_with_half_its_credentials_is_refused_before_sending(
    username: Optional[str], password: Optional[str]
) -> None:
    # The one rule for a pair of callback credentials (both or neither), as `listeners register` and
    # the emulator's --listener apply it: half of them would register a listener every callback of
    # which a receiver that checks credentials refuses.
    server = HttpServer(lambda _: (200, "application/json", b"{}"))
    try:
        client = RestClient(base_url=server.url + "/api", bearer_token="b", token="s")
        with pytest.raises(InputError, match="give both a username and a password, or neither") as caught:
            client.register_callback(DEFAULT_ACCOUNT, "CarrierService", server.url + "/cb", username=username,
                                     password=password)  # fmt: skip
        assert "s3cret" not in str(caught.value)
        assert server.bodies == []
    finally:
        server.close()
