"""The REST API as the vendor ships it (issue 12, item 4): listener answers with accountName,
serviceName and url; session logout with no body; OAuth2 error bodies; no withBilling on restore.
Against the emulator on loopback, and raw HTTP where the client would hide what is sent."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
import requests
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, rest_client_for
from servers import HttpServer

from uws_adapter import Emulator, generated_devices, select
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.errors import AuthenticationFailed, Refused
from uws_adapter.rest.client import CallbackListener, listeners_from


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(devices=generated_devices(2, state="Suspended")) as running:
        yield running


@pytest.fixture
def listener() -> Iterator[HttpServer]:
    server = HttpServer(lambda body: (200, "text/plain", b"ok"))
    try:
        yield server
    finally:
        server.close()


def tokens(emulator: Emulator) -> Tuple[str, str]:
    """A bearer token and an M2M session token, fetched by hand."""
    bearer = requests.post(
        f"{emulator.rest_url}/ts/v1/oauth2/token", data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET), timeout=5,
    ).json()["access_token"]  # fmt: skip
    session = requests.post(
        f"{emulator.rest_url}/m2m/v1/session/login", json={"username": USER, "password": PASSWORD},
        headers={"Authorization": f"Bearer {bearer}"}, timeout=5,
    ).json()["sessionToken"]  # fmt: skip
    return bearer, session


def call(
    emulator: Emulator, method: str, path: str, auth: Tuple[str, str], body: Optional[Dict[str, Any]] = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {auth[0]}", "VZ-M2M-Token": auth[1]}
    return requests.request(
        method, f"{emulator.rest_url}/m2m/v1{path}", headers=headers, timeout=5,
        data=json.dumps(body).encode() if body is not None else None,
    )  # fmt: skip


def test_listener_answers_use_account_name_service_name_and_url(emulator: Emulator, listener: HttpServer) -> None:
    auth = tokens(emulator)
    path = f"/callbacks/{DEFAULT_ACCOUNT}"
    registered = call(emulator, "POST", path, auth, {"name": "CarrierService", "url": listener.url})
    assert registered.json() == {"accountName": DEFAULT_ACCOUNT, "serviceName": "CarrierService"}
    listed = call(emulator, "GET", path, auth)
    assert listed.json() == [{"accountName": DEFAULT_ACCOUNT, "serviceName": "CarrierService", "url": listener.url}]
    removed = call(emulator, "DELETE", f"{path}/name/CarrierService", auth)
    assert removed.json() == {"accountName": DEFAULT_ACCOUNT, "serviceName": "CarrierService"}
    assert call(emulator, "GET", path, auth).json() == []


def test_the_client_reads_the_vendor_fields(emulator: Emulator, listener: HttpServer) -> None:
    client = rest_client_for(emulator.rest_url)
    client.register_callback(DEFAULT_ACCOUNT, "CarrierService", listener.url)
    assert client.callback_listeners(DEFAULT_ACCOUNT) == [
        CallbackListener(DEFAULT_ACCOUNT, "CarrierService", listener.url)
    ]


@pytest.mark.parametrize(
    "item",
    [
        {"accountName": DEFAULT_ACCOUNT, "serviceName": "CarrierService", "url": "http://x/"},
        {"accountName": DEFAULT_ACCOUNT, "name": "CarrierService", "url": "http://x/"},
        {"serviceName": "CarrierService", "url": "http://x/"},
    ],
    ids=["vendor-fields", "older-name-field", "no-account-name"],
)
def test_a_listing_is_read_by_the_vendor_fields_and_the_older_name(item: Dict[str, str]) -> None:
    assert listeners_from([item, "not-an-object"], DEFAULT_ACCOUNT) == [
        CallbackListener(DEFAULT_ACCOUNT, "CarrierService", "http://x/")
    ]


def test_a_bodiless_logout_ends_the_session(emulator: Emulator) -> None:
    auth = tokens(emulator)
    headers = {"Authorization": f"Bearer {auth[0]}", "VZ-M2M-Token": auth[1]}
    # What the vendor SDK sends: a POST with no body and no Content-Type.
    answer = requests.post(f"{emulator.rest_url}/m2m/v1/session/logout", headers=headers, timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"sessionToken": auth[1]})
    again = call(emulator, "POST", "/devices/actions/restore", auth, {"accountName": DEFAULT_ACCOUNT})
    assert again.status_code == 400
    assert again.json()["errorCode"] == "REQUEST_FAILED.SessionToken.Invalid"


def test_the_client_logs_out_and_a_later_call_logs_in_again(emulator: Emulator) -> None:
    client = rest_client_for(emulator.rest_url)
    first = client.login()
    client.logout()
    assert client.token is None
    client.logout()  # nothing to end: nothing sent
    with pytest.raises(Refused):
        emulator.touch_session(first)  # the emulator forgot the session
    assert client.restore(select(account=DEFAULT_ACCOUNT))  # logs in again by itself
    assert client.token not in (None, first)


def test_logging_out_of_a_session_the_service_forgot_is_not_an_error(emulator: Emulator) -> None:
    client = rest_client_for(emulator.rest_url)
    emulator.close_session(client.login())
    client.logout()
    assert client.token is None


def test_an_oauth_error_on_a_call_names_the_error() -> None:
    def respond(body: bytes) -> Tuple[int, str, bytes]:
        if b"grant_type" in body:
            return 200, "application/json", b'{"access_token": "t", "expires_in": 3600}'
        return 401, "application/json", b'{"error": "invalid_token", "error_description": "token revoked"}'

    server = HttpServer(respond)
    try:
        client = rest_client_for(server.url)
        with pytest.raises(AuthenticationFailed) as raised:
            client.login()
        assert raised.value.code == "invalid_token"
        assert "token revoked" in str(raised.value)
    finally:
        server.close()


def test_restore_refuses_with_billing_as_the_docs_have_it(emulator: Emulator) -> None:
    auth = tokens(emulator)
    body = {"accountName": DEFAULT_ACCOUNT, "withBilling": True}
    refused = call(emulator, "POST", "/devices/actions/restore", auth, body)
    assert refused.status_code == 400
    assert "withBilling" in refused.json()["errorMessage"]
    assert call(emulator, "POST", "/devices/actions/suspend", auth, body).status_code == 200
