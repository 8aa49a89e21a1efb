"""A UWS emulator on loopback: SessionService and CarrierService as our WSDL describes them, a
device inventory with the documented state machine, and real callbacks to registered listeners.

Faults are shaped like the real service's (``<Service>.<CODE>``, HTTP 500). Codes not in the
carrier's documentation are marked [inferred] where they are raised.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Sequence, Tuple

import requests
from lxml import etree

from .bindings import WSDL_FILE, resource_dir
from .callback_xml import render_callback
from .callbacks import CallbackFault, CallbackRequest, ReportedDevice, SuspendResult
from .devices import Device, DeviceIdentifier
from .errors import DocumentError, InputError
from .schemas import lxml_schema
from .selection import CustomField
from .wire import CONTENT_TYPE, MAX_DEVICES_PER_REQUEST, NS_CARRIER, NS_SOAP_ENV, NS_V2
from .xmlsafe import parse_untrusted

DEFAULT_ACCOUNT = "0000123456-00001"
ACTIVE, SUSPENDED = "Active", "Suspended"
_MAX_BODY = 8 * 1024 * 1024  # a 10,000-device request is about 2 MB


@dataclass
class EmulatedDevice:
    """One line in the emulator's inventory (mutable: its state changes)."""

    device: Device
    account: str = DEFAULT_ACCOUNT
    group: Optional[str] = None
    service_plan: str = "M2M Flex"
    custom_fields: Dict[str, str] = field(default_factory=dict)
    state: str = ACTIVE
    actions_today: int = 0
    suspended_days: int = 0


def generated_devices(count: int, *, account: str = DEFAULT_ACCOUNT, state: str = ACTIVE) -> List[EmulatedDevice]:
    """``count`` Active devices, each with an IMEI and an ICCID."""
    return [
        EmulatedDevice(
            Device.parse(f"IMEI:{350000000000000 + n}+ICCID:{89148000000000000000 + n}"), account, state=state
        )
        for n in range(count)
    ]


class _Fault(Exception):
    def __init__(self, service: str, code: str, message: str) -> None:
        super().__init__(message)
        self.faultcode = f"{service}.{code}"


@dataclass(frozen=True)
class Listener:
    url: str
    username: str = ""
    password: str = ""


class Emulator:
    """Start with ``with Emulator(devices=100) as emu:``; ``emu.base_url`` is what a UwsClient takes."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        devices: Sequence[EmulatedDevice] = (),
        users: Optional[Dict[str, str]] = None,
        session_idle: float = 20 * 60,
        daily_budget: int = 5,
        callback_spacing: float = 300.0,
        max_callback_threshold: int = 4,
        delivery_workers: int = 4,
    ) -> None:
        self.devices = list(devices)
        self._index: Dict[Tuple[str, str], EmulatedDevice] = {}
        for line in self.devices:
            for ident in line.device.identifiers:
                self._index[(ident.kind, ident.identifier.upper())] = line
        self.users = dict(users or {"uws-user": "uws-password"})
        self.session_idle = session_idle
        self.daily_budget = daily_budget
        self.callback_spacing = callback_spacing
        self.max_callback_threshold = max_callback_threshold
        self.listeners: Dict[str, Listener] = {}
        self.counters: Dict[str, int] = dict.fromkeys(
            ("logins", "failed_logins", "requests", "faults", "callbacks_sent", "callbacks_acknowledged"), 0
        )
        self._sessions: Dict[str, float] = {}
        self._failures: Dict[str, int] = {}
        self._lock = threading.RLock()
        self._queue: List[Tuple[float, int, CallbackRequest, Listener]] = []
        self._queued = threading.Condition(self._lock)
        self._sequence = itertools.count()
        self._stopping = False
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True, name="uws-emulator")]
        self._threads += [
            threading.Thread(target=self._deliver, daemon=True, name=f"uws-callbacks-{n}")
            for n in range(delivery_workers)
        ]

    @property
    def base_url(self) -> str:
        address = self._server.server_address
        return f"http://{address[0]!s}:{address[1]}/api/v2"

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

    def register_listener(self, account: str, url: str, username: str = "", password: str = "") -> None:
        """Where callbacks for ``account`` go (CarrierService)."""
        self.listeners[account] = Listener(url, username, password)

    def pending_callbacks(self) -> int:
        with self._lock:
            return len(self._queue)

    # SOAP -----------------------------------------------------------------------------------

    def handle(self, path: str, body: bytes) -> Tuple[int, bytes]:
        service = path.rstrip("/").rpartition("/")[2].removesuffix(".svc") if path.endswith(".svc") else ""
        if service not in ("SessionService", "CarrierService"):
            return 404, b"no such service"
        with self._lock:
            self.counters["requests"] += 1
        try:
            try:
                root = parse_untrusted(body, max_bytes=_MAX_BODY, what="request")
            except DocumentError as exc:
                raise _Fault(service, "DeserializationFailed", str(exc)) from None
            schema = lxml_schema()
            if not schema.validate(root):
                # The first complaint names the element and line, as WCF's message does.
                first = next(iter(schema.error_log), None)  # type: ignore[call-overload]  # lxml-stubs
                detail = str(first) if first is not None else "the request does not match the contract"
                raise _Fault(service, "DeserializationFailed", detail)
            payload = root.find(f"{{{NS_SOAP_ENV}}}Body")[0]  # type: ignore[index]
            operation = etree.QName(payload).localname
            token = root.findtext(f"{{{NS_SOAP_ENV}}}Header/{{{NS_V2}}}token")
            if (service, operation) == ("SessionService", "LogIn"):
                return 200, self._login(payload)
            if (service, operation) == ("SessionService", "LogOut"):
                self._check_session(service, token)
                with self._lock:
                    self._sessions.pop(token or "", None)
                return 200, _envelope(f'<LogOutResponse xmlns="{NS_V2}"/>')
            if (service, operation) == ("CarrierService", "ChangeDeviceState"):
                self._check_session(service, token)
                return 200, self._change_device_state(payload[0])
            raise _Fault(service, "INPUT_INVALID.RequestUndefined", f"{operation} is not a {service} operation")
        except _Fault as fault:
            with self._lock:
                self.counters["faults"] += 1
            text = etree.Element("faultstring")
            text.text = str(fault)
            code = etree.Element("faultcode")
            code.text = fault.faultcode
            detail = etree.tostring(code, encoding="unicode") + etree.tostring(text, encoding="unicode")
            return 500, _envelope(f"<s:Fault>{detail}</s:Fault>")

    def _login(self, payload: etree._Element) -> bytes:
        username = payload.findtext("{*}Input/{*}Username") or ""
        password = payload.findtext("{*}Input/{*}Password") or ""
        with self._lock:
            if self._failures.get(username, 0) >= 5:
                raise _Fault(
                    "SessionService", "REQUEST_FAILED.AccountLocked", "account locked after 5 failed logins"
                )  # [inferred]
            if self.users.get(username) != password:
                self._failures[username] = self._failures.get(username, 0) + 1
                self.counters["failed_logins"] += 1
                raise _Fault(
                    "SessionService", "REQUEST_FAILED.InvalidCredentials", "wrong username or password"
                )  # [inferred]
            self._failures[username] = 0
            token = uuid.uuid4().hex
            self._sessions[token] = time.monotonic()
            self.counters["logins"] += 1
        return _envelope(
            f'<LogInResponse xmlns="{NS_V2}"><Output><SessionToken>{token}</SessionToken></Output></LogInResponse>'
        )

    def _check_session(self, service: str, token: Optional[str]) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._sessions.get(token or "")
            if last is None:
                raise _Fault(service, "REQUEST_FAILED.SessionToken.Invalid", "unknown session token")  # [inferred]
            if now - last > self.session_idle:
                del self._sessions[token or ""]
                raise _Fault(service, "REQUEST_FAILED.SessionToken.Expired", "the session token has expired")
            self._sessions[token or ""] = now

    def _change_device_state(self, request: etree._Element) -> bytes:
        fields = {etree.QName(child).localname: child for child in request}
        actions = [name for name in ("Activate", "Deactivate", "Reconnect", "Restore", "Suspend") if name in fields]
        if len(actions) != 1:
            raise _Fault("CarrierService", "INPUT_INVALID.RequestUndefined", "send exactly one action element")
        action = actions[0]
        if action not in ("Restore", "Suspend"):
            raise _Fault("CarrierService", "INPUT_INVALID.RequestUndefined", f"the emulator does not model {action}")
        targets = self._select(fields)
        request_id = str(uuid.uuid4())
        with self._queued:
            for given, line in targets:
                callback = self._apply(request_id, action, given, line)
                listener = self.listeners.get(line.account if line else DEFAULT_ACCOUNT)
                if listener is not None:
                    heapq.heappush(self._queue, (time.monotonic(), next(self._sequence), callback, listener))
            self._queued.notify_all()
        return _envelope(
            f'<ChangeDeviceStateResponse xmlns="{NS_V2}"><Output xmlns:a="{NS_CARRIER}">'
            f"<a:RequestId>{request_id}</a:RequestId></Output></ChangeDeviceStateResponse>"
        )

    def _select(
        self, fields: Dict[str, etree._Element]
    ) -> List[Tuple[Tuple[DeviceIdentifier, ...], Optional[EmulatedDevice]]]:
        query = [
            name
            for name in ("AccountName", "DeviceGroupName", "DeviceServicePlanFilter", "DeviceCustomFieldFilter")
            if name in fields
        ]
        if "DeviceList" in fields:
            if query:
                raise _Fault("CarrierService", "INPUT_INVALID.RequestUndefined", f"DeviceList with {', '.join(query)}")
            collections = list(fields["DeviceList"])
            if len(collections) > MAX_DEVICES_PER_REQUEST:
                raise _Fault("CarrierService", "INPUT_INVALID.MaxRequestsExceeded", f"{len(collections)} devices")
            out = []
            for collection in collections:
                given = []
                for pair in collection.iterfind("{*}DeviceIdentifiers/{*}DeviceIdentifier"):
                    try:
                        given.append(
                            DeviceIdentifier(pair.findtext("{*}Kind") or "", pair.findtext("{*}Identifier") or "")
                        )
                    except InputError as exc:
                        code = "Kind" if exc.field == "kind" else "Identifier"
                        raise _Fault("CarrierService", f"INPUT_INVALID.Device.{code}.Invalid", str(exc)) from None
                line = next(
                    (
                        self._index.get((i.kind, i.identifier.upper()))
                        for i in given
                        if (i.kind, i.identifier.upper()) in self._index
                    ),
                    None,
                )
                out.append((tuple(given), line))
            return out
        account = fields["AccountName"].text if "AccountName" in fields else None
        group = fields["DeviceGroupName"].text if "DeviceGroupName" in fields else None
        if account is None and group is None:
            raise _Fault(
                "CarrierService", "INPUT_INVALID.RequestUndefined", "no DeviceList, AccountName or DeviceGroupName"
            )
        if account is not None and not any(line.account == account for line in self.devices):
            raise _Fault("CarrierService", "REQUEST_FAILED.AccountNotFound", f"no account {account}")
        plan = fields["DeviceServicePlanFilter"].text if "DeviceServicePlanFilter" in fields else None
        custom = None
        if "DeviceCustomFieldFilter" in fields:
            element = fields["DeviceCustomFieldFilter"]
            try:
                custom = CustomField(element.findtext("{*}Name") or "", element.findtext("{*}Value") or "")
            except InputError as exc:
                code = (
                    "CustomField.InvalidName"
                    if "name" in exc.field
                    else "CustomField.TooLong"
                    if "characters," in exc.problem
                    else "Request.InvalidCharacter"
                )
                raise _Fault("CarrierService", f"INPUT_INVALID.{code}", str(exc)) from None
        return [
            (line.device.identifiers, line)
            for line in self.devices
            if (account is None or line.account == account)
            and (group is None or line.group == group)
            and (plan is None or line.service_plan == plan)
            and (custom is None or line.custom_fields.get(custom.name, "").lower() == custom.value.lower())
        ]

    def _apply(
        self, request_id: str, action: str, given: Tuple[DeviceIdentifier, ...], line: Optional[EmulatedDevice]
    ) -> CallbackRequest:
        identifiers = line.device.identifiers if line else given
        base = CallbackRequest(
            request_id=request_id,
            devices=tuple(ReportedDevice(i.kind, i.identifier) for i in identifiers),
            service="CarrierService",
            action=action,
            max_callback_threshold=self.max_callback_threshold,
        )
        if line is None:
            return replace(
                base, status="Failed", fault=CallbackFault("REQUEST_FAILED.DeviceNotFound", "device not found")
            )
        needed = SUSPENDED if action == "Restore" else ACTIVE
        if line.state != needed:
            fault = CallbackFault(
                "INPUT_INVALID.DeviceState.Invalid", f"{action} needs the device {needed}; it is {line.state}"
            )
            return replace(base, status="Failed", fault=fault)
        if line.actions_today >= self.daily_budget:
            fault = CallbackFault(
                "REQUEST_FAILED.ProvisioningLimitExceeded", f"{self.daily_budget} actions a day"
            )  # [inferred]
            return replace(base, status="Failed", fault=fault)
        line.actions_today += 1
        line.state = ACTIVE if action == "Restore" else SUSPENDED
        if action == "Restore":
            return replace(base, status="Success")
        allowed = 180
        suspend = SuspendResult(
            dt.date.today() + dt.timedelta(days=allowed - line.suspended_days),
            allowed,
            line.suspended_days,
            allowed - line.suspended_days,
        )
        return replace(
            base, status="Success", suspend=suspend, comment="Device Suspended - Applicable Charges Will Continue"
        )

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
            try:
                response = session.post(
                    listener.url, data=render_callback(attempt), headers={"Content-Type": CONTENT_TYPE}, timeout=(2, 10)
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


def _envelope(body: str) -> bytes:
    return f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


def _handler_for(emulator: Emulator) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests and CLI
            pass

        def do_GET(self) -> None:
            name = self.path.partition("?")[0].rpartition("/")[2]
            if self.path.endswith("?wsdl"):
                name = WSDL_FILE
            target = resource_dir() / name
            if not name.endswith((".wsdl", ".xsd")) or not target.is_file():
                self._reply(404, b"not found", "text/plain")
                return
            data = target.read_bytes()
            if name == WSDL_FILE:  # point the service addresses here
                data = data.replace(b"https://uws.apps.nphase.com/api/v2", emulator.base_url.encode())
            self._reply(200, data, "text/xml; charset=utf-8")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._reply(413, b"too large", "text/plain")
                self.close_connection = True
                return
            status, body = emulator.handle(self.path, self.rfile.read(length))
            self._reply(status, body, CONTENT_TYPE)

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
