"""The UWS emulator: faults shaped like the service's, the state machine, lockout, the WSDL it
serves, and callback delivery with re-sends until acknowledged."""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest
import requests
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, client_for
from servers import HttpServer, wait_until

from uws_adapter import (
    CustomField,
    Device,
    Emulator,
    InputError,
    RestClient,
    Restore,
    ServiceFault,
    generated_devices,
    parse_callback,
    select,
)
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.uws.envelope import build_envelope


def test_state_machine_failures_arrive_as_failed_callbacks(callbacks: HttpServer) -> None:
    lines = generated_devices(2)
    with Emulator(devices=lines) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url)
        client = client_for(emulator.base_url)
        client.restore(select([lines[0].device]))  # Restore needs a suspended line
        client.suspend(select([Device.parse("IMEI:359999999999999")]))  # not in the inventory
        results = sorted((parse_callback(body) for body in callbacks.wait_for(2)), key=lambda cb: cb.action or "")
        assert [(cb.action, cb.status, cb.fault.code if cb.fault else None) for cb in results] == [
            ("Restore", "Failed", "INPUT_INVALID.DeviceState.Invalid"),
            ("Suspend", "Failed", "REQUEST_FAILED.DeviceNotFound"),
        ]


def test_five_failed_logins_lock_the_account() -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        for _ in range(5):
            with pytest.raises(ServiceFault, match="InvalidCredentials"):
                client_for(emulator.base_url, password="wrong").login()
        with pytest.raises(ServiceFault, match="AccountLocked"):
            client_for(emulator.base_url).login()


def test_unknown_names_are_answered_as_known_ones_and_lock_alike() -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        answers = []
        for name in ("uws-user", "no-such-user"):
            for _ in range(6):
                with pytest.raises(ServiceFault) as info:
                    client_for(emulator.base_url, username=name, password="wrong").login()
                answers.append((name, info.value.code, info.value.message))
        known = [(code, message) for name, code, message in answers if name == "uws-user"]
        assert known == [(code, message) for name, code, message in answers if name == "no-such-user"]
        assert [code.rpartition(".")[2] for code, _ in known] == ["InvalidCredentials"] * 5 + ["AccountLocked"]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda b: b.replace(
                b"<Kind>ESN</Kind><Identifier>09611822299</Identifier>",
                b"<Identifier>09611822299</Identifier><Kind>ESN</Kind>",
            ),
            "DeserializationFailed",
        ),
        (lambda b: b.replace(b"<nph:Restore/>", b"<nph:Restore/><nph:Suspend/>"), "INPUT_INVALID.RequestUndefined"),
        (lambda b: b.replace(b"<v2:token>", b"<v2:token>x"), "REQUEST_FAILED.SessionToken.Invalid"),
    ],
    ids=["misordered", "two-actions", "unknown-token"],
)
def test_the_emulator_faults_like_the_service(mutate: object, code: str) -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        client = client_for(emulator.base_url)
        token = client.login()
        request = build_envelope(
            Restore(), select([Device.of("ESN", "09611822299")]), token=token, base_url=emulator.base_url
        )
        response = requests.post(request.url, data=mutate(request.body), headers=dict(request.headers), timeout=5)  # type: ignore[operator]
        assert response.status_code == 500
        assert f"CarrierService.{code}".encode() in response.content


def test_the_emulator_serves_the_wsdl_with_its_own_address() -> None:
    with Emulator() as emulator:
        wsdl = requests.get(f"{emulator.base_url}/CarrierService.svc?wsdl", timeout=5)
        assert wsdl.status_code == 200
        assert f'location="{emulator.base_url}/CarrierService.svc"'.encode() in wsdl.content
        assert requests.get(f"{emulator.base_url}/uws-v2.xsd", timeout=5).status_code == 200


def test_callbacks_are_resent_until_acknowledged() -> None:
    answers: List[Tuple[int, str, bytes]] = [
        (503, "text/plain", b""),
        (500, "text/plain", b""),
        (200, "text/plain", b""),
    ]
    server = HttpServer(lambda _: answers.pop(0) if answers else (200, "text/plain", b""))
    lines = generated_devices(1)
    try:
        with Emulator(devices=lines, callback_spacing=0.05) as emulator:
            emulator.register_listener(DEFAULT_ACCOUNT, server.url)
            client_for(emulator.base_url).suspend(select([lines[0].device]))
            bodies = server.wait_for(3)
            wait_until(lambda: emulator.counters["callbacks_acknowledged"] == 1)  # done: no more tries come
            assert [parse_callback(b).callback_count for b in server.bodies] == [1, 2, 3]
            assert len({parse_callback(b).request_id for b in bodies}) == 1
    finally:
        server.close()


@pytest.mark.parametrize("spacing", [1e10, float("inf"), float("nan"), 0.0])
def test_a_callback_spacing_no_wait_can_take_is_refused(spacing: float) -> None:
    # 1e10 s (--callback-spacing 1e10) passed, and the first refused callback ended the delivery
    # thread in a raw OverflowError: no callback went out after it, to any listener.
    with pytest.raises(InputError) as info:
        Emulator(callback_spacing=spacing)
    assert info.value.field == "callback_spacing"


@pytest.mark.parametrize("field", ["session_idle", "bearer_lifetime"])
@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0], ids=["nan", "inf", "negative"])
def test_session_and_token_lifetimes_are_seconds(field: str, seconds: float) -> None:
    # No comparison with NaN is true: with a NaN idle time every session was refused as invalid at once.
    with pytest.raises(InputError) as info:
        Emulator(**{field: seconds})  # type: ignore[arg-type]
    assert info.value.field == field


def test_callbacks_stop_at_the_threshold() -> None:
    server = HttpServer(lambda _: (500, "text/plain", b""))
    lines = generated_devices(1)
    try:
        with Emulator(devices=lines, callback_spacing=0.02, max_callback_threshold=4) as emulator:
            emulator.register_listener(DEFAULT_ACCOUNT, server.url)
            client_for(emulator.base_url).suspend(select([lines[0].device]))
            server.wait_for(4)
            # The 4th try is over and, at the threshold, not queued again.
            wait_until(lambda: emulator.counters["callbacks_sent"] == 4)
            assert [parse_callback(b).callback_count for b in server.bodies] == [1, 2, 3, 4]
    finally:
        server.close()


def test_the_daily_budget_per_line(callbacks: HttpServer) -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines, daily_budget=1) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url)
        client = client_for(emulator.base_url)
        client.suspend(select([lines[0].device]))
        callbacks.wait_for(1)
        client.restore(select([lines[0].device]))
        second = parse_callback(callbacks.wait_for(2)[1])
        assert (second.action, second.status) == ("Restore", "Failed")
        assert second.fault is not None
        assert second.fault.code == "REQUEST_FAILED.ProvisioningLimitExceeded"
        assert lines[0].state == "Suspended"


def test_query_selection_with_filters(callbacks: HttpServer) -> None:
    lines = generated_devices(6)
    for n, line in enumerate(lines):
        line.group = "Vending" if n < 4 else "Meters"
        line.custom_fields["CustomField2"] = "SuperVend" if n % 2 == 0 else "Other"
    with Emulator(devices=lines) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url)
        query = select(group="Vending", custom_fields=[CustomField("CustomField2", "supervend")])
        client_for(emulator.base_url).suspend(query)
        # Only the 2 matching lines were suspended, so no other callback can come.
        assert [line.state for line in lines].count("Suspended") == 2
        reached = {parse_callback(b).devices[0].identifier for b in callbacks.wait_for(2)}
        assert reached == {lines[0].device.identifiers[0].identifier, lines[2].device.identifiers[0].identifier}
        with pytest.raises(ServiceFault, match="AccountNotFound"):
            client_for(emulator.base_url).suspend(select(account="0000999999-00001"))


def test_each_api_manages_only_the_listeners_registered_through_it() -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, "http://127.0.0.1:9/uws", "u", "p")
        rest = RestClient(
            base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USER,
            password=PASSWORD,
        )  # fmt: skip
        assert rest.callback_listeners(DEFAULT_ACCOUNT) == []  # the UWS listener is not the REST API's
        with pytest.raises(ServiceFault):
            rest.unregister_callback(DEFAULT_ACCOUNT, "CarrierService")
        assert (DEFAULT_ACCOUNT, "CarrierService") in emulator.listeners  # still there
        emulator.unregister_listener(DEFAULT_ACCOUNT)
        rest.register_callback(DEFAULT_ACCOUNT, "CarrierService", "http://127.0.0.1:9/rest")
        with pytest.raises(InputError, match="registered over REST"):
            emulator.register_listener(DEFAULT_ACCOUNT, "http://127.0.0.1:9/uws")
        emulator.unregister_listener(DEFAULT_ACCOUNT)  # not UWS's to remove
        assert [c.url for c in rest.callback_listeners(DEFAULT_ACCOUNT)] == ["http://127.0.0.1:9/rest"]


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"devices": None}, "devices"),
        ({"devices": [1]}, "devices[0]"),
        ({"users": -1}, "users"),
        ({"clients": {"id": 1}}, "clients"),
        ({"delivery_workers": None}, "delivery_workers"),
        ({"max_callback_threshold": 0}, "max_callback_threshold"),
        ({"daily_budget": True}, "daily_budget"),
    ],
    ids=["devices-none", "devices-not-lines", "users-a-number", "clients-secret-a-number", "workers-none",
         "threshold-zero", "budget-a-bool"],
)  # fmt: skip
def test_arguments_of_the_wrong_kind_are_refused_by_name(given: Dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as info:
        Emulator(**given)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("login", "field"),
    [((None, "p"), "listener username"), (("u", 12345), "listener password"), (("u\x01", "p"), "listener username")],
    ids=["username-none", "password-a-number", "username-control-character"],
)
def test_a_listener_login_that_is_no_text_is_refused_by_name_without_showing_it(
    login: Tuple[object, object], field: str
) -> None:
    # None or a number ended registration in a raw TypeError from the XML check.
    with Emulator() as emulator, pytest.raises(InputError) as caught:
        emulator.register_listener(DEFAULT_ACCOUNT, "http://127.0.0.1:9/", *login)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert "12345" not in str(caught.value)
