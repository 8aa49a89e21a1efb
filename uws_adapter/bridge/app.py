"""The migration bridge: a UWS SOAP façade in front of the REST API, for legacy systems that
cannot change their code.

- Legacy SOAP clients call our WSDL (SessionService LogIn/LogOut, CarrierService
  ChangeDeviceState) on the bridge; each call is carried out on the REST API with the configured
  REST credentials. The REST requestId comes back as the SOAP RequestId; REST errors come back as
  SOAP faults with the same code (``CarrierService.<errorCode>``).
- The bridge is the REST callback listener: each JSON callback is stored durably (the receiver:
  authenticated, de-duplicated, acknowledged only after commit), then relayed to the legacy
  system's SOAP listener as a UWS ``CallbackRequest`` by a receiver handler, which the store
  re-runs with backoff until the legacy listener answers 2xx, counting ``CallbackCount`` up.
  Nothing is lost while the legacy listener is down; nothing is relayed again once acknowledged.
  A callback that can never be written as SOAP is given up (``HandlerGaveUp``), not retried.
- Legacy sessions live in the store (:mod:`uws_adapter.bridge.sessions`), so a restart does not
  end them; failed LogIns are throttled per client address in memory; the WSDL's address never
  comes from an unchecked Host (:mod:`uws_adapter.bridge.address`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import requests

from uws_adapter import metrics
from uws_adapter.bridge.address import checked_names, soap_address
from uws_adapter.bridge.sessions import DEFAULT_LOCKOUT, StoredSessions
from uws_adapter.callbacks.uws_render import callback_headers, check_soap_action, render_callback
from uws_adapter.edge import SOAP_PREFIX, Router, StartResponse, WsgiBody
from uws_adapter.errors import (
    Code,
    HandlerGaveUp,
    InputError,
    OutcomeUnknown,
    Refused,
    RelayRefused,
    ServiceFault,
    TransportError,
)
from uws_adapter.model.actions import Action
from uws_adapter.model.selection import Selection
from uws_adapter.model.text import decoded_text, xml_text
from uws_adapter.provisioning.engine import Answer, Engine, NotUsable, Outgoing, Stakes
from uws_adapter.provisioning.options import RELAY_OPTIONS, SendOptions
from uws_adapter.provisioning.sent import SentRequest
from uws_adapter.provisioning.urls import check_url
from uws_adapter.receiver.app import Receiver
from uws_adapter.receiver.handlers import DEFAULT_HANDLER_LEASE, DEFAULT_HANDLER_WORKERS
from uws_adapter.rest.client import RestClient
from uws_adapter.soap.server import SoapServer
from uws_adapter.soap.sessions import client_address, known_login, trusted_networks
from uws_adapter.store.interfaces import BridgeStore, StoredEvent
from uws_adapter.xmlsafe import MAX_BYTES

#: A 10,000-device ChangeDeviceState is about 2 MB.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
RELAY_HANDLER = "legacy-relay"
_log = logging.getLogger("uws_adapter.bridge")
_UNEXPECTED = Code.UNEXPECTED  # for answers the REST side lost
#: What to do when the relay's own bounds end an exchange: they are not the client's settings.
RELAY_LIMITS = (
    "check that the legacy listener acknowledges promptly (the relay is sent again later, with backoff)",
    "check what answers at the legacy listener URL: an acknowledgement is a short document",
)


class _Acknowledged:
    """The relay's codec: a 2xx is the listener's acknowledgement; anything else is refused (the
    handler queue sends it again later, with backoff)."""

    def read(self, answer: Answer) -> Union[NotUsable, None]:
        if 200 <= answer.status_code < 300:
            return None
        raise RelayRefused(f"the legacy listener answered HTTP {answer.status_code}", http_status=answer.status_code)


class LegacyRelay:
    """A receiver handler that POSTs each stored callback to the legacy SOAP listener ``url``,
    with the credentials the legacy system registered, as UWS would, and ``soap_action`` as its
    SOAPAction header (None, the default: no header; see
    :func:`~uws_adapter.callbacks.uws_render.callback_headers`). Sent through the engine with
    ``options`` (default :data:`~uws_adapter.provisioning.options.RELAY_OPTIONS`: no redirects, a
    30 s deadline, a 64 KiB answer cap, no retry of its own — the handler queue retries);
    ``timeout=`` is the older way to set its (connect, read) seconds."""

    def __init__(
        self,
        url: str,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Optional[Tuple[float, float]] = None,
        session: Optional[requests.Session] = None,
        options: SendOptions = RELAY_OPTIONS,
        soap_action: Optional[str] = None,
    ) -> None:
        self.url = check_url(url, "legacy listener", fix="give the legacy listener's http(s) URL")
        self.username = username
        self.password = password
        # Credentials XML cannot carry would make every relay unrenderable: refuse them now.
        for field, value in (("legacy listener username", username), ("legacy listener password", password)):
            if value is not None:
                xml_text(field, value)
        self.engine = Engine(
            options.with_(timeout=timeout), session=session, urls="the legacy listener URL (--legacy-listener)",
            limits=RELAY_LIMITS,
        )  # fmt: skip
        self.headers = callback_headers(check_soap_action(soap_action, "legacy listener SOAPAction"))

    @property
    def deadline(self) -> float:
        """Seconds one relay may take in all: the receiver checks it fits well inside its lease."""
        return self.engine.options.deadline

    def __call__(self, event: StoredEvent) -> None:
        callback = event.callback
        document = replace(
            callback,
            username=self.username,
            password=self.password,
            callback_count=event.handler_attempts + 1,  # the carrier's meaning: sends of this message so far
            max_callback_threshold=callback.max_callback_threshold or 4,
        )
        try:
            body = render_callback(document)
        except ValueError as exc:  # InputError included: no number of retries makes it renderable
            raise HandlerGaveUp(f"the callback cannot be written as a UWS SOAP callback: {exc}") from None
        self.engine.call(
            Outgoing(
                "POST", self.url, "callback relay", tuple(self.headers.items()), body,
                stakes=Stakes.REPEATABLE, describe=lambda: SentRequest("POST", self.url, "callback relay"),
            ),
            _ACKNOWLEDGED,
        )  # fmt: skip

    def close(self) -> None:
        self.engine.close()


_ACKNOWLEDGED = _Acknowledged()


class Bridge:
    """WSGI application: the SOAP façade under ``/api/v2/`` and the REST callback listener on
    every other path. ``legacy_users`` maps each legacy login to its password; every legacy login
    is carried out with ``rest``'s credentials.

    Legacy sessions are kept in ``store`` (see :mod:`uws_adapter.bridge.sessions`); an address
    that keeps failing LogIns waits a doubling delay of at most ``lockout`` seconds (None: no bound);
    ``clock`` is the wall clock they are timed by. Behind a reverse proxy, name it in
    ``trusted_proxies`` (addresses or networks): a request from one is keyed by the address its
    ``X-Forwarded-For`` gives (:func:`~uws_adapter.soap.sessions.client_address`), else every system
    behind it would share one delay. The WSDL's address is
    ``public_url``, else the request's Host when it is one of ``allowed_hosts`` (default: the
    loopback names of the port it came in on; see :meth:`allow_hosts`)."""

    def __init__(
        self,
        rest: RestClient,
        store: BridgeStore,
        *,
        legacy_users: Mapping[str, str],
        relay: Optional[LegacyRelay] = None,
        callback_username: Optional[str] = None,
        callback_password: Optional[str] = None,
        session_idle: float = 20 * 60,
        handler_backoff: float = 5.0,
        handler_lease: float = DEFAULT_HANDLER_LEASE,
        handler_workers: int = DEFAULT_HANDLER_WORKERS,
        max_callback_bytes: int = MAX_BYTES,
        public_url: Optional[str] = None,
        allowed_hosts: Optional[Sequence[str]] = None,
        lockout: Optional[float] = DEFAULT_LOCKOUT,
        clock: Callable[[], float] = time.time,
        repair: bool = False,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        if not legacy_users or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in legacy_users.items()
        ):
            raise InputError(
                "legacy_users", "no legacy login with a password", "give NAME:PASSWORD for the legacy system"
            )
        for name, password in legacy_users.items():
            decoded_text("legacy_users", name)
            decoded_text(f"legacy_users[{name!r}]", password)
        for field, value in (("callback_username", callback_username), ("callback_password", callback_password)):
            if isinstance(value, str):
                decoded_text(field, value)
        self.rest = rest
        self.store = store
        self.legacy_users = dict(legacy_users)
        self.relay = relay
        self.callback_username = callback_username
        self.callback_password = callback_password
        self.public_url = public_url.rstrip("/") if public_url else None
        self.receiver = Receiver(
            store, username=callback_username, password=callback_password, max_body=max_callback_bytes,
            handlers={RELAY_HANDLER: relay} if relay is not None else {}, handler_backoff=handler_backoff,
            handler_lease=handler_lease, handler_workers=handler_workers,
            repair=repair,
        )  # fmt: skip
        self.sessions = StoredSessions(store, idle=session_idle, lockout=lockout, clock=clock)
        self.allowed_hosts: Optional[Tuple[str, ...]] = None
        if allowed_hosts is not None:
            self.allow_hosts(allowed_hosts)
        self._lock = threading.Lock()
        # Per serving thread: what records the request this thread's call sent (see __call__).
        self._unrecorded = threading.local()
        self.counters: Dict[str, int] = {"logins": 0, "requests": 0, "faults": 0}
        self.trusted_proxies = proxies = trusted_networks(trusted_proxies, "trusted_proxies")
        self.soap = SoapServer(
            self, address=self._address, max_body=MAX_REQUEST_BYTES, count=self._count, refusal=_refusal,
            client=lambda environ: client_address(
                str(environ.get("REMOTE_ADDR") or ""), environ.get("HTTP_X_FORWARDED_FOR"), proxies
            ),
        )  # fmt: skip
        self._router = Router([(SOAP_PREFIX, self.soap)], self.receiver)

    def close(self) -> None:
        self.receiver.close()

    def allow_hosts(self, names: Sequence[str]) -> None:
        """The Host values (``name:port``) whose name may go into the WSDL when there is no
        ``public_url``; e.g. :func:`~uws_adapter.bridge.address.listen_names` once the port is known."""
        checked = checked_names(names)
        if not checked:
            raise InputError("allowed hosts", "none given", "give at least one NAME:PORT")
        self.allowed_hosts = checked

    def register(self, account: str, callback_url: str, services: Sequence[str] = ("CarrierService",)) -> None:
        """Register the bridge as the REST listener of ``services`` for ``account``."""
        for service in services:
            self.rest.register_callback(
                account, service, callback_url, username=self.callback_username, password=self.callback_password
            )

    def server_options(self, **options: Any) -> Dict[str, Any]:
        """waitress options: the body cap covers the largest SOAP request. With trusted proxies,
        waitress keeps ``X-Forwarded-For`` for us (it drops it from anyone it was not told to
        trust; its own proxy support takes one address, not networks)."""
        kept = {"clear_untrusted_proxy_headers": False} if self.trusted_proxies else {}
        return {"max_request_body_size": MAX_REQUEST_BYTES, "ident": "uws-adapter-bridge", **kept, **options}

    # WSGI --------------------------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # A ChangeDeviceState's record under its RequestId is written once the answer has gone
        # out (the server asks for the body's end after sending it), not before: the reservation
        # already counts its lines, so the budget is the same either way, and the legacy client
        # need not wait for the write (issue 19.3). Written whatever happens to the answer.
        pending: List[Callable[[], None]] = []
        self._unrecorded.pending = pending
        try:
            body = self._router(environ, start_response)
        except BaseException:
            _recorded(pending)
            raise
        finally:
            self._unrecorded.pending = None
        return body if not pending else _ThenRecord(body, pending)

    def _address(self, environ: Mapping[str, Any]) -> str:
        return soap_address(environ, public_url=self.public_url, allowed=self.allowed_hosts)  # HostRefused: 400

    def _count(self, counter: str) -> None:
        with self._lock:
            self.counters[counter] += 1
        metrics.bridge_call(counter)

    # The UWS operations, served by self.soap (a uws_adapter.soap.server.UwsOperations) -----------------------

    def check_session(self, token: Optional[str]) -> None:
        self.sessions.touch(token)

    def log_out(self, token: Optional[str]) -> None:
        self.sessions.close(token)

    def change_device_state(self, action: Action, selection: Selection) -> str:
        request_id, record = self.rest.send_change(action, selection)
        pending: Optional[List[Callable[[], None]]] = getattr(self._unrecorded, "pending", None)
        if pending is None:  # called directly, not while serving a request: recorded now
            record()
        else:
            pending.append(record)
        return request_id

    def log_in(self, username: str, password: str, client: str) -> str:
        # Wrong, or from an address that must wait: a fault before anything reaches REST, the
        # same whether the name exists or not.
        self.sessions.check_login(client, matched=known_login(self.legacy_users, username, password))
        self.rest.ensure_login()  # a refused REST login comes back as this LogIn's fault, with its code
        with self._lock:
            self.counters["logins"] += 1
        metrics.bridge_call("logins")
        return self.sessions.open()


def _recorded(records: List[Callable[[], None]]) -> None:
    """Run and drop ``records`` (what records a sent request in the store); a failure is logged,
    never raised: the answer has gone (a store failure is logged where it is caught, as before)."""
    while records:
        try:
            records.pop(0)()
        except Exception as exc:  # nothing is left to answer it
            _log.warning("a sent request could not be recorded under its RequestId: %s", type(exc).__name__)


class _ThenRecord(WsgiBody):
    """An answer's body, then the records of the request it answers: run when the server asks for
    the body's end (after sending it), or when it closes the body, whichever comes first."""

    def __init__(self, body: Iterable[bytes], records: List[Callable[[], None]]) -> None:
        super().__init__(body)
        self._records = records

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body
        _recorded(self._records)

    def closed(self) -> None:
        _recorded(self._records)


def _refusal(exc: Exception) -> Optional[Refused]:
    """The SOAP fault a legacy client gets for an error of the REST side (None: not one of them)."""
    if isinstance(exc, ServiceFault):  # the REST API's error, with its code
        return Refused(exc.code, exc.message)
    if isinstance(exc, OutcomeUnknown):
        return Refused(_UNEXPECTED, f"the REST API's answer was lost ({exc}); check callbacks before sending it again")
    if isinstance(exc, TransportError):
        return Refused(_UNEXPECTED, f"the REST API did not answer: {exc}")
    if isinstance(exc, InputError):  # its carrier code, set where it was raised
        return Refused(exc.code, exc.fault_text())
    return None
