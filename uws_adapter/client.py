"""A UWS SOAP client over requests: log in, send Restore/Suspend, get the RequestId.

Provisioning is not idempotent (each line has a small daily budget of actions), so the client
retries only what provably never reached the service, and otherwise raises OutcomeUnknown with the
request for the caller to reconcile from callbacks. A failed login is never retried: five in a
row lock the account [doc].
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import requests
from lxml import etree
from urllib3.exceptions import NewConnectionError

from .actions import Action, Restore, Suspend
from .devices import Device
from .envelope import SoapRequest, build_envelope, build_login, build_logout
from .errors import ConnectionFailed, DocumentError, InputError, OutcomeUnknown, SessionExpired, TransportError
from .faults import make_fault, soap_fault
from .selection import DeviceList, Selection
from .store import Store
from .wire import MAX_DEVICES_PER_REQUEST, UWS_BASE_URL
from .xmlsafe import parse_untrusted

#: (connect, read) seconds. UWS can take a while to accept a 10,000-device request.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 120.0)


@dataclass(frozen=True)
class BatchResult:
    """One request of a batched send: its RequestId and the devices it carried."""

    request_id: str
    devices: Tuple[Device, ...]


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably did not leave: no connection was ever made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)
    return False


class UwsClient:
    """UWS SessionService and CarrierService over HTTPS.

    ``session`` is an injectable :class:`requests.Session`; ``timeout`` is (connect, read) seconds
    and never None. With ``username`` and ``password`` the client logs in on first use and once
    more when the token expires; with ``token`` alone it uses that token as it is.
    """

    def __init__(
        self,
        *,
        base_url: str = UWS_BASE_URL,
        username: Optional[str] = None,
        password: Optional[str] = None,
        token: Optional[str] = None,
        session: Optional[requests.Session] = None,
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        connect_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        store: Optional[Store] = None,
    ) -> None:
        if not (isinstance(timeout, tuple) and len(timeout) == 2 and all(t and t > 0 for t in timeout)):
            raise InputError("timeout", f"{timeout!r} is not (connect, read) seconds", "pass e.g. (10, 120)")
        if connect_retries < 0:
            raise InputError("connect_retries", "must not be negative", "pass 0 or more")
        self.base_url = base_url.rstrip("/")
        self._credentials = (username, password) if username and password else None
        self._token = token
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout
        self.connect_retries = connect_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._login_lock = threading.Lock()
        self.store = store

    @property
    def token(self) -> Optional[str]:
        """The current session token, if any."""
        return self._token

    def login(self, username: Optional[str] = None, password: Optional[str] = None) -> str:
        """SessionService LogIn; keeps and returns the session token. Never retried on a fault."""
        if username is not None or password is not None:
            self._credentials = (username or "", password or "")
        if self._credentials is None:
            raise InputError("username", "no credentials to log in with", "pass username= and password=")
        with self._login_lock:
            root = self._post(build_login(*self._credentials, base_url=self.base_url), may_resend=True)
            token = _find_text(root, "SessionToken")
            if not token:
                raise TransportError("LogIn answered without a SessionToken")
            self._token = token
            return token

    def logout(self) -> None:
        """SessionService LogOut, then forget the token."""
        if self._token is None:
            return
        token, self._token = self._token, None
        self._post(build_logout(token, base_url=self.base_url), may_resend=True)

    def restore(self, selection: Selection) -> str:
        """Restore service to the selected devices; returns the RequestId."""
        return self.change_device_state(Restore(), selection)

    def suspend(self, selection: Selection, *, with_billing: Optional[bool] = None) -> str:
        """Suspend the selected devices; returns the RequestId. ``with_billing`` is REST-only and
        refused here."""
        return self.change_device_state(Suspend(with_billing), selection)

    def change_device_state(self, action: Action, selection: Selection) -> str:
        """Send ChangeDeviceState; returns the RequestId that all its callbacks will carry. With a
        ``store``, the request is recorded there so that its progress can be tracked."""
        if self._token is None:
            self.login()
        try:
            request_id = self._change(action, selection)
        except SessionExpired:
            if self._credentials is None:
                raise
            self.login()
            request_id = self._change(action, selection)
        if self.store is not None:
            devices = selection.devices if isinstance(selection, DeviceList) else ()
            self.store.record_request(request_id, action.element, devices, api="soap")
        return request_id

    def change_device_state_in_batches(
        self, action: Action, devices: Sequence[Device], *, batch_size: int = MAX_DEVICES_PER_REQUEST
    ) -> List[BatchResult]:
        """Send more devices than one request takes, ``batch_size`` at a time. Returns every
        RequestId with its devices. A failure stops the sending; the error's ``sent`` attribute
        lists the batches that went out before it."""
        if not 1 <= batch_size <= MAX_DEVICES_PER_REQUEST:
            raise InputError("batch_size", f"{batch_size} is out of range", f"use 1 to {MAX_DEVICES_PER_REQUEST:,}")
        results: List[BatchResult] = []
        for start in range(0, len(devices), batch_size):
            chunk = tuple(devices[start : start + batch_size])
            try:
                request_id = self.change_device_state(action, DeviceList(chunk))
            except Exception as exc:
                exc.sent = list(results)  # type: ignore[attr-defined]
                raise
            results.append(BatchResult(request_id, chunk))
        return results

    def _change(self, action: Action, selection: Selection) -> str:
        assert self._token is not None
        root = self._post(
            build_envelope(action, selection, token=self._token, base_url=self.base_url), may_resend=False
        )
        request_id = _find_text(root, "RequestId")
        if not request_id:
            raise TransportError("ChangeDeviceState answered without a RequestId")
        return request_id

    def _post(self, request: SoapRequest, *, may_resend: bool) -> etree._Element:
        response = self._send(request)
        status = response.status_code
        root: Optional[etree._Element] = None
        try:
            root = parse_untrusted(response.content, what=f"HTTP {status} response")
        except DocumentError as exc:  # an HTML error page, an empty body, a proxy's text
            unreadable = str(exc)
        if root is not None:
            fault = soap_fault(root)
            if fault is not None:
                raise make_fault(fault[0], fault[1], http_status=status)
            if 200 <= status < 300:
                return root
        kind = response.headers.get("Content-Type", "no content type")
        detail = f"HTTP {status} ({kind}) without a SOAP answer" if root is not None else unreadable
        if status >= 500 or (200 <= status < 300 and not may_resend):
            raise OutcomeUnknown(
                f"{detail}; the request may have been carried out: check its callbacks before sending it again",
                request=request,
                http_status=status,
            )
        raise TransportError(detail, http_status=status)

    def _send(self, request: SoapRequest) -> requests.Response:
        attempt = 0
        while True:
            try:
                return self.session.post(
                    request.url, data=request.body, headers=dict(request.headers), timeout=self.timeout,
                    allow_redirects=False,
                )  # fmt: skip
            except requests.RequestException as exc:
                if not _never_sent(exc):
                    raise OutcomeUnknown(
                        f"{type(exc).__name__} after the request was sent to {request.url}; it may have been "
                        "carried out: check its callbacks before sending it again",
                        request=request,
                    ) from exc
                if attempt >= self.connect_retries:
                    raise ConnectionFailed(
                        f"could not connect to {request.url} ({attempt + 1} attempts): {exc}"
                    ) from exc
                # Capped exponential backoff with full jitter, so many clients do not retry in step.
                self._sleep(random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt)))
                attempt += 1


def _find_text(root: etree._Element, local_name: str) -> Optional[str]:
    # Response namespaces are read tolerantly: the documented response misspells the contract
    # namespace (no "/" after 2004/07), so the element is found by its local name.
    for element in root.iter(f"{{*}}{local_name}"):
        text = (element.text or "").strip()
        if text:
            return text
    return None
