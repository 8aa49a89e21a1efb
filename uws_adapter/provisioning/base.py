"""One provisioning interface for both backends: :class:`UwsClient` (SOAP) and
:class:`RestClient` (REST) both are a :class:`Provisioner`, so code written against ``restore`` /
``suspend`` switches backend by configuration (see :mod:`uws_adapter.config`).

What both share lives here: the session rule (log in on first use; when the service says the token
has expired or is invalid, e.g. after its restart, log in once more and resend once; one login at
a time across threads; a failed login is never retried, five in a row lock the account [doc]),
batching, and recording each request in a store for tracking.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

import requests

from uws_adapter.errors import InputError, ServiceFault, SessionExpired
from uws_adapter.model.actions import Action, Restore, Suspend
from uws_adapter.model.devices import Device
from uws_adapter.model.selection import DeviceList, Selection
from uws_adapter.provisioning.transport import DEFAULT_DEADLINE, DEFAULT_MAX_ANSWER_BYTES, DEFAULT_TIMEOUT, HttpSender
from uws_adapter.store.interfaces import RequestLog
from uws_adapter.wire import MAX_DEVICES_PER_REQUEST

T = TypeVar("T")


@dataclass(frozen=True)
class BatchResult:
    """One request of a batched send: its RequestId and the devices it carried."""

    request_id: str
    devices: Tuple[Device, ...]


def session_refused(fault: ServiceFault) -> bool:
    """True for a fault that refuses the session token: ``SessionToken.Expired`` or ``.Invalid``."""
    return isinstance(fault, SessionExpired) or fault.code.rpartition(":")[2].endswith("SessionToken.Invalid")


class Provisioner(ABC):
    """Restore and suspend lines; every call returns the RequestId its callbacks will carry."""

    #: ``"soap"`` or ``"rest"``: recorded with each request in the store.
    api: str = ""

    def __init__(
        self,
        *,
        username: Optional[str],
        password: Optional[str],
        token: Optional[str],
        session: Optional[requests.Session],
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        connect_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        store: Optional[RequestLog] = None,
    ) -> None:
        self._http = HttpSender(
            session=session, timeout=timeout, deadline=deadline, max_answer_bytes=max_answer_bytes,
            connect_retries=connect_retries, backoff=backoff, max_backoff=max_backoff, sleep=sleep,
        )  # fmt: skip
        self._credentials = (username, password) if username and password else None
        self._token = token
        self._login_lock = threading.Lock()
        self.store = store

    @property
    def session(self) -> requests.Session:
        """The :class:`requests.Session` every call goes through."""
        return self._http.session

    @property
    def timeout(self) -> Tuple[float, float]:
        return self._http.timeout

    @property
    def deadline(self) -> float:
        """Seconds for a whole exchange: connect, send and the complete answer."""
        return self._http.deadline

    @property
    def max_answer_bytes(self) -> int:
        """The largest answer accepted, counted after decompression."""
        return self._http.max_answer_bytes

    @property
    def token(self) -> Optional[str]:
        """The current session token, if any."""
        return self._token

    def login(self, username: Optional[str] = None, password: Optional[str] = None) -> str:
        """Log in and keep the session token; never retried on a refusal."""
        if username is not None or password is not None:
            self._credentials = (username or "", password or "")
        if self._credentials is None:
            raise InputError("username", "no credentials to log in with", "pass username= and password=")
        with self._login_lock:
            self._token = self._login(*self._credentials)
            return self._token

    def ensure_login(self) -> str:
        """The session token, logging in first if there is none yet."""
        return self._session_token()

    def _session_token(self, stale: Optional[str] = None) -> str:
        """The current token, logging in when there is none or it is ``stale``. Threads that find a
        login under way wait for it and use its token instead of logging in again."""
        with self._login_lock:
            if self._token is None or self._token == stale:
                if self._credentials is None:
                    raise InputError("username", "no session and no credentials", "pass username= and password=")
                self._token = self._login(*self._credentials)
            return self._token

    def _with_session(self, call: Callable[[str], T]) -> T:
        """``call(token)``; when the service refuses the token as expired or invalid (it forgot its
        sessions in a restart), one new login and one more call. A refusal was not acted on, so
        sending again is safe; a second refusal is raised."""
        token = self._session_token()
        try:
            return call(token)
        except ServiceFault as fault:
            if self._credentials is None or not session_refused(fault):
                raise
            return call(self._session_token(stale=token))

    def __repr__(self) -> str:  # never the password or a token
        user = self._credentials[0] if self._credentials else None
        return (
            f"{type(self).__name__}(base_url={getattr(self, 'base_url', None)!r}, username={user!r}, "
            f"session={'open' if self._token else 'none'}, timeout={self.timeout}, deadline={self.deadline:g}, "
            f"max_answer_bytes={self.max_answer_bytes})"
        )

    def restore(self, selection: Selection) -> str:
        """Restore service to the selected devices; returns the RequestId."""
        return self.change_device_state(Restore(), selection)

    def suspend(self, selection: Selection, *, with_billing: Optional[bool] = None) -> str:
        """Suspend the selected devices; returns the RequestId. ``with_billing`` is REST-only."""
        return self.change_device_state(Suspend(with_billing), selection)

    def change_device_state(self, action: Action, selection: Selection) -> str:
        """Send the action; returns the RequestId. With a ``store``, the request is recorded there
        so that its progress can be tracked."""
        self._check(action, selection)
        request_id = self._with_session(lambda token: self._change(action, selection, token))
        if self.store is not None:
            devices = selection.devices if isinstance(selection, DeviceList) else ()
            self.store.record_request(request_id, action.element, devices, api=self.api)
        return request_id

    def change_device_state_in_batches(
        self, action: Action, devices: Sequence[Device], *, batch_size: int = MAX_DEVICES_PER_REQUEST,
        account: Optional[str] = None,
    ) -> List[BatchResult]:  # fmt: skip
        """Send more devices than one request takes, ``batch_size`` at a time. Returns every
        RequestId with its devices. A failure stops the sending; the error's ``sent`` attribute
        lists the batches that went out before it."""
        if not 1 <= batch_size <= MAX_DEVICES_PER_REQUEST:
            raise InputError("batch_size", f"{batch_size} is out of range", f"use 1 to {MAX_DEVICES_PER_REQUEST:,}")
        results: List[BatchResult] = []
        for start in range(0, len(devices), batch_size):
            chunk = tuple(devices[start : start + batch_size])
            try:
                request_id = self.change_device_state(action, DeviceList(chunk, account))
            except Exception as exc:
                exc.sent = list(results)  # type: ignore[attr-defined]
                raise
            results.append(BatchResult(request_id, chunk))
        return results

    def close(self) -> None:
        """Release the HTTP connections."""
        self._http.session.close()

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _check(self, action: Action, selection: Selection) -> None:
        """Refuse what this API cannot carry, before anything is sent."""

    @abstractmethod
    def _login(self, username: str, password: str) -> str:
        """Log in once; the session token."""

    @abstractmethod
    def _change(self, action: Action, selection: Selection, token: str) -> str:
        """Send one request with ``token``; its RequestId."""
