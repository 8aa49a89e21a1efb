"""The bridge against hostile or careless use, on loopback with real servers and SQLite files: a
Host header it must not write into its WSDL, sessions that outlive a restart, a LogIn throttle by
client address that no one can turn against the legacy system (timed by an injected clock, never
by sleeping), and relays that can never be rendered."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import zeep
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER
from lxml import etree
from servers import WaitressServer, closed_port, read_answer
from test_bridge import (
    BRIDGE_PASSWORD,
    BRIDGE_USER,
    LEGACY_PASSWORD,
    LEGACY_USER,
    LISTENER_PASSWORD,
    LISTENER_USER,
    LegacyListener,
    wait_until,
)

from uws_adapter import Emulator, RestClient, Suspend, generated_devices, render_rest_callback, select
from uws_adapter.bridge.address import listen_names
from uws_adapter.bridge.app import Bridge, LegacyRelay
from uws_adapter.errors import HandlerGaveUp, InputError, RelayRefused
from uws_adapter.model.callbacks import CallbackRequest, ReportedDevice
from uws_adapter.soap.sessions import FREE_FAILURES, KEEP_EXPIRED
from uws_adapter.store.sqlite import Store, StoredEvent
from uws_adapter.uws.envelope import build_envelope, build_login

NS_WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_PATH = "/api/v2/CarrierService.svc?wsdl"


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class CountingStore(Store):
    """The real SQLite store, counting every transaction written (durable or not)."""

    writes = 0
    confirmed = 0  # requests recorded under their RequestId (the bridge does it after answering)

    def write(self, work: Any, *, timeout: float = 30.0, durable: bool = True) -> Any:
        self.writes += 1
        return super().write(work, timeout=timeout, durable=durable)

    def confirm_request(self, reservation: str, request_id: str) -> None:
        try:
            super().confirm_request(reservation, request_id)
        finally:
            self.confirmed += 1

    def settled(self, calls: int) -> int:
        """The transactions written, once the last of ``calls`` ChangeDeviceStates is recorded."""
        wait_until(lambda: self.confirmed == calls)
        return self.writes


@contextlib.contextmanager
def running_bridge(
    db: Path, rest_url: str, legacy_url: Optional[str] = None, **options: Any
) -> Iterator[Tuple[Bridge, str]]:
    """A bridge on 127.0.0.1 (a free port; clients may come from any of 127/8) whose REST side is ``rest_url``."""
    store = CountingStore(db)
    rest = RestClient(
        base_url=rest_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USER, password=PASSWORD,
        store=store, timeout=(2.0, 5.0),
    )  # fmt: skip
    relay = None
    if legacy_url is not None:
        relay = LegacyRelay(legacy_url, username=LISTENER_USER, password=LISTENER_PASSWORD, timeout=(1.0, 2.0))
    settings: Dict[str, Any] = {"handler_backoff": 0.05, **options}
    bridge = Bridge(
        rest, store, legacy_users={LEGACY_USER: LEGACY_PASSWORD}, relay=relay, callback_username=BRIDGE_USER,
        callback_password=BRIDGE_PASSWORD, **settings,
    )  # fmt: skip
    server = WaitressServer(bridge, **bridge.server_options(host="127.0.0.1", port=0, threads=4))
    try:
        yield bridge, server.url
    finally:
        server.close()
        bridge.close()
        store.close()


def raw_get(url: str, path: str, host: Optional[bytes], *, version: bytes = b"HTTP/1.1") -> Tuple[int, bytes]:
    """GET ``path`` with exactly the ``host`` header bytes given (None: no Host at all)."""
    port = int(url.rpartition(":")[2])
    request = b"GET " + path.encode() + b" " + version + b"\r\n"
    if host is not None:
        request += b"Host: " + host + b"\r\n"
    request += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer, _ = read_answer(connection)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def locations(wsdl: bytes) -> List[str]:
    root = etree.fromstring(wsdl)  # our own answer, checked to be well-formed XML
    return [str(element.get("location")) for element in root.iter(f"{{{NS_WSDL_SOAP}}}address")]


# Item 12: the Host header --------------------------------------------------------------------------


HOSTILE_HOSTS = {
    "markup-injection": b'x"/><inject xmlns="urn:evil">pwned</inject><x a="',
    "other-name": b"evil.example",
    "other-name-with-our-port": b"evil.example:{port}",
    "our-name-wrong-port": b"127.0.0.1:1",
    "our-name-then-quote": b'127.0.0.1:{port}"',
    "our-name-with-path": b"127.0.0.1:{port}/../x",
    "our-name-with-userinfo": b"user@127.0.0.1:{port}",
    "latin1-bytes": b"\xe9vil:{port}",
    "empty": b"",
    "very-long": b"a" * 4000,
}


@pytest.mark.parametrize("host", list(HOSTILE_HOSTS.values()), ids=list(HOSTILE_HOSTS))
def test_a_host_not_configured_gets_400_and_never_reaches_the_wsdl(tmp_path: Path, host: bytes) -> None:
    with running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}") as (_, url):
        port = url.rpartition(":")[2].encode()
        status, body = raw_get(url, WSDL_PATH, host.replace(b"{port}", port))
        assert status == 400
        assert b"is not a name of this bridge" in body
        assert b"--allowed-host" in body
        assert b"<inject" not in body
        assert b"definitions" not in body


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST"], ids=["ipv4", "localhost", "upper-case"])
def test_the_listen_address_names_are_allowed_by_default(tmp_path: Path, name: str) -> None:
    with running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}") as (_, url):
        port = url.rpartition(":")[2]
        status, body = raw_get(url, WSDL_PATH, f"{name}:{port}".encode())
        assert status == 200
        assert locations(body) == [f"http://{name.lower()}:{port}/api/v2/CarrierService.svc"]  # its own service only


def test_configured_names_replace_the_defaults_and_no_host_takes_the_first(tmp_path: Path) -> None:
    names = ["bridge.internal:8443", "bridge:8082"]
    with running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}", allowed_hosts=names) as (_, url):
        assert raw_get(url, WSDL_PATH, b"bridge:8082")[0] == 200
        assert raw_get(url, WSDL_PATH, url.partition("//")[2].encode())[0] == 400  # defaults no longer apply
        status, body = raw_get(url, WSDL_PATH, None, version=b"HTTP/1.0")
        assert status == 200
        assert locations(body)[0] == "http://bridge.internal:8443/api/v2/CarrierService.svc"


def test_with_a_public_url_the_host_is_ignored_and_the_address_escaped(tmp_path: Path) -> None:
    public = 'https://bridge.example/uws?a=1&b="2"'
    with running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}", public_url=public) as (_, url):
        status, body = raw_get(url, WSDL_PATH, HOSTILE_HOSTS["markup-injection"])
        assert status == 200
        assert b"<inject" not in body
        assert locations(body)[0] == f"{public}/api/v2/CarrierService.svc"
        assert b"&amp;b=&quot;2&quot;" in body  # written by lxml, escaped


def test_xsds_are_still_served_unchanged(tmp_path: Path) -> None:
    with running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}") as (_, url):
        wsdl = requests.get(url + WSDL_PATH, timeout=5).content
        imported = [e.get("schemaLocation") for e in etree.fromstring(wsdl).iter("{*}import", "{*}include")]
        for location in filter(None, imported):
            response = requests.get(f"{url}/api/v2/{str(location).rpartition('/')[2]}", timeout=5)
            assert response.status_code == 200
            assert b"schema" in response.content


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8082, ["127.0.0.1:8082", "localhost:8082", "[::1]:8082"]),
        ("::1", 8082, ["127.0.0.1:8082", "localhost:8082", "[::1]:8082"]),
        ("10.0.0.5", 80, ["10.0.0.5:80", "10.0.0.5"]),
        ("fd00::5", 8082, ["[fd00::5]:8082"]),
    ],
    ids=["loopback", "loopback-ipv6", "address-port-80", "ipv6-address"],
)
def test_default_allowed_names_of_a_listen_address(host: str, port: int, expected: List[str]) -> None:
    assert listen_names(host, port) == expected


def test_allowed_names_that_no_host_could_equal_are_refused(tmp_path: Path) -> None:
    hostile = ['x"/><y']
    with (
        pytest.raises(InputError, match="--allowed-host"),
        running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}", allowed_hosts=hostile),
    ):
        pass


@pytest.mark.parametrize(
    ("options", "allowed"),
    [([], "127.0.0.1:{port}"), (["--allowed-host", "bridge.test:8443"], "bridge.test:8443")],
    ids=["listen-address-by-default", "allowed-host-option"],
)
def test_the_bridge_command_checks_the_host(tmp_path: Path, options: List[str], allowed: str) -> None:
    with Emulator() as emulator:
        environment = {
            **os.environ, "UWS_ADAPTER_REST_URL": emulator.rest_url, "UWS_USERNAME": USER, "UWS_PASSWORD": PASSWORD,
            "THINGSPACE_CLIENT_ID": CLIENT_ID, "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET,
            "UWS_CALLBACK_USERNAME": BRIDGE_USER, "UWS_CALLBACK_PASSWORD": BRIDGE_PASSWORD,
            "UWS_BRIDGE_LEGACY_LOGIN": f"{LEGACY_USER}:{LEGACY_PASSWORD}",
        }  # fmt: skip
        command = [sys.executable, "-m", "uws_adapter", "bridge", "--port", "0", "--db", str(tmp_path / "b.db")]
        process = subprocess.Popen(
            command + options, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=environment,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split(" at ")[1].split("/api/v2")[0]
            port = url.rpartition(":")[2]
            host = allowed.replace("{port}", port)
            status, body = raw_get(url, WSDL_PATH, host.encode())
            assert status == 200
            assert locations(body)[0] == f"http://{host}/api/v2/CarrierService.svc"
            assert raw_get(url, WSDL_PATH, f"evil.example:{port}".encode())[0] == 400
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=10)
        assert "Traceback" not in stderr


# Item 13: sessions and lockout that survive a restart -----------------------------------------------


def soap_clients(url: str) -> Tuple[Any, Any]:
    session = zeep.Client(f"{url}/api/v2/SessionService.svc?wsdl")  # each .svc describes its own service
    carrier = zeep.Client(f"{url}{WSDL_PATH}")
    return session.bind("SessionService", "SessionServicePort"), carrier.bind("CarrierService", "CarrierServicePort")


def login(session: Any, password: str = LEGACY_PASSWORD, user: str = LEGACY_USER) -> str:
    # zeep answers a one-member result (a DataContract schema, as WCF publishes it) with its value.
    token: str = session.LogIn(Input={"Username": user, "Password": password})
    return token


def suspend(carrier: Any, token: str, imei: str) -> str:
    devices = {"DeviceIdentifierCollection": [{"DeviceIdentifiers": {"DeviceIdentifier": [{"Kind": "IMEI", "Identifier": imei}]}}]}  # fmt: skip
    request_id: str = carrier.ChangeDeviceState(
        Input={"DeviceList": devices, "Suspend": {}}, _soapheaders={"token": token}
    )
    return request_id


def fault_code(call: Callable[[], object]) -> str:
    with pytest.raises(zeep.exceptions.Fault) as info:
        call()
    return str(info.value.code)


def store_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


def test_a_legacy_session_survives_a_restart_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    lines = generated_devices(2)
    clock = Clock()
    with Emulator(devices=lines) as emulator:
        with running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (_, url):
            token = login(soap_clients(url)[0])
        with running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (bridge, url):
            clock.now += 19 * 60  # idle, but under 20 minutes
            assert suspend(soap_clients(url)[1], token, lines[0].device.identifiers[0].identifier)
            assert bridge.counters["logins"] == 0  # the old token did it
    assert token.encode() not in store_bytes(tmp_path / "b.db")
    with contextlib.closing(sqlite3.connect(str(tmp_path / "b.db"))) as db:
        stored = [row[0] for row in db.execute("SELECT token_sha256 FROM bridge_sessions")]
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_idle_expiry_holds_across_a_restart_and_expired_stays_expired_for_a_day(tmp_path: Path) -> None:
    lines = generated_devices(1)
    clock = Clock()
    with Emulator(devices=lines) as emulator:
        with running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (_, url):
            session, _ = soap_clients(url)
            token = login(session)
            clock.now += 20 * 60 + 1
            other = login(session)  # logging in again does not revive the idle one
        with running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (_, url):
            _, carrier = soap_clients(url)
            imei = lines[0].device.identifiers[0].identifier
            for _resend in range(3):  # every time it is sent, not once (the README promises a day)
                assert (
                    fault_code(lambda: suspend(carrier, token, imei))
                    == "CarrierService.REQUEST_FAILED.SessionToken.Expired"
                )
            assert suspend(carrier, other, imei)
            clock.now += KEEP_EXPIRED - 60  # still within a day of expiring
            assert fault_code(lambda: suspend(carrier, token, imei)).endswith(".SessionToken.Expired")
            clock.now += 120
            assert fault_code(lambda: suspend(carrier, token, imei)).endswith(".SessionToken.Invalid")


def test_a_session_use_is_written_at_most_once_a_minute_and_expiry_stays_exact(tmp_path: Path) -> None:
    lines = generated_devices(7)
    imeis = [line.device.identifiers[0].identifier for line in lines]
    clock = Clock()
    with (
        Emulator(devices=lines) as emulator,
        running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (
            bridge,
            url,
        ),
    ):
        store = bridge.store
        assert isinstance(store, CountingStore)
        session, carrier = soap_clients(url)
        token = login(session)
        before = store.writes
        clock.now += 10
        assert suspend(carrier, token, imeis[0])
        per_call = store.settled(1) - before  # the request log's (the budget reservation, its RequestId)
        assert per_call <= 2
        for imei in imeis[1:3]:
            clock.now += 10
            assert suspend(carrier, token, imei)
        assert store.settled(3) == before + 3 * per_call  # no session write per call
        clock.now += 40  # a minute since the last write of its use
        assert suspend(carrier, token, imeis[3])
        assert store.settled(4) == before + 4 * per_call + 1  # its use written once
        clock.now += 59
        assert suspend(carrier, token, imeis[4])  # seen here, not written
        clock.now += 20 * 60 - 1  # the store says 20 min 58 s idle; this process knows better
        assert suspend(carrier, token, imeis[5])
        clock.now += 20 * 60 + 1
        assert fault_code(lambda: suspend(carrier, token, imeis[6])).endswith(".SessionToken.Expired")


def test_logout_ends_the_session_for_good(tmp_path: Path) -> None:
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator.rest_url) as (_, url):
        session, _ = soap_clients(url)
        token = login(session)
        session.LogOut(Input={"SessionToken": token}, _soapheaders={"token": token})
        assert fault_code(
            lambda: session.LogOut(Input={"SessionToken": token}, _soapheaders={"token": token})
        ).endswith("SessionToken.Invalid")


def post_login(
    url: str, user: str, password: str, source: str = "127.0.0.1", forwarded_for: Optional[str] = None
) -> Tuple[int, bytes]:
    """A SOAP LogIn sent from the loopback address ``source`` (with an ``X-Forwarded-For``, as a
    reverse proxy sends it): its status and body bytes."""
    request = build_login(user, password, base_url=f"{url}/api/v2")
    port = int(url.rpartition(":")[2])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    headers = dict(request.headers)
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    try:
        connection.request("POST", "/api/v2/SessionService.svc", body=request.body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def code_of(body: bytes) -> str:
    return str(etree.fromstring(body).findtext(".//faultcode"))


def test_failed_logins_make_their_address_wait_a_doubling_delay(tmp_path: Path) -> None:
    clock = Clock()
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (_, url):
        for _attempt in range(FREE_FAILURES):
            assert code_of(post_login(url, LEGACY_USER, "wrong")[1]).endswith(".REQUEST_FAILED.InvalidCredentials")
        # This address waits 1 s: the right password is refused too, unseen, and reaches no REST.
        status, body = post_login(url, LEGACY_USER, LEGACY_PASSWORD)
        assert (status, code_of(body)) == (500, "SessionService.REQUEST_FAILED.AccountLocked")
        assert b"try again in 1 s" in body
        assert emulator.counters["logins"] == 0
        clock.now += 1
        assert code_of(post_login(url, LEGACY_USER, "wrong")[1]).endswith(".InvalidCredentials")
        clock.now += 1  # the delay doubled: 2 s now
        assert code_of(post_login(url, LEGACY_USER, LEGACY_PASSWORD)[1]).endswith(".AccountLocked")
        clock.now += 1
        assert post_login(url, LEGACY_USER, LEGACY_PASSWORD)[0] == 200
        # A success clears the address: five more failures before it waits again.
        for _attempt in range(FREE_FAILURES - 1):
            assert code_of(post_login(url, LEGACY_USER, "wrong")[1]).endswith(".InvalidCredentials")
        assert post_login(url, LEGACY_USER, LEGACY_PASSWORD)[0] == 200


def test_the_delay_is_bounded_by_the_lockout_and_a_restart_clears_it(tmp_path: Path) -> None:
    clock = Clock()
    with Emulator() as emulator:
        with running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock, lockout=60.0) as (_, url):
            for _attempt in range(FREE_FAILURES + 20):  # each failure after its delay: 1, 2, ... 32, 60, 60 s
                assert code_of(post_login(url, LEGACY_USER, "wrong")[1]).endswith(".InvalidCredentials")
                clock.now += 60
            # Unbounded, the delay would be 2**20 s now; bounded, a minute was enough.
            assert post_login(url, LEGACY_USER, LEGACY_PASSWORD)[0] == 200
            for _attempt in range(FREE_FAILURES + 1):
                post_login(url, LEGACY_USER, "wrong")
            assert code_of(post_login(url, LEGACY_USER, LEGACY_PASSWORD)[1]).endswith(".AccountLocked")
        with running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (_, url):
            # The throttle is in memory: a restart forgets it (nothing was written per failure).
            assert post_login(url, LEGACY_USER, LEGACY_PASSWORD)[0] == 200


def test_a_thousand_wrong_passwords_from_one_address_never_stop_the_legacy_system_at_another(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (bridge, url):
        store = bridge.store
        assert isinstance(store, CountingStore)
        writes_before = store.writes
        codes = []
        for attempt in range(1000):
            status, body = post_login(url, LEGACY_USER, f"guess-{attempt}", source="127.0.0.9")
            assert status == 500
            codes.append(code_of(body))
        assert codes[:FREE_FAILURES] == ["SessionService.REQUEST_FAILED.InvalidCredentials"] * FREE_FAILURES
        assert set(codes[FREE_FAILURES:]) == {"SessionService.REQUEST_FAILED.AccountLocked"}
        assert emulator.counters["logins"] == 0
        assert store.writes == writes_before  # no store write for any of the 1,000 failures
        # The legacy system, from its own address, logs in at once, again and again.
        for _login in range(3):
            status, body = post_login(url, LEGACY_USER, LEGACY_PASSWORD, source="127.0.0.1")
            assert status == 200, body
        assert store.writes == writes_before + 3  # one per session opened


@pytest.mark.parametrize("trusted", [True, False], ids=["proxy-trusted", "proxy-not-trusted"])
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_delay(tmp_path: Path, trusted: bool) -> None:
    proxy = "127.0.0.9"  # the reverse proxy every request comes through
    options: Dict[str, Any] = {"clock": Clock(), "trusted_proxies": [proxy] if trusted else []}
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator.rest_url, **options) as (_, url):
        for attempt in range(FREE_FAILURES + 2):
            post_login(url, LEGACY_USER, f"guess-{attempt}", source=proxy, forwarded_for="198.51.100.66")
        # The legacy system behind the same proxy: its own key when the proxy is trusted; else it
        # shares the proxy's, and waits with the guesser.
        status, body = post_login(url, LEGACY_USER, LEGACY_PASSWORD, source=proxy, forwarded_for="198.51.100.7")
        if trusted:
            assert status == 200, body
        else:
            assert code_of(body) == "SessionService.REQUEST_FAILED.AccountLocked"
        # A client that names itself in the header, in front of what the proxy appended, is not believed.
        status, body = post_login(
            url, LEGACY_USER, LEGACY_PASSWORD, source=proxy, forwarded_for="198.51.100.7, 198.51.100.66"
        )
        assert code_of(body) == "SessionService.REQUEST_FAILED.AccountLocked"


def test_known_and_unknown_names_get_byte_identical_answers(tmp_path: Path) -> None:
    clock = Clock()
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator.rest_url, clock=clock) as (_, url):
        known = [post_login(url, LEGACY_USER, "wrong", source="127.0.0.2") for _ in range(FREE_FAILURES + 2)]
        unknown = [post_login(url, "no-such-login", "wrong", source="127.0.0.3") for _ in range(FREE_FAILURES + 2)]
        assert known == unknown  # status and every byte: wrong, then waiting, whatever the name
        assert [code_of(body).rpartition(".")[2] for _, body in known] == (
            ["InvalidCredentials"] * FREE_FAILURES + ["AccountLocked"] * 2
        )
        # The right password for a known name from a waiting address: the same answer as a guess.
        assert post_login(url, LEGACY_USER, LEGACY_PASSWORD, source="127.0.0.2") == known[-1]


def test_unlock_says_nothing_is_locked_in_the_store(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "uws_adapter", "bridge", "--unlock", LEGACY_USER, "--db", str(tmp_path / "b.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "throttled per client address" in done.stderr
    assert "Traceback" not in done.stderr


# Item 7: a relay that can never be rendered ---------------------------------------------------------


def rest_callback(request_id: str, imei: str, comment: Optional[str] = None) -> bytes:
    return render_rest_callback(
        CallbackRequest(
            request_id=request_id, devices=(ReportedDevice("IMEI", imei),), username=BRIDGE_USER,
            password=BRIDGE_PASSWORD, service="CarrierService", action="Suspend", status="Success", comment=comment,
            callback_count=1, max_callback_threshold=4,
        )
    )  # fmt: skip


def test_the_relay_gives_up_on_a_callback_xml_cannot_carry_but_not_on_a_listener_that_is_down() -> None:
    poison = StoredEvent(1, CallbackRequest("r-1", comment="bell \x07 here"), 1, False, 0.0)
    with pytest.raises(HandlerGaveUp, match=r"Comment: has a character XML cannot carry"):
        LegacyRelay(f"http://127.0.0.1:{closed_port()}")(poison)
    down = LegacyListener()
    try:
        down.up = False
        with pytest.raises(RelayRefused):
            LegacyRelay(down.url)(StoredEvent(2, CallbackRequest("r-2", comment="fine"), 1, False, 0.0))
    finally:
        down.close()


def test_listener_credentials_xml_cannot_carry_are_refused_at_start() -> None:
    with pytest.raises(InputError, match="legacy listener password"):
        LegacyRelay("http://127.0.0.1:1/", username="u", password="p\x00")


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"legacy_users": {"legacy\udce4": "pw"}}, "legacy_users"),
        ({"legacy_users": {"legacy": "S3cr3t\udce4"}}, "legacy_users['legacy']"),
        ({"callback_username": "bridge\udce4", "callback_password": "pw"}, "callback_username"),
        ({"callback_username": "bridge", "callback_password": "S3cr3t\udce4"}, "callback_password"),
    ],
)
def test_logins_with_a_byte_the_locale_cannot_decode_are_refused_at_start(
    tmp_path: Path, given: Dict[str, Any], field: str
) -> None:
    # What Python makes of a Latin-1 password in a UTF-8 environment: every LogIn or callback was a 500.
    settings: Dict[str, Any] = {"legacy_users": {"legacy": "pw"}, "callback_username": "b", "callback_password": "p"}
    rest = RestClient(base_url="http://127.0.0.1:9/api", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with Store(tmp_path / "b.db") as store:
        with pytest.raises(InputError) as info:
            Bridge(rest, store, **{**settings, **given})
        assert info.value.field == field
        assert "S3cr3t" not in str(info.value)


def post_callbacks(url: str, bodies: List[bytes]) -> None:
    for body in bodies:
        response = requests.post(f"{url}/callbacks", data=body, headers={"Content-Type": "application/json"}, timeout=5)
        assert response.status_code == 200  # acknowledged to the carrier: it is stored


POISON = rest_callback("poison-1", "990000000000001", comment="control \x01 character")


def test_an_unrenderable_callback_is_acknowledged_never_relayed_and_the_relay_goes_on(tmp_path: Path) -> None:
    legacy = LegacyListener()
    try:
        with running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}", legacy.url) as (_, url):
            post_callbacks(url, [POISON] + [rest_callback(f"fine-{n}", f"99000000000010{n}") for n in range(5)])
            wait_until(lambda: len(legacy.acknowledged()) == 5)
            # The relay worker is alive after it: a callback that comes later is relayed too.
            post_callbacks(url, [rest_callback("fine-late", "990000000000200")])
            wait_until(lambda: len(legacy.acknowledged()) == 6)
            relayed = sorted(cb.request_id for cb in legacy.acknowledged())
            assert relayed == [*(f"fine-{n}" for n in range(5)), "fine-late"]
            assert all(b"poison-1" not in body for _, body in legacy.answers)
    finally:
        legacy.close()


def test_an_unrenderable_callback_leaves_the_relay_queue_for_the_dead_letters(tmp_path: Path) -> None:
    legacy = LegacyListener()
    try:
        with running_bridge(tmp_path / "b.db", f"http://127.0.0.1:{closed_port()}", legacy.url) as (bridge, url):
            post_callbacks(url, [POISON, rest_callback("fine-0", "990000000000100")])
            wait_until(lambda: len(legacy.acknowledged()) == 1)
            wait_until(lambda: bridge.store.counts()["handler_queue"] == 0, timeout=10)  # not retried forever
            assert bridge.store.counts()["dead_letters"] == 1
            assert bridge.store.counts()["events"] == 2  # the callback itself stays stored
            assert all(b"poison-1" not in body for _, body in legacy.answers)
        kept = store_bytes(tmp_path / "b.db")
        assert b"cannot be written as a UWS SOAP callback" in kept  # the reason, with the dead letter
        assert BRIDGE_PASSWORD.encode() not in kept
        assert LISTENER_PASSWORD.encode() not in kept
    finally:
        legacy.close()


def test_nothing_in_the_store_or_answers_holds_a_legacy_password(tmp_path: Path) -> None:
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator.rest_url) as (_, url):
        session, _ = soap_clients(url)
        login(session)
        fault_code(lambda: login(session, "not-the-password-" + LEGACY_PASSWORD[::-1]))
    data = store_bytes(tmp_path / "b.db")
    assert LEGACY_PASSWORD.encode() not in data
    assert LEGACY_PASSWORD[::-1].encode() not in data


@pytest.mark.parametrize(
    ("options", "message"),
    [({"idle": float("inf")}, r"^session idle: inf is not a finite number of seconds"),
     ({"idle": 0}, r"^session idle: 0 is not a positive number of seconds"),
     ({"lockout": float("nan")}, r"^lockout: nan is not a number of seconds"),
     ({"lockout": 10.0**9}, r"^lockout: 1000000000.0 seconds is longer than a year")],
    ids=["idle-infinite", "idle-zero", "lockout-nan", "lockout-past-a-year"],
)  # fmt: skip
def test_the_bridges_session_waits_are_checked_by_the_one_rule_for_waits(
    tmp_path: Path, options: Dict[str, float], message: str
) -> None:
    from uws_adapter.bridge.sessions import StoredSessions

    store = Store(tmp_path / "s.db")
    try:
        with pytest.raises(InputError, match=message):
            StoredSessions(store, **options)  # type: ignore[arg-type]
    finally:
        store.close()


def test_a_request_is_recorded_under_its_request_id_once_its_answer_has_gone_whatever_the_server_does(
    tmp_path: Path,
) -> None:
    lines = generated_devices(3)
    with (
        Emulator(devices=lines) as emulator,
        running_bridge(tmp_path / "b.db", emulator.rest_url) as (bridge, url),
    ):
        store = bridge.store
        assert isinstance(store, CountingStore)
        session, carrier = soap_clients(url)
        token = login(session)
        request_id = suspend(carrier, token, lines[0].device.identifiers[0].identifier)
        store.settled(1)
        assert store.status(request_id).total == 1  # tracked under the carrier's RequestId
        # A server that drops the body unread (its client gone): the request is recorded when it
        # closes the body; a server that reads it: once the last byte has been handed over.
        statuses: List[str] = []
        for served in ("closed unread", "read"):
            device = lines[1 if served == "read" else 2].device
            request = build_envelope(Suspend(), select([device]), token=token, base_url=f"{url}/api/v2")
            environ: Dict[str, Any] = {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/" + request.url.split("/", 3)[3],
                "CONTENT_LENGTH": str(len(request.body)), "wsgi.input": io.BytesIO(request.body),
                "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": request.headers["Content-Type"],
                "HTTP_SOAPACTION": request.headers["SOAPAction"],
            }  # fmt: skip
            statuses.clear()
            body: Any = bridge(environ, lambda status, headers, exc_info=None: statuses.append(status))
            before = store.confirmed
            assert statuses == ["200 OK"]
            if served == "read":
                answer = b"".join(body)
                assert b"RequestId" in answer
                assert store.confirmed == before + 1
            else:
                assert store.confirmed == before  # not yet: the answer has not gone
                body.close()
                assert store.confirmed == before + 1
        assert store.confirmed == 3


def test_a_request_whose_client_went_away_before_its_answer_is_recorded_all_the_same(tmp_path: Path) -> None:
    # On waitress itself: the legacy client sends a ChangeDeviceState and hangs up at once. The
    # request went to REST; its record under the RequestId is written although no answer was read.
    lines = generated_devices(2)
    with (
        Emulator(devices=lines) as emulator,
        running_bridge(tmp_path / "b.db", emulator.rest_url) as (bridge, url),
    ):
        store = bridge.store
        assert isinstance(store, CountingStore)
        session, _ = soap_clients(url)
        token = login(session)
        device = lines[0].device
        request = build_envelope(Suspend(), select([device]), token=token, base_url=f"{url}/api/v2")
        host, port = url.split("//")[1].split(":")
        path = "/" + request.url.split("/", 3)[3]
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(request.body)}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in request.headers.items()
        )
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head.encode("latin-1") + b"\r\n" + request.body)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
        store.settled(1)
        recent = store.recent_actions([f"IMEI:{device.identifiers[0].identifier}"], 0.0)
        (request_id,) = {rid for actions in recent.values() for rid, _ in actions}
        assert not request_id.startswith("pending:")  # confirmed under the carrier's RequestId
        assert store.status(request_id).total == 1
