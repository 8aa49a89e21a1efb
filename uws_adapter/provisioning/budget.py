"""The provisioning-budget guard: how a line's actions are counted against ``daily_budget``, and the
reservation that makes the count and the send one decision.

The carrier allows most accounts five provisioning actions per line per day (25 with an upgrade)
[doc], and says a line is over only in that line's failure callback. So before a device-list
request is sent, each line's actions of the last 24 hours are counted from the request log
(:meth:`~uws_adapter.store.interfaces.RequestLog.recent_actions`: requests recorded there, and
callbacks of queries). Counting and recording are one store transaction that every other sender
waits for (:meth:`~uws_adapter.store.interfaces.RequestLog.reserve_request`): the request is
recorded as *pending* before it leaves, so that of two senders racing for a line's last free
action — threads, processes, or instances sharing a PostgreSQL log — one is refused. The pending
request is then confirmed under its RequestId, released when it provably never left (a fault
answer, a connection never made), and kept when its outcome is unknown (the carrier may have acted
on it: a resend after a lost answer is what would burn a line's budget unseen).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from uws_adapter import metrics
from uws_adapter.errors import BudgetExceeded, StoreError
from uws_adapter.model.devices import Device
from uws_adapter.store.interfaces import RequestLog
from uws_adapter.store.line_counts import identities_of

__all__ = ["BUDGET_WINDOW", "Reservation", "lines_over", "reserve", "wanted_identities"]

_log = logging.getLogger("uws_adapter.provisioning")

#: The window the budget counts over, in seconds.
BUDGET_WINDOW = 24 * 60 * 60
#: Per line: (the line, its actions in the window, when it has a free action again).
Over = Tuple[Tuple[str, int, float], ...]


def lines_over(devices: Sequence[Device], found: Dict[str, List[Tuple[str, float]]], budget: int) -> Over:
    """The lines among ``devices`` that already had ``budget`` actions in the window, given their
    recent actions ``found`` (per identity: request id, when). A line named by several identifiers
    counts each request once."""
    if not found and budget > 0:
        # No line had an action: none is over. The common answer, given at once: normalising
        # 10,000 devices' identities took 14 ms, half of the budget check (issue 19).
        return ()
    over: List[Tuple[str, int, float]] = []
    # Each device's identities as the store computes them (the same strings as identity()'s,
    # without normalising what a DeviceIdentifier has normalised already).
    for device, names in zip(devices, identities_of(devices)):
        requests_seen: Dict[str, float] = {}
        for name in names:
            for request_id, when in found.get(name, ()):
                requests_seen[request_id] = min(when, requests_seen.get(request_id, when))
        if len(requests_seen) >= budget:
            times = sorted(requests_seen.values())
            # Sending needs len - k + 1 <= budget: the (len - budget + 1)th oldest must age out.
            over.append((str(device), len(times), times[len(times) - budget] + BUDGET_WINDOW))
    return tuple(over)


def wanted_identities(devices: Sequence[Device]) -> List[str]:
    """Every identity that names one of ``devices``, once."""
    return sorted(set().union(*identities_of(devices)))


@dataclass(frozen=True)
class Reservation:
    """A device-list request recorded as pending in ``store`` before it is sent."""

    store: RequestLog
    id: str
    action: str
    forced: bool

    def confirm(self, request_id: str) -> None:
        """It went out and the carrier answered with ``request_id``."""
        try:
            self.store.confirm_request(self.id, request_id)
        except StoreError as exc:  # it still counts, as pending; only its tracking by RequestId is lost
            _log.warning("request %s was sent but not recorded under its RequestId: %s", request_id, exc)

    def release(self) -> None:
        """It provably never left (a fault answer, a connection never made): the lines are free."""
        try:
            self.store.release_request(self.id)
        except StoreError as exc:  # it keeps counting until it ages out: safe, if strict
            _log.warning("could not release the budget reservation %s: %s", self.id, exc)

    def unknown(self) -> Optional[str]:
        """Its outcome is unknown: kept, under an id that says so (returned: ``status`` accepts it),
        so that its lines count."""
        stand_in = "outcome-unknown:" + self.id.partition(":")[2]
        try:
            self.store.confirm_request(self.id, stand_in)
        except StoreError as exc:  # kept as pending instead: it counts all the same
            _log.warning("could not mark %s as of unknown outcome: %s", self.id, exc)
            return None
        _log.warning("a %s request's outcome is unknown; recorded as %s for the daily budget", self.action, stand_in)
        return stand_in


def reserve(
    store: RequestLog, action: str, devices: Sequence[Device], *, api: str, budget: Optional[int], force: bool,
    clock: Callable[[], float],
) -> Reservation:  # fmt: skip
    """Reserve a device-list request in ``store``: refused with :class:`BudgetExceeded` when it would
    take a line over ``budget`` (None: no guard) unless ``force`` (then logged, and recorded as
    forced)."""
    verdict: List[Over] = []

    def admit(found: Dict[str, List[Tuple[str, float]]]) -> Optional[bool]:
        over = lines_over(devices, found, budget) if budget is not None else ()
        verdict.append(over)
        if over and not force:
            return None
        return bool(over)

    since = clock() - BUDGET_WINDOW if budget is not None else None
    reservation = store.reserve_request(action, devices, api=api, since=since, admit=admit, at_least=budget or 1)
    over = verdict[-1] if verdict else ()
    if reservation is None:
        metrics.budget_decision(api, forced=False)
        raise BudgetExceeded(over, budget or 0)
    if over:
        metrics.budget_decision(api, forced=True)
        _log.warning(
            "sending over the daily budget of %d on purpose (force): %s", budget,
            ", ".join(f"{line} ({count} in 24 h)" for line, count, _ in over[:20]),
        )  # fmt: skip
    return Reservation(store, reservation, action, bool(over))
