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
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import requests

from .callback_xml_render import render_callback
from .errors import InputError, OutcomeUnknown, ServiceFault, TransportError, UwsAdapterError
from .receiver import Receiver, StartResponse, reply
from .rest_client import RestClient
from .soap_service import (
    IdleSessions,
    Refused,
    SoapCall,
    change_response,
    fault_envelope,
    login_credentials,
    login_response,
    logout_response,
    read_call,
    read_change_device_state,
    served_file,
    service_of,
)
from .store import Store, StoredEvent
from .transport import check_timeout
from .wire import CONTENT_TYPE
from .xmlsafe import MAX_BYTES

#: A 10,000-device ChangeDeviceState is about 2 MB.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
RELAY_HANDLER = "legacy-relay"
_UNEXPECTED = "REQUEST_FAILED.UnexpectedError"  # [doc] code, used for answers the REST side lost


class RelayRefused(UwsAdapterError):
    """The legacy listener did not acknowledge a relayed callback (it will be sent again)."""


class LegacyRelay:
    """A receiver handler that POSTs each stored callback to the legacy SOAP listener ``url``,
    with the credentials the legacy system registered, as UWS would."""

    def __init__(
        self,
        url: str,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Tuple[float, float] = (5.0, 30.0),
        session: Optional[requests.Session] = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InputError("legacy listener", f"{url!r} is not an http(s) URL", "give the legacy listener's URL")
        self.url = url
        self.username = username
        self.password = password
        self.timeout = check_timeout(timeout)
        self.session = session if session is not None else requests.Session()

    def __call__(self, event: StoredEvent) -> None:
        callback = event.callback
        document = replace(
            callback,
            username=self.username,
            password=self.password,
            callback_count=event.handler_attempts + 1,  # the carrier's meaning: sends of this message so far
            max_callback_threshold=callback.max_callback_threshold or 4,
        )
        response = self.session.post(
            self.url, data=render_callback(document), headers={"Content-Type": CONTENT_TYPE}, timeout=self.timeout
        )
        if not 200 <= response.status_code < 300:
            raise RelayRefused(f"the legacy listener answered HTTP {response.status_code}")


class Bridge:
    """WSGI application: the SOAP façade under ``/api/v2/`` and the REST callback listener on
    every other path. ``legacy_users`` maps each legacy login to its password; every legacy login
    is carried out with ``rest``'s credentials."""

    def __init__(
        self,
        rest: RestClient,
        store: Store,
        *,
        legacy_users: Mapping[str, str],
        relay: Optional[LegacyRelay] = None,
        callback_username: Optional[str] = None,
        callback_password: Optional[str] = None,
        session_idle: float = 20 * 60,
        handler_backoff: float = 5.0,
        max_callback_bytes: int = MAX_BYTES,
        public_url: Optional[str] = None,
    ) -> None:
        if not legacy_users or not all(isinstance(v, str) and v for v in legacy_users.values()):
            raise InputError(
                "legacy_users", "no legacy login with a password", "give NAME:PASSWORD for the legacy system"
            )
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
        )  # fmt: skip
        self.sessions = IdleSessions(session_idle)
        self._lock = threading.Lock()
        self.counters: Dict[str, int] = {"logins": 0, "requests": 0, "faults": 0}

    def close(self) -> None:
        self.receiver.close()

    def register(self, account: str, callback_url: str, services: Sequence[str] = ("CarrierService",)) -> None:
        """Register the bridge as the REST listener of ``services`` for ``account``."""
        for service in services:
            self.rest.register_callback(
                account, service, callback_url, username=self.callback_username, password=self.callback_password
            )

    def server_options(self, **options: Any) -> Dict[str, Any]:
        """waitress options: the body cap covers the largest SOAP request."""
        return {"max_request_body_size": MAX_REQUEST_BYTES, "ident": "uws-adapter-bridge", **options}

    # WSGI --------------------------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        path = environ.get("PATH_INFO", "/")
        if not path.startswith("/api/v2/"):
            return self.receiver(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            query = environ.get("QUERY_STRING", "")
            data = served_file(path + ("?" + query if query else ""), self._address(environ))
            if data is None:
                return reply(start_response, 404, "text/plain", b"no such document\n")
            return reply(start_response, 200, CONTENT_TYPE, data)
        service = service_of(path)
        if method != "POST" or service is None:
            return reply(start_response, 405, "text/plain", b"POST SOAP requests to a .svc address\n")
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return reply(start_response, 411, "text/plain", b"a Content-Length is required\n")
        if length > MAX_REQUEST_BYTES:
            return reply(start_response, 413, "text/plain", b"request too large\n")
        body = environ["wsgi.input"].read(length)
        with self._lock:
            self.counters["requests"] += 1
        try:
            answer = self._operation(read_call(service, body, max_bytes=MAX_REQUEST_BYTES))
        except Refused as refused:
            return self._fault(start_response, f"{service}.{refused.code}", str(refused))
        except ServiceFault as fault:  # the REST API's error, with its code
            return self._fault(start_response, f"{service}.{fault.code}", fault.message)
        except OutcomeUnknown as exc:
            message = f"the REST API's answer was lost ({exc}); check callbacks before sending it again"
            return self._fault(start_response, f"{service}.{_UNEXPECTED}", message)
        except TransportError as exc:
            return self._fault(start_response, f"{service}.{_UNEXPECTED}", f"the REST API did not answer: {exc}")
        except InputError as exc:
            return self._fault(start_response, f"{service}.INPUT_INVALID.RequestUndefined", str(exc))
        return reply(start_response, 200, CONTENT_TYPE, answer)

    def _address(self, environ: Mapping[str, Any]) -> str:
        if self.public_url:
            return self.public_url + "/api/v2"
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}/api/v2"

    def _fault(self, start_response: StartResponse, code: str, message: str) -> List[bytes]:
        with self._lock:
            self.counters["faults"] += 1
        return reply(start_response, 500, CONTENT_TYPE, fault_envelope(code, message))

    def _operation(self, call: SoapCall) -> bytes:
        if (call.service, call.operation) == ("SessionService", "LogIn"):
            return login_response(self._login(*login_credentials(call)))
        if (call.service, call.operation) == ("SessionService", "LogOut"):
            self.sessions.touch(call.token)
            self.sessions.close(call.token)
            return logout_response()
        if (call.service, call.operation) == ("CarrierService", "ChangeDeviceState"):
            self.sessions.touch(call.token)
            action, selection = read_change_device_state(call)
            return change_response(self.rest.change_device_state(action, selection))
        raise Refused("INPUT_INVALID.RequestUndefined", f"{call.operation} is not a {call.service} operation")

    def _login(self, username: str, password: str) -> str:
        # Compare against every legacy login, always, so that timing says nothing.
        matches = [
            hmac.compare_digest(username.encode(), name.encode()) & hmac.compare_digest(password.encode(), pw.encode())
            for name, pw in self.legacy_users.items()
        ]
        if not any(matches):
            raise Refused("REQUEST_FAILED.InvalidCredentials", "wrong username or password")  # [inferred] code
        self.rest.ensure_login()  # a refused REST login comes back as this LogIn's fault, with its code
        with self._lock:
            self.counters["logins"] += 1
        return self.sessions.open()
