"""The interop suite's harness: finding (or failing on) each third-party client's toolchain, building
the clients that need a build into a temp folder per run, starting the emulator or the bridge (in
front of the emulator's REST side, with a legacy SOAP listener) on loopback, running a client as a
process, and checking what it printed against what the servers and the listener saw.

Every client program (tests/interop/clients/) takes the same arguments and prints one JSON object,
``{"client": NAME VERSION, "steps": [{"step", "ok", "request_id" | "fault_type", "fault_code" |
"error"}, ...]}``, so that one check covers them all and a failure names the client, the step and
the server's answer.

A client whose toolchain is missing is skipped, with the reason and the install command, only when
CI is not "true"; under CI=true it fails the test: CI never passes by skipping a client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, NoReturn, Optional, Sequence, Set, Tuple

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER
from servers import HttpServer, WaitressServer, wait_until

from uws_adapter import Emulator, RestClient, parse_callback
from uws_adapter.bridge.app import Bridge, LegacyRelay
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, EmulatedDevice
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import Device
from uws_adapter.store.sqlite import Store

CLIENTS = Path(__file__).parent / "clients"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
INSTALL_HINT = "run .ci/interop.sh (as root: it installs every client from Debian and npm, then runs this suite)"

LEGACY_USER, LEGACY_PASSWORD = "legacy-system", "legacy-password"
LISTENER_USER, LISTENER_PASSWORD = "legacy-listener", "listener-secret"
BRIDGE_USER, BRIDGE_PASSWORD = "bridge", "bridge-callback-secret"

GROUP, FIELD, VALUE = "interop-fleet", "CustomField2", "interop"
INVALID_SESSION_CODE = "CarrierService.REQUEST_FAILED.SessionToken.Invalid"
UNKNOWN_KIND_CODE = "CarrierService.INPUT_INVALID.Device.Kind.Invalid"
#: Every step a SOAP client runs, in order ("wsdl" is loading both services' WSDLs, where a client has it).
SOAP_STEPS = (
    "login", "suspend-device-list", "restore-device-list", "suspend-account-group-field",
    "restore-account-group-field", "fault-bad-token", "fault-unknown-kind", "logout", "fault-after-logout",
)  # fmt: skip
CLIENT_TIMEOUT = 120.0  # bounds a hung client only; a run takes a few seconds


def unavailable(reason: str) -> NoReturn:
    """Skip (outside CI) or fail (CI=true) a test whose client cannot be had."""
    if IN_CI:
        pytest.fail(f"{reason}. Under CI=true a client that cannot be installed fails the run; {INSTALL_HINT}", False)
    pytest.skip(f"{reason}; {INSTALL_HINT}")


def tool(name: str, package: str) -> str:
    """The path of the command ``name`` (Debian package ``package``), or :func:`unavailable`."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian package {package})")
    return path


def run(command: Sequence[str], *, what: str, timeout: float = CLIENT_TIMEOUT, **options: Any) -> str:
    """Run a build or probe command; its stdout, or a failure with its output."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False, **options)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: still running after {timeout:.0f} s: {' '.join(command)}", False)
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}", False)
    return done.stdout


# The lines every scenario works on ---------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """Two listed lines (the first named by two identifiers), two lines the account + group +
    custom field query selects, and two it must not (wrong field value; wrong group)."""

    lines: List[EmulatedDevice]

    @classmethod
    def new(cls) -> Fleet:
        def line(n: int, group: Optional[str] = None, value: Optional[str] = None) -> EmulatedDevice:
            device = Device.parse(f"IMEI:{350000000000100 + n}+ICCID:{89148000000000000100 + n}")
            fields = {FIELD: value} if value is not None else {}
            return EmulatedDevice(device, DEFAULT_ACCOUNT, group=group, custom_fields=fields)

        return cls([
            line(0), line(1), line(2, GROUP, VALUE), line(3, GROUP, VALUE), line(4, GROUP, "other"),
            line(5, "another-fleet", VALUE),
        ])  # fmt: skip

    @property
    def listed(self) -> List[EmulatedDevice]:
        return self.lines[:2]

    @property
    def queried(self) -> List[EmulatedDevice]:
        return self.lines[2:4]

    @property
    def untouched(self) -> List[EmulatedDevice]:
        return self.lines[4:]

    def device_arguments(self) -> List[str]:
        """The device list as the clients take it: the first device by both identifiers, the second by its IMEI."""
        first, second = (line.device.identifiers for line in self.listed)
        return ["+".join(f"{i.kind}:{i.identifier}" for i in first), f"{second[0].kind}:{second[0].identifier}"]


def imei(line_or_callback: Any) -> str:
    """The IMEI of an emulated line or of the (one) device a callback reports."""
    identifiers = getattr(line_or_callback, "devices", None)
    if identifiers is None:
        identifiers = line_or_callback.device.identifiers
    return next(i.identifier for i in identifiers if i.kind.upper() == "IMEI")


# Servers -------------------------------------------------------------------------------------------


class LegacyListener(HttpServer):
    """The legacy system's SOAP callback listener: acknowledges every POST and keeps its body."""

    def __init__(self) -> None:
        super().__init__(lambda body: (200, "text/xml", b""))

    def callbacks(self) -> List[CallbackRequest]:
        with self.lock:
            return [parse_callback(body) for body in self.bodies]


@dataclass
class Target:
    """A running SOAP server (emulator or bridge): its ``.../api/v2`` base, the login it takes, the
    emulator behind it, and the listener its callbacks reach as UWS SOAP callbacks."""

    name: str
    base_url: str
    username: str
    password: str
    emulator: Emulator
    fleet: Fleet
    listener: LegacyListener

    @property
    def session_wsdl(self) -> str:
        return f"{self.base_url}/SessionService.svc?wsdl"

    @property
    def carrier_wsdl(self) -> str:
        return f"{self.base_url}/CarrierService.svc?wsdl"

    def arguments(self) -> List[str]:
        """What every SOAP client takes: SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE..."""
        return [
            self.session_wsdl, self.carrier_wsdl, self.username, self.password, DEFAULT_ACCOUNT, GROUP, FIELD, VALUE,
            *self.fleet.device_arguments(),
        ]  # fmt: skip


@contextlib.contextmanager
def running(
    target: str, tmp_path: Path, *, listener_url: Optional[str] = None, soap_action: Optional[str] = None
) -> Iterator[Target]:
    """The emulator itself (``"emulator"``) or the bridge in front of its REST side (``"bridge"``),
    with the fleet's lines and a legacy listener registered for the account's CarrierService: our
    recording one, or the one at ``listener_url`` (a third-party listener), its callbacks sent with
    ``soap_action`` as their SOAPAction (None: no header)."""
    fleet = Fleet.new()
    listener = LegacyListener()
    url = listener_url or listener.url
    try:
        with Emulator(devices=fleet.lines) as emulator:
            if target == "emulator":
                emulator.register_listener(
                    DEFAULT_ACCOUNT, url, LISTENER_USER, LISTENER_PASSWORD, soap_action=soap_action
                )
                yield Target(target, emulator.base_url, USER, PASSWORD, emulator, fleet, listener)
            else:
                with running_bridge(tmp_path / "bridge.db", emulator, url, soap_action=soap_action) as root:
                    yield Target(target, f"{root}/api/v2", LEGACY_USER, LEGACY_PASSWORD, emulator, fleet, listener)
    finally:
        listener.close()


@contextlib.contextmanager
def running_bridge(
    db: Path, emulator: Emulator, legacy_url: str, *, soap_action: Optional[str] = None
) -> Iterator[str]:
    """The bridge on loopback, registered as the REST listener of the default account; its root URL.
    Its relay sends ``soap_action`` as each callback's SOAPAction (None: no header)."""
    store = Store(db)
    rest = RestClient(
        base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USER,
        password=PASSWORD, store=store, timeout=(2.0, 5.0),
    )  # fmt: skip
    relay = LegacyRelay(
        legacy_url, username=LISTENER_USER, password=LISTENER_PASSWORD, timeout=(2.0, 10.0), soap_action=soap_action
    )
    bridge = Bridge(
        rest, store, legacy_users={LEGACY_USER: LEGACY_PASSWORD}, relay=relay, callback_username=BRIDGE_USER,
        callback_password=BRIDGE_PASSWORD, handler_backoff=0.05,
    )  # fmt: skip
    server = WaitressServer(bridge, **bridge.server_options(host="127.0.0.1", port=0, threads=8))
    try:
        bridge.register(DEFAULT_ACCOUNT, f"{server.url}/callbacks")
        yield server.url
    finally:
        server.close()
        bridge.close()
        store.close()


class RecordingProxy:
    """A loopback TCP relay to ``target_url``'s host and port that keeps every byte the client sent,
    to see on the wire how a client frames its requests (chunked or with a Content-Length)."""

    def __init__(self, target_url: str) -> None:
        host_port = target_url.split("://", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        self._target = (host, int(port))
        self._sent: List[bytes] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._open: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="interop-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self._target, timeout=30)
            self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if record:
                    with self._lock:
                        self._sent.append(data)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def request_heads(self) -> List[str]:
        """The head (request line and headers, lower-cased) of every POST the client sent."""
        with self._lock:
            sent = b"".join(self._sent).decode("latin-1")
        heads = []
        for part in sent.split("POST ")[1:]:
            heads.append("POST " + part.partition("\r\n\r\n")[0].lower())
        return heads

    def close(self) -> None:
        self._sock.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()


# Running a client and checking it -------------------------------------------------------------------


def run_client(command: Sequence[str], *, env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run one client program; its JSON report (a failure shows its output when it printed none)."""
    environment = {**os.environ, **(env or {})}
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=CLIENT_TIMEOUT, env=environment, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the client did not finish in {CLIENT_TIMEOUT:.0f} s: {' '.join(command)}\n{exc.stderr!r}", False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        pytest.fail(
            f"the client printed no report (exit {done.returncode}): {' '.join(command)}\n"
            f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}",
            False,
        )
    report: Dict[str, Any] = json.loads(lines[-1])
    return report


def failed_steps(report: Dict[str, Any], expected: Sequence[str]) -> List[str]:
    """Each step that did not pass, with what the server answered; each expected step that did not run."""
    ran = {step["step"]: step for step in report["steps"]}
    problems = [f"{step['step']}: {step.get('error')}" for step in report["steps"] if not step["ok"]]
    problems += [f"{name}: not run" for name in expected if name not in ran]
    return problems


def check_soap_report(report: Dict[str, Any], target: Target) -> None:
    """Every step passed; the RequestIds, the faults (the stack's own type, our codes), the lines'
    states and the SOAP callbacks the legacy listener received are what the scenario must give."""
    problems = failed_steps(report, SOAP_STEPS)
    assert not problems, f"{report['client']} against the {target.name}:\n  " + "\n  ".join(problems)
    steps = {step["step"]: step for step in report["steps"]}
    for name, code in (
        ("fault-bad-token", INVALID_SESSION_CODE),
        ("fault-unknown-kind", UNKNOWN_KIND_CODE),
        ("fault-after-logout", INVALID_SESSION_CODE),
    ):
        assert (steps[name]["fault_code"], bool(steps[name]["fault_type"])) == (code, True), steps[name]

    fleet = target.fleet
    expected: Dict[str, Tuple[str, Set[str]]] = {}
    for name, lines in (("device-list", fleet.listed), ("account-group-field", fleet.queried)):
        for action in ("Suspend", "Restore"):
            request_id = steps[f"{action.lower()}-{name}"]["request_id"]
            assert request_id, steps[f"{action.lower()}-{name}"]
            expected[request_id] = (action, {imei(line) for line in lines})
    assert len(expected) == 4, f"the four requests share RequestIds: {sorted(expected)}"
    # Suspended, then restored: every selected line is Active again, after two actions; the others untouched.
    assert [(line.state, line.actions_today) for line in fleet.listed + fleet.queried] == [("Active", 2)] * 4
    assert [(line.state, line.actions_today) for line in fleet.untouched] == [("Active", 0)] * 2

    total = sum(len(devices) for _, devices in expected.values())
    wait_until(lambda: len(target.listener.callbacks()) >= total, 20, f"{total} SOAP callbacks")
    received: Dict[str, Tuple[str, Set[str]]] = {}
    for callback in target.listener.callbacks():
        assert callback.succeeded, callback
        assert (callback.username, callback.password) == (LISTENER_USER, LISTENER_PASSWORD)
        action, devices = received.setdefault(callback.request_id, (callback.action or "", set()))
        assert callback.action == action
        devices.add(imei(callback))
    assert received == expected
