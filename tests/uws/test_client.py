"""UwsClient against real loopback servers: the emulator, and servers that fail in each way."""

from __future__ import annotations

from typing import List, Type

import pytest
from conftest import ManualClock, client_for
from servers import HttpServer, SilentServer, closed_port, soap_fault

from uws_adapter import (
    ConnectionFailed,
    Device,
    DeviceFault,
    DeviceList,
    Emulator,
    InputError,
    InvalidInputFault,
    OutcomeUnknown,
    ServiceFault,
    SessionExpired,
    Suspend,
    TransportError,
    UnknownFault,
    UnsupportedByApi,
    UwsClient,
    generated_devices,
    parse_callback,
    select,
)
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.soap.service import login_response

FAST = (1.0, 1.0)


def test_end_to_end_suspend_then_restore(callbacks: HttpServer) -> None:
    lines = generated_devices(25)
    with Emulator(devices=lines) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url, "listener", "s3cret")
        client = client_for(emulator.base_url)
        devices = [line.device for line in lines]
        suspend_id = client.suspend(select(devices))
        received = [parse_callback(body) for body in callbacks.wait_for(25)]
        assert len(received) == 25
        assert {cb.request_id for cb in received} == {suspend_id}
        assert {(cb.action, cb.status, cb.succeeded) for cb in received} == {("Suspend", "Success", True)}
        assert {cb.devices[0].identifier for cb in received} == {d.identifiers[0].identifier for d in devices}
        assert all(cb.suspend is not None and cb.suspend.max_suspend_days_allowed == 180 for cb in received)
        assert {(cb.username, cb.password) for cb in received} == {("listener", "s3cret")}

        restore_id = client.restore(select(devices))
        restored = [parse_callback(body) for body in callbacks.wait_for(50)[25:]]
        assert {(cb.request_id, cb.action, cb.succeeded) for cb in restored} == {(restore_id, "Restore", True)}
        assert all(line.state == "Active" for line in lines)
        assert emulator.counters["logins"] == 1


def test_a_closed_port_is_retried_with_backoff_then_connection_failed() -> None:
    pauses: List[float] = []
    client = client_for(f"http://127.0.0.1:{closed_port()}/api/v2", connect_retries=3, sleep=pauses.append)
    with pytest.raises(ConnectionFailed, match="4 attempts"):
        client.login()
    assert len(pauses) == 3
    assert all(0 <= pause <= 0.01 * 2**n for n, pause in enumerate(pauses))


def test_a_server_that_never_answers_gives_outcome_unknown_after_one_request() -> None:
    server = SilentServer()
    try:
        client = client_for(server.url, token="known-token", timeout=(1.0, 0.5))
        with pytest.raises(OutcomeUnknown, match="may have been carried out") as info:
            client.restore(select([Device.of("ESN", "09611822299")]))
        assert b"09611822299" in info.value.request.body
        assert info.value.request.devices == (Device.of("ESN", "09611822299"),)
        assert b"known-token" not in info.value.request.body
        server.settle()
        assert server.requests == 1
    finally:
        server.close()


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (503, "text/html", b"<html><body>Service Unavailable</body></html>"),
        (500, "text/plain", b""),
        (502, "text/xml", b"<ok/>"),
    ],
    ids=["503-html", "500-empty", "502-xml-not-soap"],
)
def test_5xx_without_a_fault_is_outcome_unknown_and_not_resent(status: int, content_type: str, body: bytes) -> None:
    server = HttpServer(lambda _: (status, content_type, body))
    try:
        client = client_for(server.url, token="t")
        with pytest.raises(OutcomeUnknown) as info:
            client.suspend(select([Device.of("ESN", "09611822299")]))
        assert info.value.http_status == status
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_an_html_error_page_is_a_transport_error() -> None:
    server = HttpServer(lambda _: (404, "text/html", b"<!DOCTYPE html><html><title>Not Found</title></html>"))
    try:
        with pytest.raises(TransportError, match="HTTP 404") as info:
            client_for(server.url).login()
        assert not isinstance(info.value, OutcomeUnknown)
        assert info.value.http_status == 404
    finally:
        server.close()


def test_an_expired_session_logs_in_once_and_resends_once(callbacks: HttpServer) -> None:
    lines = generated_devices(1)
    clock = ManualClock()
    with Emulator(devices=lines, session_idle=0.2, clock=clock) as emulator:
        client = client_for(emulator.base_url)
        client.login()
        clock.advance(0.4)
        request_id = client.suspend(select([lines[0].device]))
        assert request_id
        # login, the expired attempt (the one fault), one re-login, one resend
        assert (emulator.counters["logins"], emulator.counters["faults"], emulator.counters["requests"]) == (2, 1, 4)


def test_a_session_the_service_forgot_logs_in_once_and_resends_once() -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines) as emulator:
        client = client_for(emulator.base_url)
        forgotten = client.login()
        emulator.close_session(forgotten)  # as a restart of the service would
        assert client.suspend(select([lines[0].device]))
        assert client.token != forgotten
        # login, the refused attempt (the one fault), one re-login, one resend
        assert (emulator.counters["logins"], emulator.counters["faults"], emulator.counters["requests"]) == (2, 1, 4)


def test_a_session_refused_again_after_the_new_login_is_raised() -> None:
    invalid = soap_fault("CarrierService.REQUEST_FAILED.SessionToken.Invalid")
    server = HttpServer(
        lambda body: (200, "text/xml", login_response("s")) if b"LogIn" in body else (500, "text/xml", invalid)
    )
    try:
        with pytest.raises(ServiceFault, match=r"SessionToken\.Invalid"):
            client_for(server.url).suspend(select([Device.of("ESN", "09611822299")]))
        assert [b"LogIn" in body for body in server.bodies] == [True, False, True, False]
    finally:
        server.close()


def test_a_refused_session_without_credentials_is_raised() -> None:
    server = HttpServer(lambda _: (500, "text/xml", soap_fault("CarrierService.REQUEST_FAILED.SessionToken.Invalid")))
    try:
        with pytest.raises(ServiceFault, match=r"SessionToken\.Invalid"):
            UwsClient(base_url=server.url, token="old", timeout=FAST).restore(select([Device.of("ESN", "09611822299")]))
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_expiry_without_credentials_is_raised() -> None:
    server = HttpServer(lambda _: (500, "text/xml", soap_fault("CarrierService.REQUEST_FAILED.SessionToken.Expired")))
    try:
        with pytest.raises(SessionExpired):
            UwsClient(base_url=server.url, token="old", timeout=FAST).restore(select([Device.of("ESN", "09611822299")]))
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_a_failed_login_is_never_retried() -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        client = client_for(emulator.base_url, password="wrong")
        with pytest.raises(ServiceFault, match=r"REQUEST_FAILED\.InvalidCredentials"):
            client.suspend(select(account=DEFAULT_ACCOUNT))
        assert (emulator.counters["requests"], emulator.counters["failed_logins"]) == (1, 1)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("CarrierService.REQUEST_FAILED.SessionToken.Expired", SessionExpired),
        ("CarrierService.INPUT_INVALID.Request.InvalidCharacter", InvalidInputFault),
        ("a:DeserializationFailed", InvalidInputFault),
        ("CarrierService.REQUEST_FAILED.AccountNotFound", InvalidInputFault),
        ("CarrierService.REQUEST_FAILED.DeviceNotFound", DeviceFault),
        ("CarrierService.INPUT_INVALID.Device.Identifier.Invalid", DeviceFault),
        ("CarrierService.INPUT_INVALID.DeviceState.Invalid", DeviceFault),
        ("CarrierService.REQUEST_FAILED.UnexpectedError", UnknownFault),
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
@pytest.mark.parametrize("status", [500, 200], ids=["http-500", "http-200"])
def test_each_fault_becomes_its_exception(code: str, expected: Type[ServiceFault], status: int) -> None:
    server = HttpServer(lambda _: (status, "text/xml; charset=utf-8", soap_fault(code, "the carrier says no")))
    try:
        with pytest.raises(expected) as info:
            UwsClient(base_url=server.url, token="t", timeout=FAST).restore(select([Device.of("ESN", "09611822299")]))
        assert (info.value.code, info.value.message, info.value.http_status) == (code, "the carrier says no", status)
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_batches_beyond_the_request_limit(callbacks: HttpServer) -> None:
    lines = generated_devices(25)
    with Emulator(devices=lines) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url)
        devices = [line.device for line in lines]
        results = client_for(emulator.base_url).change_device_state_in_batches(Suspend(), devices, batch_size=10)
        assert [len(r.devices) for r in results] == [10, 10, 5]
        assert [d for r in results for d in r.devices] == devices
        by_request = {parse_callback(b).request_id for b in callbacks.wait_for(25)}
        assert by_request == {r.request_id for r in results}


def test_more_than_10000_devices_are_refused_without_batching() -> None:
    with pytest.raises(InputError, match="split them into several requests"):
        DeviceList(tuple(Device.of("IMEI", f"{350000000000000 + n}") for n in range(10_001)))


def test_input_errors_are_raised_before_anything_is_sent() -> None:
    server = HttpServer(lambda _: (200, "text/xml", b""))
    try:
        client = UwsClient(base_url=server.url, token="t", timeout=FAST)
        with pytest.raises(UnsupportedByApi, match="withBilling"):
            client.suspend(select([Device.of("ESN", "09611822299")]), with_billing=True)
        with pytest.raises(InputError, match="timeout"):
            UwsClient(timeout=(1.0, None))  # type: ignore[arg-type]
        assert server.bodies == []
    finally:
        server.close()
