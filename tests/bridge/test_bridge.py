"""The migration bridge, end to end on loopback: legacy SOAP clients (zeep from our WSDL, suds, and
our own UwsClient) call the bridge, the bridge drives the emulator's REST side, and the JSON
callbacks come back through the bridge as SOAP callbacks to a legacy listener."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
import zeep
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, client_for
from servers import HttpServer, WaitressServer
from suds.client import Client as SudsClient

from uws_adapter import (
    Emulator,
    InvalidInputFault,
    RestClient,
    generated_devices,
    parse_callback,
    render_rest_callback,
    select,
)
from uws_adapter.bridge.app import Bridge, LegacyRelay, _refusal
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, EmulatedDevice
from uws_adapter.errors import BudgetExceeded, InputError, UnsupportedByApi
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.store.sqlite import Store

LEGACY_USER, LEGACY_PASSWORD = "legacy-system", "legacy-password"
LISTENER_USER, LISTENER_PASSWORD = "legacy-listener", "listener-secret"
BRIDGE_USER, BRIDGE_PASSWORD = "bridge", "bridge-callback-secret"


class LegacyListener(HttpServer):
    """The legacy system's SOAP callback listener; ``up`` False answers 503 (it is down)."""

    def __init__(self) -> None:
        self.up = True
        self.answers: List[Tuple[int, bytes]] = []
        super().__init__(self._answer)

    def _answer(self, body: bytes) -> Tuple[int, str, bytes]:
        status = 200 if self.up else 503
        self.answers.append((status, body))
        return status, "text/xml", b""

    def acknowledged(self) -> List[CallbackRequest]:
        return [parse_callback(body) for status, body in list(self.answers) if status == 200]


@contextlib.contextmanager
def running_bridge(db: Path, emulator: Emulator, legacy_url: str, **options: Any) -> Iterator[Tuple[Bridge, str]]:
    store = Store(db)
    rest = RestClient(
        base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USER,
        password=PASSWORD, store=store, timeout=(2.0, 5.0),
    )  # fmt: skip
    relay = LegacyRelay(legacy_url, username=LISTENER_USER, password=LISTENER_PASSWORD, timeout=(1.0, 2.0))
    settings: Dict[str, Any] = {"handler_backoff": 0.05, **options}
    bridge = Bridge(
        rest, store, legacy_users={LEGACY_USER: LEGACY_PASSWORD}, relay=relay, callback_username=BRIDGE_USER,
        callback_password=BRIDGE_PASSWORD, **settings,
    )  # fmt: skip
    server = WaitressServer(bridge, **bridge.server_options(host="127.0.0.1", port=0, threads=8))
    url = server.url
    try:
        yield bridge, url
    finally:
        server.close()
        bridge.close()
        store.close()


@pytest.fixture
def legacy() -> Iterator[LegacyListener]:
    server = LegacyListener()
    yield server
    server.close()


def wait_until(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def zeep_legacy_client(url: str) -> Tuple[Any, Any]:
    # Each .svc?wsdl describes its own service only, as WCF serves it.
    session = zeep.Client(f"{url}/api/v2/SessionService.svc?wsdl")
    carrier = zeep.Client(f"{url}/api/v2/CarrierService.svc?wsdl")
    return session.bind("SessionService", "SessionServicePort"), carrier.bind("CarrierService", "CarrierServicePort")


def device_list(lines: List[EmulatedDevice]) -> Dict[str, Any]:
    return {
        "DeviceIdentifierCollection": [
            {
                "DeviceIdentifiers": {
                    "DeviceIdentifier": [{"Kind": "IMEI", "Identifier": line.device.identifiers[0].identifier}]
                }
            }
            for line in lines
        ]
    }


def comparable(callback: CallbackRequest) -> Dict[str, Any]:
    """What must survive the relay: everything but the credentials and the delivery count."""
    form = callback.to_dict()
    for key in ("username", "password", "callback_count"):
        form.pop(key)
    return form


def test_a_zeep_client_built_from_our_wsdl_suspends_over_rest(tmp_path: Path, legacy: LegacyListener) -> None:
    lines = generated_devices(6)
    with Emulator(devices=lines) as emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (bridge, url):
        bridge.register(DEFAULT_ACCOUNT, f"{url}/callbacks")
        session, carrier = zeep_legacy_client(url)
        # zeep answers a one-member result (a DataContract schema, as WCF publishes it) with its value.
        token = session.LogIn(Input={"Username": LEGACY_USER, "Password": LEGACY_PASSWORD})
        request_id = carrier.ChangeDeviceState(
            Input={"DeviceList": device_list(lines), "Suspend": {}}, _soapheaders={"token": token}
        )
        wait_until(lambda: len(legacy.acknowledged()) == 6)
        relayed = legacy.acknowledged()
        assert {(cb.request_id, cb.action, cb.succeeded) for cb in relayed} == {(request_id, "Suspend", True)}
        assert {(cb.username, cb.password, cb.callback_count) for cb in relayed} == {
            (LISTENER_USER, LISTENER_PASSWORD, 1)
        }
        # The same content as the JSON callbacks the REST side sent to the bridge.
        received = {event.callback.devices: comparable(event.callback) for event in bridge.store.iter_events()}
        assert {cb.devices: comparable(cb) for cb in relayed} == received
        assert all(line.state == "Suspended" for line in lines)
        assert bridge.store.status(request_id).complete  # the tracker follows bridged requests too
        assert emulator.counters["requests"] == 0  # nothing went to UWS: REST only


def test_suds_an_independent_soap_library_restores_over_rest(tmp_path: Path, legacy: LegacyListener) -> None:
    lines = generated_devices(4, state="Suspended")
    with Emulator(devices=lines) as emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (bridge, url):
        bridge.register(DEFAULT_ACCOUNT, f"{url}/callbacks")
        session = SudsClient(f"{url}/api/v2/SessionService.svc?wsdl", cache=None)
        login = session.service.LogIn(Input={"Username": LEGACY_USER, "Password": LEGACY_PASSWORD})
        client = SudsClient(f"{url}/api/v2/CarrierService.svc?wsdl", cache=None)
        client.set_options(soapheaders={"token": login.SessionToken})
        answer = client.service.ChangeDeviceState(Input={"DeviceList": device_list(lines), "Restore": ""})
        wait_until(lambda: len(legacy.acknowledged()) == 4)
        assert {(cb.request_id, cb.action, cb.succeeded) for cb in legacy.acknowledged()} == {
            (answer.RequestId, "Restore", True)
        }
        assert all(line.state == "Active" for line in lines)


def test_our_uws_client_works_unchanged_against_the_bridge(tmp_path: Path, legacy: LegacyListener) -> None:
    lines = generated_devices(3)
    with Emulator(devices=lines) as emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (bridge, url):
        bridge.register(DEFAULT_ACCOUNT, f"{url}/callbacks")
        client = client_for(f"{url}/api/v2", username=LEGACY_USER, password=LEGACY_PASSWORD, timeout=(2.0, 5.0))
        request_id = client.suspend(select(account=DEFAULT_ACCOUNT))
        wait_until(lambda: len(legacy.acknowledged()) == 3)
        assert {cb.request_id for cb in legacy.acknowledged()} == {request_id}
        with pytest.raises(InvalidInputFault) as info:
            client.restore(select(account="9999999999-00001"))
        assert (
            info.value.code == "CarrierService.REQUEST_FAILED.AccountNotFound"
        )  # the REST errorCode, prefixed as UWS does


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ((LEGACY_USER, "wrong"), "REQUEST_FAILED.InvalidCredentials"),
        ((USER, PASSWORD), "REQUEST_FAILED.InvalidCredentials"),
    ],
    ids=["wrong-password", "rest-login-is-not-a-legacy-login"],
)
def test_a_wrong_legacy_login_is_a_fault_and_reaches_no_rest_api(
    tmp_path: Path, legacy: LegacyListener, credentials: Tuple[str, str], code: str
) -> None:
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (_, url):
        session, _ = zeep_legacy_client(url)
        with pytest.raises(zeep.exceptions.Fault) as info:
            session.LogIn(Input={"Username": credentials[0], "Password": credentials[1]})
        assert info.value.code == f"SessionService.{code}"
        assert emulator.counters["logins"] == 0


def test_a_refused_rest_login_comes_back_as_the_login_fault(tmp_path: Path, legacy: LegacyListener) -> None:
    emulator = Emulator(users={USER: "another password"})
    with emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (_, url):
        session, _ = zeep_legacy_client(url)
        with pytest.raises(zeep.exceptions.Fault) as info:
            session.LogIn(Input={"Username": LEGACY_USER, "Password": LEGACY_PASSWORD})
        assert info.value.code == "SessionService.REQUEST_FAILED.InvalidCredentials"
        assert emulator.counters["failed_logins"] == 1  # and never retried


def test_an_idle_legacy_session_expires_and_our_client_logs_in_again(tmp_path: Path, legacy: LegacyListener) -> None:
    lines = generated_devices(1)
    emulator = Emulator(devices=lines)
    now = [1_800_000_000.0]  # the bridge's sessions run on this clock: no waiting for expiry
    options = {"session_idle": 20 * 60, "clock": lambda: now[0]}
    with emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url, **options) as (bridge, url):
        client = client_for(f"{url}/api/v2", username=LEGACY_USER, password=LEGACY_PASSWORD, timeout=(2.0, 5.0))
        client.login()
        now[0] += 20 * 60 + 1
        assert client.suspend(select([lines[0].device]))
        assert (bridge.counters["logins"], bridge.counters["faults"]) == (2, 1)


def test_hostile_or_invalid_soap_is_a_fault_and_nothing_reaches_rest(tmp_path: Path, legacy: LegacyListener) -> None:
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (_, url):
        hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
        for body in (hostile, b"<not-soap/>", b"{}"):
            response = requests.post(
                f"{url}/api/v2/CarrierService.svc", data=body, headers={"Content-Type": "text/xml"}, timeout=5
            )
            assert response.status_code == 500
            assert b"CarrierService.DeserializationFailed" in response.content
        assert emulator.counters["rest_requests"] == 0


def test_the_wsdl_is_served_with_the_bridge_address(tmp_path: Path, legacy: LegacyListener) -> None:
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (_, url):
        wsdl = requests.get(f"{url}/api/v2/CarrierService.svc?wsdl", timeout=5)
        assert f'location="{url}/api/v2/CarrierService.svc"'.encode() in wsdl.content
        assert b"uws.apps.nphase.com" not in wsdl.content


def test_the_legacy_listener_down_for_a_while_and_a_bridge_restart_lose_nothing(
    tmp_path: Path, legacy: LegacyListener
) -> None:
    lines = generated_devices(20)
    legacy.up = False
    with Emulator(devices=lines) as emulator:
        with running_bridge(tmp_path / "b.db", emulator, legacy.url) as (bridge, url):
            bridge.register(DEFAULT_ACCOUNT, f"{url}/callbacks")
            rest_id = bridge.rest.suspend(select([line.device for line in lines]))
            wait_until(lambda: bridge.store.counts()["events"] == 20)  # acknowledged to the carrier: stored
            wait_until(lambda: len(legacy.answers) >= 40)  # the relay keeps trying while the listener is down
        # The bridge stops with everything unrelayed; a new one on the same store takes over.
        with running_bridge(tmp_path / "b.db", emulator, legacy.url) as (bridge, url):
            tried = len(legacy.answers)
            wait_until(lambda: len(legacy.answers) > tried)  # the new bridge relays while it is still down
            legacy.up = True
            wait_until(lambda: len(legacy.acknowledged()) == 20)
            # Nothing more may come once all are acknowledged: no relay is left to run.
            wait_until(lambda: bridge.store.counts()["handler_queue"] == 0)
            relayed = legacy.acknowledged()
            assert len(relayed) == 20
            assert len({cb.devices for cb in relayed}) == 20
            assert {cb.request_id for cb in relayed} == {rest_id}
            assert all(cb.callback_count and cb.callback_count > 1 for cb in relayed)  # CallbackCount counted the tries
            assert bridge.store.counts()["handler_queue"] == 0


def test_a_carrier_resend_is_acknowledged_but_not_relayed_again(tmp_path: Path, legacy: LegacyListener) -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines) as emulator, running_bridge(tmp_path / "b.db", emulator, legacy.url) as (bridge, url):
        bridge.register(DEFAULT_ACCOUNT, f"{url}/callbacks")
        bridge.rest.suspend(select([lines[0].device]))
        wait_until(lambda: len(legacy.acknowledged()) == 1)
        wait_until(lambda: bridge.store.counts()["handler_queue"] == 0)  # the relay is marked done
        first = next(bridge.store.iter_events()).callback
        resend = render_rest_callback(
            CallbackRequest(**{**{f: getattr(first, f) for f in ("request_id", "devices", "service", "action", "status", "suspend", "comment")},
                               "username": BRIDGE_USER, "password": BRIDGE_PASSWORD, "callback_count": 2, "max_callback_threshold": 4})
        )  # fmt: skip
        response = requests.post(
            f"{url}/callbacks", data=resend, headers={"Content-Type": "application/json"}, timeout=5
        )
        assert response.status_code == 200
        # Acknowledged after commit, with no relay queued for it: nothing can be sent again.
        assert bridge.store.counts()["handler_queue"] == 0
        assert len(legacy.answers) == 1
        assert [event.attempts for event in bridge.store.iter_events()] == [2]
        unauthenticated = json.loads(resend.decode())
        unauthenticated["password"] = "guess"
        refused = requests.post(f"{url}/callbacks", json=unauthenticated, timeout=5)
        assert refused.status_code == 401


@pytest.mark.parametrize(
    "error",
    [
        BudgetExceeded((("IMEI:350000000000000", 5, 0.0),), 5),
        UnsupportedByApi(
            "selection",
            "UWS needs an account or a device group",
            "add --account or --group",
            wire_fix="add AccountName or DeviceGroupName",
        ),
    ],
    ids=["over-the-daily-budget", "filter-without-account"],
)
def test_faults_sent_to_legacy_clients_give_no_command_line_advice(error: InputError) -> None:
    refused = _refusal(error)
    assert refused is not None
    assert refused.code == error.code
    text = str(refused)
    for command_line_word in ("--", "force=", "UWS_ADAPTER_"):
        assert command_line_word not in text
    assert error.fix in str(error)  # the CLI's advice stays in the CLI's message
