"""One provisioning interface for both backends: :class:`UwsClient` (SOAP) and
:class:`RestClient` (REST) both are a :class:`Provisioner`, so code written against ``restore`` /
``suspend`` switches backend by configuration (see :mod:`uws_adapter.config`).

What both share lives here: the session rule (log in on first use; when the service says the token
has expired or is invalid, e.g. after its restart, log in once more and resend once; one login at
a time across threads; a failed login is never retried, five in a row lock the account [doc]),
batching, recording each request in a store for tracking, the provisioning-budget guard, and
the client metrics (requests by outcome, faults by code, outcomes unknown; :mod:`uws_adapter.metrics`).
The budget guard (:mod:`uws_adapter.provisioning.budget`) refuses a device-list request over ``daily_budget``
unless ``force``; a query selection (account, group, filter) cannot be counted in advance and is never refused.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

import requests

from uws_adapter import metrics
from uws_adapter.errors import (
    BatchFailed,
    ConnectionFailed,
    InputError,
    OutcomeUnknown,
    ServiceFault,
    TransportError,
    refuses_session,
    shown,
)
from uws_adapter.model.actions import Action, Restore, Suspend
from uws_adapter.model.devices import Device
from uws_adapter.model.selection import DeviceList, Selection
from uws_adapter.provisioning.budget import BUDGET_WINDOW, Reservation, lines_over, reserve
from uws_adapter.provisioning.engine import Engine
from uws_adapter.provisioning.options import CLIENT_OPTIONS, SendOptions
from uws_adapter.provisioning.urls import check_url
from uws_adapter.store.interfaces import RequestLog
from uws_adapter.wire import MAX_DEVICES_PER_REQUEST

T = TypeVar("T")
P = TypeVar("P", bound="Provisioner")
_log = logging.getLogger("uws_adapter.provisioning")

#: Provisioning actions per line in 24 hours that most accounts allow [doc]; 25 with the upgrade.
DEFAULT_DAILY_BUDGET = 5
#: The most a budget guard allows (the guard's range is 1 to this; the settings take 0 for "off").
MAX_DAILY_BUDGET = 1000


def _nothing() -> None:
    """What records a request sent without a store."""


def check_daily_budget(budget: object, field: str = "daily_budget") -> int:
    """``budget`` as a whole number of actions per line per day, 1 to :data:`MAX_DAILY_BUDGET`."""
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_DAILY_BUDGET:
        raise InputError(
            field, f"{shown(budget)} is not a number of actions per line per day", "use 5, or 25 with the upgrade"
        )
    return budget


@dataclass(frozen=True)
class BatchResult:
    """One request of a batched send: its RequestId and the devices it carried."""

    request_id: str
    devices: Tuple[Device, ...]


class Provisioner(ABC):
    """Restore and suspend lines; every call returns the RequestId its callbacks will carry."""

    #: ``"soap"`` or ``"rest"``: recorded with each request in the store.
    api: str = ""
    #: Where the service is when ``base_url`` is not given: the carrier's endpoint.
    default_url: str = ""

    def __init__(
        self, *, base_url: Optional[str] = None, username: Optional[str] = None, password: Optional[str] = None,
        token: Optional[str] = None, store: Optional[RequestLog] = None, options: Optional[SendOptions] = None,
        **transport: Any,
    ) -> None:  # fmt: skip
        self.base_url = check_url(self.default_url if base_url is None else base_url, "base_url").rstrip("/")
        # The constructors' older keywords (timeout=, deadline=, max_answer_bytes=, connect_retries=,
        # backoff=, max_backoff=) are mapped onto the options; session= and sleep= are the engine's.
        session, sleep = transport.pop("session", None), transport.pop("sleep", None)
        self._http = Engine(CLIENT_OPTIONS if options is None else options, session=session, sleep=sleep or time.sleep)
        if transport:
            self._http.options = self._http.options.with_(**transport)
        self._credentials = (username, password) if username and password else None
        self._token = token
        #: True once this client logged in itself: its session is ended by :meth:`close`.
        self._own_session = False
        self._login_lock = threading.Lock()
        self.store = store
        #: Actions per line in 24 hours the guard allows (see the module); None turns the guard off.
        self.daily_budget: Optional[int] = DEFAULT_DAILY_BUDGET
        #: The clock the guard counts 24 hours by: the store's (``store.clock``) unless set.
        self.budget_clock: Optional[Callable[[], float]] = None

    @property
    def session(self) -> requests.Session:
        """The :class:`requests.Session` every call goes through."""
        return self._http.session

    @property
    def options(self) -> SendOptions:
        """How each call is bounded: timeouts, deadline, answer cap, connect retries."""
        return self._http.options

    @property
    def timeout(self) -> Tuple[float, float]:
        return self.options.timeout

    @property
    def deadline(self) -> float:
        """Seconds for a whole exchange: connect, send and the complete answer."""
        return self.options.deadline

    @property
    def max_answer_bytes(self) -> int:
        """The largest answer accepted, counted after decompression."""
        return self.options.max_answer_bytes

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
            self._own_session = True
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
                self._own_session = True
            return self._token

    def _with_session(self, call: Callable[[str], T]) -> T:
        """``call(token)``; when the service refuses the token as expired or invalid (it forgot its
        sessions in a restart), one new login and one more call. A refusal was not acted on, so
        sending again is safe; a second refusal is raised."""
        token = self._session_token()
        try:
            return call(token)
        except ServiceFault as fault:
            if self._credentials is None or not refuses_session(fault):
                raise
            return call(self._session_token(stale=token))

    def __repr__(self) -> str:  # never the password or a token
        user = self._credentials[0] if self._credentials else None
        return (
            f"{type(self).__name__}(base_url={getattr(self, 'base_url', None)!r}, username={user!r}, "
            f"session={'open' if self._token else 'none'}, timeout={self.timeout}, deadline={self.deadline:g}, "
            f"max_answer_bytes={self.max_answer_bytes})"
        )

    def restore(self, selection: Selection, *, force: bool = False) -> str:
        """Restore service to the selected devices; returns the RequestId."""
        return self.change_device_state(Restore(), selection, force=force)

    def suspend(self, selection: Selection, *, with_billing: Optional[bool] = None, force: bool = False) -> str:
        """Suspend the selected devices; returns the RequestId. ``with_billing`` is REST-only."""
        return self.change_device_state(Suspend(with_billing), selection, force=force)

    def change_device_state(self, action: Action, selection: Selection, *, force: bool = False) -> str:
        """Send the action; returns the RequestId. With a ``store``, the request is recorded there,
        and a device-list request over ``daily_budget`` raises :class:`BudgetExceeded` unless ``force``."""
        request_id, record = self.send_change(action, selection, force=force)
        record()
        return request_id

    def send_change(
        self, action: Action, selection: Selection, *, force: bool = False
    ) -> Tuple[str, Callable[[], None]]:
        """:meth:`change_device_state`, its request sent (reserved first, released if it provably
        never left), but its record under the RequestId left to the caller: (the RequestId, what
        records it). The migration bridge records it after its answer has left, so that the legacy
        client does not wait for a write the budget does not need (the reservation already counts)."""
        self._check(action, selection)  # the one check: _change builds the request unchecked
        reservation = self._reserve(action, selection, force)
        try:
            request_id = self._with_session(lambda token: self._change(action, selection, token))
        except ServiceFault as fault:  # answered with a fault: not acted on
            metrics.provisioning_sent(self.api, action.element, "fault")
            metrics.provisioning_fault(self.api, fault.code)
            if reservation is not None:
                reservation.release()
            raise
        except OutcomeUnknown as unknown:
            metrics.provisioning_sent(self.api, action.element, "unknown")
            metrics.provisioning_outcome_unknown(self.api)
            if reservation is not None:
                unknown.recorded_as = reservation.unknown()
            raise
        except ConnectionFailed:  # never connected: nothing left
            metrics.provisioning_sent(self.api, action.element, "not_sent")
            if reservation is not None:
                reservation.release()
            raise
        # Anything else may have happened after the request left: its reservation stays, pending.
        metrics.provisioning_sent(self.api, action.element, "accepted")
        if reservation is not None:
            return request_id, lambda: reservation.confirm(request_id)
        store = self.store
        if store is not None:  # a query: its lines are known from its callbacks only
            return request_id, lambda: store.record_request(request_id, action.element, (), api=self.api)
        return request_id, _nothing

    def _reserve(self, action: Action, selection: Selection, force: bool) -> Optional[Reservation]:
        """A device-list request recorded as pending before it is sent (refused over the budget)."""
        if self.store is None or not isinstance(selection, DeviceList):
            return None  # no log to count from; a query's lines are not known before its callbacks
        budget = None if self.daily_budget is None else check_daily_budget(self.daily_budget)
        return reserve(
            self.store, action.element, selection.devices, api=self.api, budget=budget, force=force,
            clock=self.budget_clock or self.store.clock,
        )  # fmt: skip

    def over_budget(self, devices: Sequence[Device]) -> Tuple[Tuple[str, int, float], ...]:
        """The lines among ``devices`` that already had ``daily_budget`` actions in the last 24
        hours: (the line, its actions, when the oldest counted one is 24 hours old). A line named by
        several identifiers counts each request once. A look only: a send decides again."""
        if self.store is None or self.daily_budget is None:
            return ()
        budget = check_daily_budget(self.daily_budget)
        clock = self.budget_clock or self.store.clock
        found = self.store.device_actions(devices, clock() - BUDGET_WINDOW, at_least=budget)
        return lines_over(devices, found, budget)

    def change_device_state_in_batches(
        self, action: Action, devices: Sequence[Device], *, batch_size: int = MAX_DEVICES_PER_REQUEST,
        account: Optional[str] = None, force: bool = False,
    ) -> List[BatchResult]:  # fmt: skip
        """Send more devices than one request takes, ``batch_size`` at a time. Returns every
        RequestId with its devices. A failure stops the sending: on the first batch, its error as
        it is; after some went out, a :class:`BatchFailed` listing them (``sent``), with the error
        (``error``; a batch over the budget stops it too)."""
        if not 1 <= batch_size <= MAX_DEVICES_PER_REQUEST:
            raise InputError("batch_size", f"{batch_size} is out of range", f"use 1 to {MAX_DEVICES_PER_REQUEST:,}")
        results: List[BatchResult] = []
        for start in range(0, len(devices), batch_size):
            chunk = tuple(devices[start : start + batch_size])
            try:
                request_id = self.change_device_state(action, DeviceList(chunk, account), force=force)
            except Exception as exc:
                if not results:
                    raise
                raise BatchFailed(tuple(results), exc, len(devices) - start) from exc
            results.append(BatchResult(request_id, chunk))
        return results

    def close(self) -> None:
        """End the session this client opened (UWS LogOut, REST session logout), then release the
        HTTP connections. A session given as ``token=`` is the caller's and stays open. A logout
        that fails is logged, not raised: the session then expires on its own (20 minutes idle)."""
        try:
            if self._own_session and self._token is not None:
                self.logout()
        except (TransportError, ServiceFault) as exc:
            _log.info("logging out failed; the session expires on its own: %s", exc)
        finally:
            self._http.close()

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def logout(self) -> None:
        """End the session (if any) on the service and forget its token."""
        if self._token is None:
            return
        token, self._token = self._token, None
        self._logout(token)

    @abstractmethod
    def _logout(self, token: str) -> None:
        """End the session of ``token`` on the service."""

    @abstractmethod
    def _check(self, action: Action, selection: Selection) -> None:
        """Refuse what this API cannot carry, before anything is sent."""

    @abstractmethod
    def _login(self, username: str, password: str) -> str:
        """Log in once; the session token."""

    @abstractmethod
    def _change(self, action: Action, selection: Selection, token: str) -> str:
        """Send one request with ``token``; its RequestId."""
