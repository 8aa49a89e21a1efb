"""A ThingSpace REST M2M client: OAuth2 client credentials, the M2M session (login, logout),
restore, suspend, eSIM profile_resume, and callback listener registration.

It is a :class:`~uws_adapter.provisioning.Provisioner` like :class:`~uws_adapter.UwsClient`: the
same request model, the same exceptions (``{errorCode, errorMessage}`` becomes the
:class:`ServiceFault` subclass its code means, an OAuth2 ``{error, error_description}`` an
:class:`.AuthenticationFailed`), the same timeout and no-blind-retry rule.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote, urlsplit

from uws_adapter.errors import (
    AuthenticationFailed,
    DocumentError,
    InputError,
    OutcomeUnknown,
    ServiceFault,
    TransportError,
    fault_for,
    refuses_session,
    shown,
)
from uws_adapter.jsonsafe import loads_untrusted
from uws_adapter.model.actions import Action
from uws_adapter.model.callbacks import check_credentials
from uws_adapter.model.devices import Device
from uws_adapter.model.selection import ACCOUNT_FIX, DeviceList, Selection, check_request, required_text
from uws_adapter.model.text import xml_carries
from uws_adapter.provisioning.base import Provisioner
from uws_adapter.provisioning.engine import Answer, NotUsable, Outgoing, Stakes
from uws_adapter.provisioning.headers import header_problem, header_text
from uws_adapter.provisioning.options import SendOptions, check_seconds
from uws_adapter.provisioning.sent import Describe, SentRequest, redact_json
from uws_adapter.provisioning.urls import LISTENER_URL_FIX, check_url
from uws_adapter.rest.body import JSON_TYPE, PROFILE_RESUME_PATH, RestRequest, profile_resume_body, rest_request
from uws_adapter.store.interfaces import RequestLog
from uws_adapter.wire import (
    CALLBACK_SERVICES,
    CALLBACKS_PATH,
    M2M_TOKEN_HEADER,
    OAUTH_TOKEN_PATH,
    REST_BASE_URL,
    SESSION_LOGIN_PATH,
)

#: Ends the M2M session; no body [doc] (the vendor SDK's ``end_connectivity_management_session``).
SESSION_LOGOUT_PATH = "/m2m/v1/session/logout"
#: OAuth2 error statuses (RFC 6749 section 5.2, RFC 6750 section 3.1).
_OAUTH_STATUSES = (400, 401, 403)


@dataclass(frozen=True)
class CallbackListener:
    """A callback listener registered for an account and a service."""

    account: str
    service: str
    url: str


class RestClient(Provisioner):
    """The REST M2M API. ``client_id`` / ``client_secret`` get the OAuth2 bearer token (cached and
    renewed ``renew_before`` seconds before it expires), or ``bearer_token`` is used as it is;
    ``username`` / ``password`` open the M2M session (header ``VZ-M2M-Token``), which
    :meth:`close` (or the end of a ``with`` block) logs out. ``options`` and the older transport
    keywords are taken as by :class:`~uws_adapter.UwsClient`."""

    api = "rest"

    def __init__(
        self,
        *,
        base_url: str = REST_BASE_URL,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        bearer_token: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        token: Optional[str] = None,
        store: Optional[RequestLog] = None,
        renew_before: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        options: Optional[SendOptions] = None,
        **transport: Any,
    ) -> None:
        if not (client_id and client_secret) and not bearer_token:
            raise InputError(
                "client_id", "no OAuth2 credentials", "pass client_id= and client_secret= (or bearer_token=)"
            )
        # Each goes into a header (the keys Basic-encoded): one a header cannot carry is refused here.
        for field, value in (("client_id", client_id), ("client_secret", client_secret),
                             ("bearer_token", bearer_token), ("token", token)):  # fmt: skip
            if isinstance(value, str) and value:
                header_text(field, value, "give it as the ThingSpace app or the service issued it")
        super().__init__(base_url=base_url, username=username, password=password, token=token, store=store,
                         options=options, **transport)  # fmt: skip
        self._oauth = (client_id, client_secret) if client_id and client_secret else None
        self._bearer = bearer_token
        self._bearer_expires = float("inf") if bearer_token else 0.0
        self._bearer_lock = threading.Lock()
        self.renew_before = check_seconds("renew_before", renew_before, "300", zero=True)  # "300" was a TypeError later
        self._clock = clock

    # OAuth2 and session ---------------------------------------------------------------------

    def bearer_token(self, *, renew: bool = False) -> str:
        """The OAuth2 bearer token, fetched when missing, near expiry, or ``renew``."""
        with self._bearer_lock:
            now = self._clock()
            if self._bearer is not None and not renew and now < self._bearer_expires:
                return self._bearer
            if self._oauth is None:
                if self._bearer is None:
                    raise InputError("client_id", "no OAuth2 credentials", "pass client_id= and client_secret=")
                return self._bearer
            request = Outgoing(
                "POST", self.base_url + OAUTH_TOKEN_PATH, "OAuth2 token",
                (("Content-Type", "application/x-www-form-urlencoded"), ("Accept", JSON_TYPE)),
                b"grant_type=client_credentials", stakes=Stakes.LOGIN, auth=self._oauth,
            )  # fmt: skip
            answer = self._http.call(request, _JSON)
            token, lifetime = answer.get("access_token"), answer.get("expires_in", 3600)
            if not isinstance(token, str) or not token:
                raise TransportError("the OAuth2 token answer has no access_token")
            _answered_header("the OAuth2 token answer's access_token", token)
            try:
                seconds = float(lifetime)
            except (TypeError, ValueError):
                seconds = 3600.0
            if seconds != seconds:  # "NaN" is no lifetime: compared with it, every call fetched a new token
                seconds = 3600.0
            # Renew early, but never sooner than half way through a short-lived token.
            self._bearer = token
            self._bearer_expires = now + max(seconds / 2, seconds - self.renew_before)
            return token

    def _login(self, username: str, password: str) -> str:
        request = RestRequest("POST", self.base_url + SESSION_LOGIN_PATH, {"username": username, "password": password})
        answer = self._call(request, m2m_token=None, stakes=Stakes.LOGIN)
        token = answer.get("sessionToken")
        if not isinstance(token, str) or not token:
            raise TransportError("session/login answered without a sessionToken")
        return _answered_header("session/login's sessionToken", token)

    def _logout(self, token: str) -> None:
        # A session the service no longer knows (expired, invalid) is ended already: not an error.
        request = RestRequest("POST", self.base_url + SESSION_LOGOUT_PATH)  # no body [doc]
        try:
            self._call(request, m2m_token=token, stakes=Stakes.REPEATABLE)
        except ServiceFault as fault:
            if not refuses_session(fault):
                raise

    # Provisioning ---------------------------------------------------------------------------

    def _check(self, action: Action, selection: Selection) -> None:
        check_request(action, selection)  # the REST body carries every valid request

    def _change(self, action: Action, selection: Selection, token: str) -> str:
        request = rest_request(action, selection, base_url=self.base_url, checked=True)
        sent = _sent(request, action.element, selection)
        return _request_id(self._call(request, m2m_token=token, sent=sent), sent)

    def profile_resume(
        self, devices: Sequence[Device], *, account: str, service_plan: Optional[str] = None
    ) -> str:  # fmt: skip
        """Resume suspended eSIM profiles (named by ICCID); returns the requestId. One callback
        per profile, from DeviceProfileService."""
        body = profile_resume_body(devices, account=account, service_plan=service_plan)
        request = RestRequest("POST", self.base_url + PROFILE_RESUME_PATH, body)
        sent = _sent(request, "ProfileResume", DeviceList(tuple(devices), account))
        request_id = _request_id(
            self._with_session(lambda token: self._call(request, m2m_token=token, sent=sent)), sent
        )
        if self.store is not None:
            self.store.record_request(request_id, "ProfileResume", tuple(devices), api=self.api)
        return request_id

    def list_devices(self, body: Mapping[str, Any]) -> Dict[str, Any]:
        """One page of ``POST /m2m/v1/devices/actions/list`` (:mod:`uws_adapter.rest.devicelist`)."""
        from uws_adapter.rest.devicelist import DEVICE_LIST_PATH

        return self._session_call(RestRequest("POST", self.base_url + DEVICE_LIST_PATH, body))

    # Callback listeners ---------------------------------------------------------------------

    def register_callback(
        self, account: str, service: str, url: str, *, username: Optional[str] = None, password: Optional[str] = None
    ) -> None:
        """Register ``url`` as the listener for ``service`` callbacks of ``account``. A service
        registered through UWS must be unregistered there first [doc]."""
        account, service = _account(account), _service(service)
        check_url(url, "url", fix=LISTENER_URL_FIX)
        check_credentials("username", username, password, "pass username= and password= (the receiver's), or neither")
        body: Dict[str, Any] = {"name": service, "url": url}
        if username:
            body["username"] = username
        if password:
            body["password"] = password
        self._session_call(RestRequest("POST", self._callbacks_url(account), body))

    def callback_listeners(self, account: str) -> List[CallbackListener]:
        """The listeners registered for ``account`` (read by :func:`listeners_from`)."""
        answer = self._session_call(RestRequest("GET", self._callbacks_url(_account(account))))
        return listeners_from(answer.get("items", []), account)

    def unregister_callback(self, account: str, service: str) -> None:
        """Remove the listener of ``service`` for ``account``."""
        url = f"{self._callbacks_url(_account(account))}/name/{quote(_service(service), safe='')}"
        self._session_call(RestRequest("DELETE", url))

    def _callbacks_url(self, account: str) -> str:
        return f"{self.base_url}{CALLBACKS_PATH}/{quote(account, safe='')}"

    def _session_call(self, request: RestRequest) -> Dict[str, Any]:
        """A repeatable call in the M2M session (listings and listener registrations)."""
        return self._with_session(lambda token: self._call(request, m2m_token=token, stakes=Stakes.REPEATABLE))

    # HTTP -------------------------------------------------------------------------------------

    def _call(
        self, request: RestRequest, *, m2m_token: Optional[str], stakes: Stakes = Stakes.ONCE,
        sent: Optional[Describe] = None,
    ) -> Dict[str, Any]:  # fmt: skip
        """One call with the bearer (renewed once if the gateway refuses it with a bare 401)."""
        describe = sent if sent is not None else _sent(request)
        operation = f"{request.method} {urlsplit(request.url).path}"
        for renew in (False, True):
            headers = {"Authorization": f"Bearer {self.bearer_token(renew=renew)}", "Accept": JSON_TYPE}
            if m2m_token is not None:
                headers[M2M_TOKEN_HEADER] = m2m_token
            data = None
            if request.method in ("POST", "PUT") and request.payload:  # a bodiless POST (logout) sends none
                headers["Content-Type"] = JSON_TYPE
                data = request.body
            outgoing = Outgoing(
                request.method, request.url, operation, tuple(headers.items()), data, stakes=stakes, describe=describe
            )
            answer = self._http.send(outgoing)
            if answer.status_code == 401 and not renew and self._oauth is not None and not _error_code(answer):
                continue  # a 401 was not acted on: a fresh bearer token and one resend are safe
            return self._http.judge(outgoing, answer, _JSON)
        raise AssertionError("unreachable")


def _sent(request: RestRequest, action: Optional[str] = None, selection: Optional[Selection] = None) -> Describe:
    """What an :class:`OutcomeUnknown` shows of ``request``: its body without passwords or tokens."""

    def describe() -> SentRequest:
        body = redact_json(request.body) if request.payload else b""
        operation = f"{request.method} {urlsplit(request.url).path}"
        return SentRequest(request.method, request.url, operation, body, action=action, selection=selection)

    return describe


def listeners_from(items: object, account: str) -> List[CallbackListener]:
    """The listeners in a listing answer: ``accountName``, ``serviceName``, ``url`` [doc], with
    ``name`` read where ``serviceName`` is missing (what older answers, and our emulator, sent)."""
    if not isinstance(items, list):
        return []
    return [
        CallbackListener(
            str(item.get("accountName") or account),
            str(item.get("serviceName") or item.get("name") or ""),
            str(item.get("url") or ""),
        )
        for item in items
        if isinstance(item, Mapping)
    ]


def _answered_header(what: str, token: str) -> str:
    """``token`` from an answer, to be sent back in a header: one that cannot be is an unusable answer
    (nothing was provisioned; the token itself is never shown)."""
    problem = header_problem(token)
    if problem is not None:
        raise TransportError(f"{what} {problem}; it cannot be sent back: check the service at the REST base URL")
    return token


def _account(account: object) -> str:
    return required_text("account", account, ACCOUNT_FIX)


_SERVICE_FIX = "use one of " + ", ".join(CALLBACK_SERVICES)


def _service(service: object) -> str:
    name = required_text("service", service, _SERVICE_FIX)
    if name not in CALLBACK_SERVICES:
        raise InputError("service", f"unknown callback service {shown(name)}", _SERVICE_FIX)
    return name


def _request_id(answer: Mapping[str, Any], request: Describe) -> str:
    request_id = answer.get("requestId")
    if not isinstance(request_id, str) or not request_id.strip():
        problem = "without a requestId"
    elif not xml_carries(request_id):  # no id of the carrier's has them; the bridge could not relay it
        problem = "with a requestId holding control characters"
    else:
        return request_id.strip()
    raise OutcomeUnknown(f"the service answered {problem}; check callbacks before sending it again", request=request())


def _decode(response: Answer) -> Optional[Any]:
    content = response.content  # already within the client's max_answer_bytes
    if not content.strip():
        return None
    try:
        return loads_untrusted(content.decode("utf-8"), what="answer")
    except (DocumentError, UnicodeDecodeError):
        return None


def _error_code(response: Answer) -> Optional[str]:
    decoded = _decode(response)
    if isinstance(decoded, dict) and decoded.get("errorCode") not in (None, ""):
        return str(decoded["errorCode"])
    return None


def _oauth_error(decoded: Mapping[str, Any], status: int) -> AuthenticationFailed:
    """An RFC 6749 / 6750 error body as an :class:`AuthenticationFailed` naming the error."""
    error = str(decoded["error"])[:100] or "unnamed_error"
    description = str(decoded.get("error_description") or "")[:300]
    if error in ("invalid_client", "unauthorized_client"):
        fix = "check client_id and client_secret (the OAuth2 keys of the ThingSpace app)"
    elif error == "invalid_token":
        fix = "the bearer token was refused even after a renewal: check the OAuth2 keys and the base URL"
    else:
        fix = "check the OAuth2 keys and the request to the token endpoint"
    said = f" ({description})" if description else ""
    return AuthenticationFailed(error, f"the OAuth2 side refused the request{said}; {fix}", http_status=status)


class JsonCodec:
    """Reads a REST answer: a JSON object (a bare array as ``{"items": [...]}``, an empty 2xx as
    ``{}``); an ``errorCode`` raised as the :class:`ServiceFault` it means, an OAuth2 error as
    :class:`AuthenticationFailed`; anything else :class:`NotUsable`."""

    def read(self, answer: Answer) -> Union[Dict[str, Any], NotUsable]:
        status = answer.status_code
        decoded = _decode(answer)
        if isinstance(decoded, dict) and decoded.get("errorCode") not in (None, ""):
            raise fault_for(str(decoded["errorCode"]), str(decoded.get("errorMessage") or ""), http_status=status)
        if status in _OAUTH_STATUSES and isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
            raise _oauth_error(decoded, status)
        if 200 <= status < 300:
            if isinstance(decoded, dict):
                return decoded
            if isinstance(decoded, list):  # listings come as a bare array
                return {"items": decoded}
            if not answer.content.strip():
                return {}  # registration and removal may answer with an empty 2xx
        return NotUsable("without a JSON answer or an errorCode")


_JSON = JsonCodec()
