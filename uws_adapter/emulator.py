"""A carrier emulator on loopback: UWS SOAP (:mod:`.emulator_soap`) and the REST M2M API
(:mod:`.emulator_rest`) in front of one device inventory with the documented state machine, and
real callbacks to registered listeners, re-sent until acknowledged.

Both fronts share the inventory, the users (five failed logins lock an account [doc]), the
sessions (20 minutes idle [doc]) and the callback queue. Codes not in the carrier's documentation
are marked [inferred] where they are raised.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Sequence, Tuple

import requests

from .callback_json import render_rest_callback
from .callback_xml_render import render_callback
from .callbacks import CallbackRequest
from .devices import DeviceIdentifier
from .emulator_lines import (
    ACTIVE,
    DEFAULT_ACCOUNT,
    SUSPENDED,
    EmulatedDevice,
    change_state,
    generated_devices,
    nidd_callback,
    resume_profile,
)
from .selection import CustomField
from .soap_service import IdleSessions, Refused
from .wire import CONTENT_TYPE, MAX_DEVICES_PER_REQUEST

__all__ = [
    "ACTIVE", "DEFAULT_ACCOUNT", "MAX_BODY", "SUSPENDED", "EmulatedDevice", "Emulator", "EmulatorFault", "Listener",
    "generated_devices",
]  # fmt: skip
MAX_BODY = 8 * 1024 * 1024  # a 10,000-device request is about 2 MB


class EmulatorFault(Refused):
    """A refusal, rendered by each front in its own way (SOAP fault, REST errorCode)."""

    def __init__(self, code: str, message: str, *, http_status: int = 400) -> None:
        super().__init__(code, message)
        self.http_status = http_status


@dataclass(frozen=True)
class Listener:
    """Where callbacks of one account and service go; ``api`` is how they are written."""

    url: str
    username: str = ""
    password: str = ""
    api: str = "soap"


Target = Tuple[Tuple[DeviceIdentifier, ...], Optional[EmulatedDevice]]


class Emulator:
    """Start with ``with Emulator(devices=100) as emu:``; ``emu.base_url`` is what a UwsClient
    takes, ``emu.rest_url`` what a RestClient takes."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        devices: Sequence[EmulatedDevice] = (),
        users: Optional[Dict[str, str]] = None,
        clients: Optional[Dict[str, str]] = None,
        session_idle: float = 20 * 60,
        bearer_lifetime: float = 3600.0,
        daily_budget: int = 5,
        callback_spacing: float = 300.0,
        max_callback_threshold: int = 4,
        delivery_workers: int = 4,
    ) -> None:
        from .emulator_rest import RestFront
        from .emulator_soap import SoapFront

        self.devices = list(devices)
        self._index: Dict[Tuple[str, str], EmulatedDevice] = {}
        for line in self.devices:
            for ident in line.device.identifiers:
                self._index[(ident.kind, ident.identifier.upper())] = line
        self.users = dict(users or {"uws-user": "uws-password"})
        self.clients = dict(clients or {"ts-client": "ts-secret"})
        self.bearer_lifetime = bearer_lifetime
        self.daily_budget = daily_budget
        self.callback_spacing = callback_spacing
        self.max_callback_threshold = max_callback_threshold
        self.listeners: Dict[Tuple[str, str], Listener] = {}
        self.counters: Dict[str, int] = dict.fromkeys(
            ("logins", "failed_logins", "requests", "faults", "callbacks_sent", "callbacks_acknowledged",
             "oauth_tokens", "rest_requests"), 0,
        )  # fmt: skip
        self.sessions = IdleSessions(session_idle)
        self._failures: Dict[str, int] = {}
        self.lock = threading.RLock()
        self._queue: List[Tuple[float, int, CallbackRequest, Listener]] = []
        self._queued = threading.Condition(self.lock)
        self._sequence = itertools.count()
        self._stopping = False
        self.soap = SoapFront(self)
        self.rest = RestFront(self)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True, name="uws-emulator")]
        self._threads += [
            threading.Thread(target=self._deliver, daemon=True, name=f"uws-callbacks-{n}")
            for n in range(delivery_workers)
        ]

    @property
    def root_url(self) -> str:
        address = self._server.server_address
        return f"http://{address[0]!s}:{address[1]}"

    @property
    def base_url(self) -> str:
        """The UWS base URL (``.../api/v2``)."""
        return f"{self.root_url}/api/v2"

    @property
    def rest_url(self) -> str:
        """The REST base URL (``.../api``)."""
        return f"{self.root_url}/api"

    def start(self) -> Emulator:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        with self._queued:
            self._stopping = True
            self._queued.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def register_listener(
        self, account: str, url: str, username: str = "", password: str = "", *, service: str = "CarrierService"
    ) -> None:
        """Where ``service`` callbacks for ``account`` go, registered the UWS way: SOAP documents.
        (UWS's CallbackRegistrationService is not emulated; this stands in for it.)"""
        with self.lock:
            self.listeners[(account, service)] = Listener(url, username, password, "soap")

    def unregister_listener(self, account: str, service: str = "CarrierService") -> None:
        """Remove a listener, as UWS's unregistration would."""
        with self.lock:
            self.listeners.pop((account, service), None)

    def pending_callbacks(self) -> int:
        with self.lock:
            return len(self._queue)

    # Users and sessions (both APIs) --------------------------------------------------------

    def open_session(self, username: str, password: str) -> str:
        with self.lock:
            if self._failures.get(username, 0) >= 5:
                raise EmulatorFault(
                    "REQUEST_FAILED.AccountLocked", "account locked after 5 failed logins"
                )  # [inferred]
            if self.users.get(username) != password:
                self._failures[username] = self._failures.get(username, 0) + 1
                self.counters["failed_logins"] += 1
                raise EmulatorFault("REQUEST_FAILED.InvalidCredentials", "wrong username or password")  # [inferred]
            self._failures[username] = 0
            self.counters["logins"] += 1
        return self.sessions.open()

    def touch_session(self, token: Optional[str]) -> None:
        self.sessions.touch(token)

    def close_session(self, token: Optional[str]) -> None:
        self.sessions.close(token)

    # Inventory ------------------------------------------------------------------------------

    def find(self, given: Sequence[DeviceIdentifier]) -> Optional[EmulatedDevice]:
        for ident in given:
            line = self._index.get((ident.kind, ident.identifier.upper()))
            if line is not None:
                return line
        return None

    def listed(self, devices: Sequence[Tuple[DeviceIdentifier, ...]]) -> List[Target]:
        if len(devices) > MAX_DEVICES_PER_REQUEST:
            raise EmulatorFault("INPUT_INVALID.MaxRequestsExceeded", f"{len(devices)} devices")
        return [(given, self.find(given)) for given in devices]

    def query(
        self, account: Optional[str], group: Optional[str], plan: Optional[str], custom: Sequence[CustomField]
    ) -> List[Target]:
        if account is None and group is None:
            raise EmulatorFault("INPUT_INVALID.RequestUndefined", "no devices, account or device group")
        if account is not None and not any(line.account == account for line in self.devices):
            raise EmulatorFault("REQUEST_FAILED.AccountNotFound", f"no account {account}")
        return [
            (line.device.identifiers, line)
            for line in self.devices
            if (account is None or line.account == account)
            and (group is None or line.group == group)
            and (plan is None or line.service_plan == plan)
            and all(line.custom_fields.get(f.name, "").lower() == f.value.lower() for f in custom)
        ]

    def provision(self, action: str, targets: Sequence[Target], *, account: Optional[str] = None) -> str:
        """Apply ``action`` to every target and queue one callback per device; the RequestId."""
        request_id = str(uuid.uuid4())
        with self._queued:
            for given, line in targets:
                owner = line.account if line else (account or DEFAULT_ACCOUNT)
                if action == "ProfileResume":
                    self._enqueue(
                        owner,
                        resume_profile(request_id, given, line, max_callback_threshold=self.max_callback_threshold),
                    )
                    continue
                callback = change_state(
                    request_id, action, given, line, daily_budget=self.daily_budget,
                    max_callback_threshold=self.max_callback_threshold,
                )  # fmt: skip
                self._enqueue(owner, callback)
                if action == "Restore" and callback.succeeded and line is not None and line.nb_iot:
                    self._enqueue(owner, nidd_callback(callback, owner))
        return request_id

    def _enqueue(self, account: str, callback: CallbackRequest) -> None:
        listener = self.listeners.get((account, callback.service or "CarrierService"))
        if listener is not None:
            heapq.heappush(self._queue, (time.monotonic(), next(self._sequence), callback, listener))
            self._queued.notify_all()

    # Callbacks ----------------------------------------------------------------------------------

    def _deliver(self) -> None:
        session = requests.Session()
        while True:
            with self._queued:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = None if not self._queue else max(0.0, self._queue[0][0] - time.monotonic())
                    self._queued.wait(wait)
                if self._stopping:
                    return
                _, _, callback, listener = heapq.heappop(self._queue)
            count = (callback.callback_count or 0) + 1
            attempt = replace(
                callback, callback_count=count, username=listener.username or None, password=listener.password or None
            )
            if listener.api == "rest":
                body, content_type = render_rest_callback(attempt), "application/json"
            else:
                body, content_type = render_callback(attempt), CONTENT_TYPE
            try:
                response = session.post(
                    listener.url, data=body, headers={"Content-Type": content_type}, timeout=(2, 10)
                )
                acknowledged = 200 <= response.status_code < 300
            except requests.RequestException:
                acknowledged = False
            with self._queued:
                self.counters["callbacks_sent"] += 1
                if acknowledged:
                    self.counters["callbacks_acknowledged"] += 1
                elif count < self.max_callback_threshold:
                    due = time.monotonic() + self.callback_spacing
                    heapq.heappush(self._queue, (due, next(self._sequence), attempt, listener))
                    self._queued.notify_all()


def _handler_for(emulator: Emulator) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests and CLI
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/api/v2/"):
                self._reply(*emulator.soap.get(self.path))
            else:
                self._reply(*emulator.rest.handle("GET", self.path, self._headers(), b""))

        def do_DELETE(self) -> None:
            self._reply(*emulator.rest.handle("DELETE", self.path, self._headers(), b""))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, b"too large", "text/plain")
                self.close_connection = True
                return
            body = self.rfile.read(length)
            if self.path.startswith("/api/v2/"):
                self._reply(*emulator.soap.post(self.path, body))
            else:
                self._reply(*emulator.rest.handle("POST", self.path, self._headers(), body))

        def _headers(self) -> Dict[str, str]:
            return {name.lower(): value for name, value in self.headers.items()}

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
