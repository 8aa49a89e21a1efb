"""The emulated carrier's state (:class:`Carrier`), without HTTP: one inventory under the documented
state machine, the users (five failed logins lock an account [doc]) and sessions (20 minutes idle
[doc]) both fronts share, the registered listeners, and real callbacks re-sent until acknowledged.
Codes not in the carrier's documentation are marked [inferred] where they are raised.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from uws_adapter.callbacks.rest_json import render_rest_callback
from uws_adapter.callbacks.uws_render import callback_headers, check_soap_action, render_callback
from uws_adapter.emulator.lines import (
    ACTIVE,
    DEFAULT_ACCOUNT,
    SUSPENDED,
    EmulatedDevice,
    change_state,
    generated_devices,
    nidd_callback,
    resume_profile,
)
from uws_adapter.errors import Code, InputError, Refused, kind_of, shown
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import DeviceIdentifier, as_tuple_of, identity
from uws_adapter.model.selection import CustomField
from uws_adapter.model.text import xml_text
from uws_adapter.provisioning.engine import Engine, Outgoing, Stakes
from uws_adapter.provisioning.options import CALLBACK_OPTIONS, check_seconds
from uws_adapter.provisioning.urls import LISTENER_URL_FIX, check_url
from uws_adapter.redaction import masked_url
from uws_adapter.soap.sessions import IdleSessions, LoginThrottle, LoginVerdict, known_login, login_refusal
from uws_adapter.wire import MAX_DEVICES_PER_REQUEST

__all__ = [
    "ACTIVE", "DEFAULT_ACCOUNT", "MAX_BODY", "SUSPENDED", "Carrier", "EmulatedDevice", "EmulatorFault", "Listener",
    "generated_devices", "listener_url_problem",
]  # fmt: skip
MAX_BODY = 8 * 1024 * 1024  # a 10,000-device request is about 2 MB
_log = logging.getLogger("uws_adapter.emulator")


class EmulatorFault(Refused):
    """A refusal, rendered by each front in its own way (SOAP fault, REST errorCode)."""

    def __init__(self, code: str, message: str, *, http_status: int = 400) -> None:
        super().__init__(code, message)
        self.http_status = http_status


@dataclass(frozen=True)
class Listener:
    """Where callbacks of one account and service go; ``api`` is how they are written;
    ``soap_action`` the SOAPAction header of each SOAP callback (None: none; see
    :func:`~uws_adapter.callbacks.uws_render.callback_headers`)."""

    url: str
    username: str = ""
    password: str = ""
    api: str = "soap"
    soap_action: Optional[str] = None


Target = Tuple[Tuple[DeviceIdentifier, ...], Optional[EmulatedDevice]]


def _logins(field: str, given: object, default: Dict[str, str]) -> Dict[str, str]:
    """``given`` (name -> password or secret) as a dict, ``default`` when None or empty."""
    if given is None:
        return dict(default)
    if not isinstance(given, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in given.items()):
        raise InputError(
            field, "expected a dict of names to passwords (strings)", f"pass e.g. {field}={{'name': '...'}}"
        )
    return dict(given or default)


class Carrier:
    """The carrier's state and behaviour, without HTTP: inventory, state machine, users, sessions,
    listeners and callback delivery (``delivery_workers`` threads, started by :meth:`start`)."""

    def __init__(
        self,
        *,
        devices: Sequence[EmulatedDevice] = (),
        users: Optional[Dict[str, str]] = None,
        clients: Optional[Dict[str, str]] = None,
        session_idle: float = 20 * 60,
        bearer_lifetime: float = 3600.0,
        daily_budget: int = 5,
        callback_spacing: float = 300.0,
        max_callback_threshold: int = 4,
        delivery_workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.devices = list(as_tuple_of(devices, EmulatedDevice, "devices", "give EmulatedDevice objects"))
        self._index: Dict[str, EmulatedDevice] = {}
        for line in self.devices:
            for ident in line.device.identifiers:
                self._index[identity(ident.kind, ident.identifier)] = line
        self.users = _logins("users", users, {"uws-user": "uws-password"})
        self.clients = _logins("clients", clients, {"ts-client": "ts-secret"})
        for field, count in (
            ("daily_budget", daily_budget), ("max_callback_threshold", max_callback_threshold),
            ("delivery_workers", delivery_workers),
        ):  # fmt: skip
            low = 0 if field == "daily_budget" else 1
            if isinstance(count, bool) or not isinstance(count, int) or count < low:
                raise InputError(field, f"{shown(count)} is not a whole number of {low} or more", "give e.g. 4")
        self.bearer_lifetime = check_seconds("bearer_lifetime", bearer_lifetime, "3600")
        self.daily_budget = daily_budget
        # Waited for by the delivery thread: past a year, a raw OverflowError ended it (no more callbacks).
        self.callback_spacing = check_seconds("callback_spacing", callback_spacing, "300")
        self.max_callback_threshold = max_callback_threshold
        self.listeners: Dict[Tuple[str, str], Listener] = {}
        self.counters: Dict[str, int] = dict.fromkeys(
            ("logins", "failed_logins", "requests", "faults", "callbacks_sent", "callbacks_acknowledged",
             "oauth_tokens", "rest_requests"), 0,
        )  # fmt: skip
        self.clock = clock  # times sessions and bearer tokens; callback spacing is real time
        self.sessions = IdleSessions(check_seconds("session_idle", session_idle, "1200"), clock)
        # UWS locks an account after five failed logins in a row [doc]: keyed by name, for good.
        self._logins = LoginThrottle(first_delay=float("inf"), max_delay=None, clock=clock)
        self.lock = threading.RLock()
        self._queue: List[Tuple[float, int, CallbackRequest, Listener]] = []
        self._queued = threading.Condition(self.lock)
        self._sequence = itertools.count()
        self._stopping = False
        #: Listener URLs that refused a callback's credentials (the first refusal is a warning).
        self._refused_by: Set[str] = set()
        self._threads = [
            threading.Thread(target=self._deliver, daemon=True, name=f"uws-callbacks-{n}")
            for n in range(delivery_workers)
        ]

    def start(self) -> Carrier:
        """Start delivering callbacks."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop delivering callbacks (those queued are dropped)."""
        with self._queued:
            self._stopping = True
            self._queued.notify_all()

    def count(self, counter: str) -> None:
        """One more of ``counter`` (see :attr:`counters`)."""
        with self.lock:
            self.counters[counter] += 1

    def register_listener(
        self, account: str, url: str, username: str = "", password: str = "", *, service: str = "CarrierService",
        soap_action: Optional[str] = None,
    ) -> None:  # fmt: skip
        """Where ``service`` callbacks for ``account`` go, registered the UWS way: SOAP documents,
        each sent with ``soap_action`` as its SOAPAction header (None, the default: no header).
        (UWS's CallbackRegistrationService is not emulated; this stands in for it.)
        :class:`.InputError` for a URL callbacks cannot be sent to, a SOAPAction a header cannot hold,
        or a login the callbacks' SOAP documents cannot carry (each delivery failed on it)."""
        check_url(url, "listener url", fix=LISTENER_URL_FIX)
        check_soap_action(soap_action)
        for field, value in (("listener username", username), ("listener password", password)):
            if not isinstance(value, str):  # not shown: it may be a password
                raise InputError(field, f"expected a string, got {kind_of(value)}", 'give text, or "" for none')
            xml_text(field, value)
        with self.lock:
            existing = self.listeners.get((account, service))
            if existing is not None and existing.api == "rest":
                raise InputError(
                    "listener", f"{service} of {account} has a listener registered over REST",
                    "remove it through the REST API first (uws-adapter listeners remove)",
                )  # fmt: skip
            self.listeners[(account, service)] = Listener(url, username, password, "soap", soap_action)

    def unregister_listener(self, account: str, service: str = "CarrierService") -> None:
        """Remove a listener registered the UWS way, as UWS's unregistration would (one registered
        over REST is the REST API's to remove)."""
        with self.lock:
            existing = self.listeners.get((account, service))
            if existing is not None and existing.api == "soap":
                del self.listeners[(account, service)]

    # Users and sessions (both APIs) --------------------------------------------------------

    def open_session(self, username: str, password: str) -> str:
        verdict, wait = self._logins.attempt(username, known_login(self.users, username, password))
        if verdict is not LoginVerdict.THROTTLED:  # refused unseen: neither a login nor a failure
            self.count("logins" if verdict is LoginVerdict.OK else "failed_logins")
        refused = login_refusal(verdict, wait if verdict is LoginVerdict.THROTTLED else 0.0)
        if refused is not None:
            raise EmulatorFault(refused.code, str(refused))
        return self.sessions.open()

    def touch_session(self, token: Optional[str]) -> None:
        self.sessions.touch(token)

    def close_session(self, token: Optional[str]) -> None:
        self.sessions.close(token)

    # Inventory ------------------------------------------------------------------------------

    def find(self, given: Sequence[DeviceIdentifier]) -> Optional[EmulatedDevice]:
        for ident in given:
            line = self._index.get(identity(ident.kind, ident.identifier))
            if line is not None:
                return line
        return None

    def listed(self, devices: Sequence[Tuple[DeviceIdentifier, ...]]) -> List[Target]:
        if len(devices) > MAX_DEVICES_PER_REQUEST:
            raise EmulatorFault(Code.MAX_REQUESTS_EXCEEDED, f"{len(devices)} devices")
        return [(given, self.find(given)) for given in devices]

    def query(
        self, account: Optional[str], group: Optional[str], plan: Optional[str], custom: Sequence[CustomField]
    ) -> List[Target]:
        if account is None and group is None and plan is None and not custom:
            # REST takes a service plan or custom fields alone [doc]; the SOAP front refused such a
            # query before it came here (UWS needs an account or a group).
            raise EmulatorFault(Code.REQUEST_UNDEFINED, "no devices, account, group or filter")
        self.check_account(account)
        return [(line.device.identifiers, line) for line in self.devices if line.matches(account, group, plan, custom)]

    def check_account(self, account: Optional[str]) -> None:
        """Refuse an account none of the lines is in (both fronts, the listing too)."""
        if account is not None and not any(line.account == account for line in self.devices):
            raise EmulatorFault(Code.ACCOUNT_NOT_FOUND, f"no account {account}")

    def provision(self, action: str, targets: Sequence[Target], *, account: Optional[str] = None) -> str:
        """Apply ``action`` to every target and queue one callback per device; the RequestId."""
        request_id = str(uuid.uuid4())
        unheard: Dict[Tuple[str, str], int] = {}
        with self._queued:
            for given, line in targets:
                owner = line.account if line else (account or DEFAULT_ACCOUNT)
                if action == "ProfileResume":
                    self._enqueue(
                        owner,
                        resume_profile(request_id, given, line, max_callback_threshold=self.max_callback_threshold),
                        unheard,
                    )
                    continue
                callback = change_state(
                    request_id, action, given, line, daily_budget=self.daily_budget,
                    max_callback_threshold=self.max_callback_threshold,
                )  # fmt: skip
                self._enqueue(owner, callback, unheard)
                if action == "Restore" and callback.succeeded and line is not None and line.nb_iot:
                    self._enqueue(owner, nidd_callback(callback, owner), unheard)
        for (account, service), count in sorted(unheard.items()):
            _log.warning(
                "request %s: %d %s callback(s) not sent: no listener registered for account %r",
                request_id, count, service, account,
            )  # fmt: skip
        return request_id

    def _enqueue(self, account: str, callback: CallbackRequest, unheard: Dict[Tuple[str, str], int]) -> None:
        service = callback.service or "CarrierService"
        listener = self.listeners.get((account, service))
        if listener is not None:
            heapq.heappush(self._queue, (time.monotonic(), next(self._sequence), callback, listener))
            self._queued.notify_all()
        else:  # counted, and logged once per request
            unheard[(account, service)] = unheard.get((account, service), 0) + 1

    # Callbacks ----------------------------------------------------------------------------------

    def _deliver(self) -> None:
        # No redirects, a deadline and an answer cap, as the carrier's.
        engine = Engine(CALLBACK_OPTIONS, urls="the listener URL registered for the account", limits=_CALLBACK_LIMITS)
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
                status = self._send(engine, attempt, listener)
                acknowledged = 200 <= status < 300
                if not acknowledged:
                    _log.warning(
                        "callback %s (attempt %d of %d) to %s answered HTTP %d",
                        attempt.request_id, count, self.max_callback_threshold, masked_url(listener.url), status,
                    )  # fmt: skip
                    self._refused(attempt, listener, status)
            except Exception as exc:  # any failure (a URL nothing can be sent to, a body that cannot be
                # written) is one unacknowledged attempt: this thread must go on delivering the others.
                # The engine's messages show the URL masked; a body's error holds no credential.
                _log.warning(
                    "callback %s (attempt %d of %d) to %s not delivered: %s: %s",
                    attempt.request_id, count, self.max_callback_threshold, masked_url(listener.url),
                    type(exc).__name__, str(exc)[:300],
                )  # fmt: skip
                acknowledged = False
            with self._queued:
                self.counters["callbacks_sent"] += 1
                if acknowledged:
                    self.counters["callbacks_acknowledged"] += 1
                elif count < self.max_callback_threshold:
                    due = time.monotonic() + self.callback_spacing
                    heapq.heappush(self._queue, (due, next(self._sequence), attempt, listener))
                    self._queued.notify_all()
                else:
                    _log.warning(
                        "callback %s to %s dropped after %d attempts",
                        attempt.request_id,
                        masked_url(listener.url),
                        count,
                    )

    def _refused(self, attempt: CallbackRequest, listener: Listener, status: int) -> None:
        """A listener that answers 401/403 does not take the credentials registered with it: said
        with the fix, once per listener (never the credentials themselves)."""
        if status not in (401, 403):
            return
        with self.lock:
            if listener.url in self._refused_by:
                return
            self._refused_by.add(listener.url)
        _log.warning(
            "listener %s answered %d to callback %s: it refuses the credentials registered with it (%s); give "
            "the listener's with emulator --listener-username and --listener-password (or UWS_CALLBACK_USERNAME "
            "/ UWS_CALLBACK_PASSWORD)",
            masked_url(listener.url), status, attempt.request_id,
            f"username {listener.username!r}" if listener.username else "none",
        )  # fmt: skip

    @staticmethod
    def _send(engine: Engine, attempt: CallbackRequest, listener: Listener) -> int:
        if listener.api == "rest":
            body, headers = render_rest_callback(attempt), {"Content-Type": "application/json"}
        else:
            body, headers = render_callback(attempt), callback_headers(listener.soap_action)
        request = Outgoing("POST", listener.url, "callback", tuple(headers.items()), body, stakes=Stakes.REPEATABLE)
        return engine.send(request).status_code


#: What to do when a callback's bounds (CALLBACK_OPTIONS) end an exchange: the listener's side.
_CALLBACK_LIMITS = (
    "a listener must acknowledge a callback promptly, as the carrier expects",
    "a listener's acknowledgement is a short document: check what answers at the listener URL",
)


def listener_url_problem(url: object) -> Optional[str]:
    """Why callbacks cannot be sent to ``url`` (None when they can), by the one URL check."""
    try:
        check_url(url, "listener url")
    except InputError as exc:
        return exc.problem
    return None
