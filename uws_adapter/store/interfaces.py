"""What the services need of a store, as small typed interfaces (one per concern), so that a
backend implements them without touching the receiver, the bridge, the tracker or the clients;
:class:`~uws_adapter.store.Store` (SQLite) and :class:`~uws_adapter.store.postgres.PostgresStore`
implement them all. A backend commits a group of writes (:data:`Write`) in one transaction, each in
its own savepoint, and a caller acknowledges nothing before that commit returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple, Union

from uws_adapter.errors import StoreError
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import Device
from uws_adapter.redaction import redact
from uws_adapter.store.dead_letters import DeadLetter, DeadLetterTotals
from uws_adapter.store.sql import bound_int

__all__ = [
    "DEAD_LETTER_MAX", "POISONED", "Backend", "BridgeStore", "CallbackEvents", "CallbackWrite", "DeadLetterStore",
    "DeadLetterWrite", "EventPages", "HandlerQueue", "Outcome", "ReceiverStore", "RequestLog", "RequestStatus",
    "SessionStore", "StoreError", "StoredEvent", "Tracking", "Write",
]  # fmt: skip


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored: the callback (password redacted), its delivery attempts, and whether a
    re-send differed from the first delivery. A handler sees ``handler_attempts``: how many times
    it failed on this event before (0 on its first run)."""

    id: int
    callback: CallbackRequest
    attempts: int
    differs: bool
    received_at: float
    handler_attempts: int = 0


@dataclass(frozen=True)
class RequestStatus:
    """Where a request stands: per device, succeeded, failed (with fault codes) or pending.

    A device-list request has a known ``total``: it is complete when every listed device has a
    callback. An account, group or filter request is ``open_ended``: no total exists before the
    carrier has answered for every line it matched, so it is never complete; ``total`` is then the
    devices heard from so far. A request the store has neither sent nor heard of is not ``known``.
    """

    request_id: str
    action: Optional[str]
    total: int
    succeeded: Tuple[str, ...]
    failed: Dict[str, Optional[str]] = field(default_factory=dict)
    pending: Tuple[str, ...] = ()
    open_ended: bool = False
    #: When the request was recorded as sent (None: not sent through this store's request log).
    sent_at: Optional[float] = None
    #: When the last callback of this request was stored.
    last_callback_at: Optional[float] = None

    @property
    def known(self) -> bool:
        return self.sent_at is not None or self.total > 0

    @property
    def callbacks(self) -> int:
        """Devices heard from so far."""
        return len(self.succeeded) + len(self.failed)

    @property
    def complete(self) -> bool:
        return not self.open_ended and not self.pending and self.total > 0


@dataclass(frozen=True)
class CallbackWrite:
    """Store one callback: a new event with its handler runs, or one more attempt of a known one.

    ``document`` is the body as received; if the callback's values cannot be stored, it is kept
    as a dead letter instead (:meth:`dead_letter`: redacted only then, off the hot path) and the
    outcome is ``(POISONED, False)``."""

    callback: CallbackRequest
    handlers: Tuple[str, ...] = ()
    document: Optional[bytes] = field(default=None, repr=False)  # may hold the password
    media_type: Optional[str] = None

    def dead_letter(self) -> bytes:
        """What to keep of a callback that cannot be stored as an event: its document redacted (every
        secret-named value and the callback's own password blanked) and cut to
        :data:`DEAD_LETTER_MAX`, or without one its JSON form (the password already ``***``)."""
        if self.document is None:
            return json.dumps(self.callback.to_dict(), default=str).encode("utf-8", "replace")
        secrets = [self.callback.password] if self.callback.password else []
        return redact(self.document, secrets, limit=DEAD_LETTER_MAX)


@dataclass(frozen=True)
class DeadLetterWrite:
    """Keep a refused document (redacted and cut by the caller) within ``max_total`` bytes of dead
    letters in all (None: no cap), the oldest rotated out past it (see
    :mod:`uws_adapter.store.dead_letters`); the outcome is its id, or 0 when it alone is larger."""

    body: bytes
    media_type: Optional[str]
    reason: str
    max_total: Optional[int] = None


Write = Union[CallbackWrite, DeadLetterWrite]
#: The most of one refused document kept as a dead letter (after redaction).
DEAD_LETTER_MAX = 64 * 1024
#: The event id of a :class:`CallbackWrite` that was kept as a dead letter instead.
POISONED = 0


@dataclass
class Outcome:
    """How one write of a group went: its ``result``, or the ``error`` that kept it out."""

    result: Any = None
    error: Optional[BaseException] = None


class CallbackEvents(Protocol):
    """Callbacks as events (one per service, RequestId, device and action), every delivery
    attempt, and dead letters."""

    #: Wall-clock time for what is stored and for handler back-off (tests inject one).
    clock: Callable[[], float]
    #: How long a writer waits for its turn before the write fails (seconds).
    lock_timeout: float
    #: The largest group committed in one transaction (1: one commit per write).
    max_batch: int

    def apply(self, write: Write, *, timeout: float = 30.0) -> Any:
        """Store ``write`` durably and return its outcome's result, or raise :class:`StoreError`."""

    def commit_group(self, writes: Sequence[Write]) -> List[Outcome]:
        """Store ``writes`` in one transaction, in the calling thread; one outcome per write."""

    def events(self, *, request_id: Optional[str] = None, after_id: int = 0, limit: int = 1000) -> List[StoredEvent]:
        """Events in arrival order, after ``after_id``."""

    def iter_events(self, *, request_id: Optional[str] = None, after_id: int = 0) -> Iterator[StoredEvent]:
        """Every event, in pages."""

    def event(self, event_id: int) -> Optional[StoredEvent]:
        """One event, or None."""

    def counts(self) -> Dict[str, int]:
        """Rows per table: events, attempts, dead_letters, requests, handler_queue."""

    def ready(self) -> bool:
        """Whether the store answers and takes a write now (a write that is rolled back, so nothing
        is kept); False rather than an error, for a readiness probe. Bounded by ``lock_timeout``."""

    def close(self) -> None:
        """Release connections and threads."""


class HandlerQueue(Protocol):
    """Handler runs (and the bridge's relay) still due, per event and handler name."""

    def due_handlers(self, limit: int = 500) -> List[Tuple[int, str, int]]:
        """(event id, handler name, attempts so far) of runs that are due now (a look: nothing is
        claimed; a runner uses :meth:`claim_handlers`)."""

    def claim_handlers(
        self, limit: int = 50, *, lease: float = 300.0, names: Optional[Sequence[str]] = None
    ) -> List[Tuple[int, str, int]]:
        """Claim up to ``limit`` due runs (of the handlers ``names``, or any) atomically, for
        ``lease`` seconds: no other runner, in this process or another sharing the store, gets
        them until they are done, failed, or the lease runs out (the claimer died: at least once).
        A run must end within its lease, or it may start again elsewhere while it goes on."""

    def release_handlers(self, runs: Sequence[Tuple[int, str]]) -> None:
        """Give back claimed (event id, handler) runs that were not run (the runner is stopping):
        due again at once, for any runner."""

    def handler_done(self, event_id: int, handler: str) -> None:
        """The run succeeded: never again."""

    def handler_failed(self, event_id: int, handler: str, error: str, delay: float) -> None:
        """The run failed: due again after ``delay`` seconds."""

    def handler_gave_up(self, event_id: int, handler: str, reason: str) -> None:
        """The run can never succeed: off the queue, kept among the dead letters."""

    def handler_backlog(self) -> Dict[str, Tuple[int, Optional[float]]]:
        """Per handler name with runs queued (due or waiting to be retried): how many, and when the
        oldest of their events was received (store clock). Read by the metrics at scrape time."""


class RequestLog(Protocol):
    """What the clients sent: all a client uses of its store (recording requests, reserving and
    confirming them under the daily budget, counting recent actions, and the clock it counts by)."""

    #: Seconds, the store's wall clock: what ``recent_actions``' ``since`` is measured on.
    clock: Callable[[], float]

    def record_request(
        self, request_id: str, action: str, devices: Sequence[Device], *, api: str = "soap", forced: bool = False
    ) -> None:
        """Remember a sent request and the devices it names; ``forced``: it was sent over the
        provisioning budget on purpose (``--force``)."""

    def recent_actions(self, identities: Sequence[str], since: float) -> Dict[str, List[Tuple[str, float]]]:
        """The provisioning actions on each of ``identities`` (``model.devices.identity`` values)
        after ``since`` (store clock), as ``(request id, when)`` pairs, for the budget guard.

        Two sources: each recorded device-list request naming the identity (when it was sent,
        forced or not, whatever its outcome), and each *succeeded* callback of any other request
        (an account, group or filter query, or a request this log never sent) whose device carries
        the identity (when the callback was stored); NiddService callbacks, which follow a restore,
        are not actions of their own. Identities without actions are left out.

        An identity stands for its line: the identifiers that any recorded request named together
        for one device are one line, so an action on any of them is listed under each wanted
        identity of that line (once per request id per identity: callers count distinct request
        ids, e.g. when a device is given by its IMEI and its ICCID)."""

    def device_actions(
        self, devices: Sequence[Device], since: float, *, at_least: int = 1
    ) -> Dict[str, List[Tuple[str, float]]]:
        """:meth:`recent_actions` of the identities of ``devices``, except that a device whose
        line had fewer than ``at_least`` actions may be left out (they are counted first, in one
        query: the budget check reads rows only for lines near their budget)."""

    def reserve_request(
        self, action: str, devices: Sequence[Device], *, api: str = "soap", since: Optional[float] = None,
        admit: Callable[[Dict[str, List[Tuple[str, float]]]], Optional[bool]] = lambda found: False,
        at_least: int = 1,
    ) -> Optional[str]:  # fmt: skip
        """Record a device-list request as pending before it is sent, in one transaction that
        every other reservation (any thread, process or instance sharing the log) waits for: the
        lines' actions after ``since`` (none read when None; as :meth:`device_actions` with
        ``at_least``) go to ``admit``, which refuses (None: nothing written, None returned) or says
        whether it is sent over the budget on purpose (recorded as forced). Returns the
        reservation's id."""

    def confirm_request(self, reservation: str, request_id: str) -> None:
        """The reserved request is known as ``request_id`` from now on (sent, or of unknown outcome)."""

    def release_request(self, reservation: str) -> None:
        """The reserved request provably never left: forget it."""


class Tracking(Protocol):
    """Where requests stand."""

    def status(self, request_id: str) -> RequestStatus:
        """Per device of a request: succeeded, failed (with the fault code) or still pending."""


class SessionStore(Protocol):
    """The bridge's legacy sessions (SHA-256 of tokens only), as rows: the policy (expiry, when to
    write a use) is :mod:`uws_adapter.bridge.sessions`; each operation here is one transaction."""

    def open_session(self, token_sha256: str, now: float, forget_before: Optional[float]) -> None:
        """Record a new session used at ``now``; forget sessions last used before ``forget_before``."""

    def session_last_used(self, token_sha256: str) -> Optional[float]:
        """When the session was last recorded as used (None: no such session); a read, no write."""

    def touch_session(self, token_sha256: str, now: float) -> None:
        """Record a use at ``now`` (never moving a later one back)."""

    def close_session(self, token_sha256: str) -> None:
        """Forget a session."""


class EventPages:
    """``iter_events`` and ``event`` for a backend, from its ``events`` (written once for all)."""

    def events(self, *, request_id: Optional[str] = None, after_id: int = 0, limit: int = 1000) -> List[StoredEvent]:
        raise NotImplementedError

    def iter_events(self, *, request_id: Optional[str] = None, after_id: int = 0) -> Iterator[StoredEvent]:
        """Every event, in pages."""
        while True:
            page = self.events(request_id=request_id, after_id=after_id)
            if not page:
                return
            yield from page
            after_id = page[-1].id

    def event(self, event_id: int) -> Optional[StoredEvent]:
        """One event, or None."""
        if bound_int("event_id", event_id) < 1:  # ids start at 1: one below the smallest is no id either
            return None
        page = self.events(after_id=event_id - 1, limit=1)
        return page[0] if page and page[0].id == event_id else None


class ReceiverStore(CallbackEvents, HandlerQueue, Protocol):
    """What a receiver (and the bridge, which is one) needs of its store."""


class BridgeStore(ReceiverStore, SessionStore, Protocol):
    """What the bridge needs: a receiver's store that keeps legacy sessions too."""


class DeadLetterStore(Protocol):
    """The operator's view of the dead letters (``uws-adapter dead-letters``; see
    :mod:`uws_adapter.store.dead_letters`)."""

    def dead_letters(self, *, after_id: int = 0, limit: int = 100, bodies: bool = False) -> List[DeadLetter]:
        """Letters in the order they were kept, after ``after_id``; with their bodies if ``bodies``."""

    def dead_letter(self, letter_id: int) -> Optional[DeadLetter]:
        """One letter with its body, or None."""

    def dead_letter_totals(self) -> DeadLetterTotals:
        """The running total the cap counts, letters rotated out, the cap."""

    def purge_dead_letters(self, *, ids: Sequence[int] = (), before: Optional[float] = None) -> int:
        """Delete the letters ``ids``, or those kept before ``before`` (neither: all); how many."""


class Backend(BridgeStore, RequestLog, Tracking, DeadLetterStore, Protocol):
    """Every role: what :func:`uws_adapter.store.open_store` returns."""

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...
