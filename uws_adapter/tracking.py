"""Following requests to completion: waiting with a progress bar, and summaries. (The end-to-end
demo is :mod:`uws_adapter.demo`.)"""

from __future__ import annotations

import datetime
import time
from typing import Callable, Dict, Optional, Sequence, TextIO, Tuple

from uws_adapter.model.devices import KINDS
from uws_adapter.store.interfaces import RequestStatus, Tracking

_KIND_ORDER = {kind: rank for rank, kind in enumerate(KINDS)}

__all__ = [
    "COMPLETE", "DEFAULT_SETTLE", "NOTHING_ARRIVED", "NOTHING_ARRIVED_HINT", "SETTLED", "TIMED_OUT", "Progress",
    "iso_time", "plural", "progress_bar", "shown_device", "summary", "wait_for",
]  # fmt: skip

#: How long ``wait`` waits without a new callback before it calls an open-ended request settled:
#: the carrier re-sends an unacknowledged callback after about 5 minutes [doc], so a quiet period
#: as long as that means the callbacks have stopped coming [inferred].
DEFAULT_SETTLE = 300.0

#: The ends of a wait, as the CLI's exit codes (documented in docs/cli-notes.md).
#: NOTHING_ARRIVED: an open-ended request settled without a single callback - nothing came at all,
#: which usually means no listener, a receiver that is down or unreachable, or another store.
COMPLETE, TIMED_OUT, SETTLED, NOTHING_ARRIVED = 0, 1, 3, 4
#: What to check when nothing arrived (said by ``wait`` and the demo).
NOTHING_ARRIVED_HINT = (
    "no callback arrived at all: check that a listener is registered for the account (uws-adapter listeners list "
    "ACCOUNT, or the UWS registration), that the receiver runs and the carrier can reach it, that the receiver "
    "accepts the credentials registered with the listener (its log says 401 if not), and that --db is the store "
    "that receiver writes"
)


def plural(count: int, word: str) -> str:
    """``1 device``, ``2 devices``, ``3,000 callbacks``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def shown_device(key: str) -> str:
    """A device as the command line writes it, whichever way it was stored (``IMEI:1+ICCID:2`` as
    recorded, ``ICCID:2|IMEI:1`` as keyed from a callback): its identifiers joined with ``+``, in
    the order of :data:`~uws_adapter.model.devices.KINDS`, so that one device reads one way."""
    parts = [part for part in key.replace("|", "+").split("+") if part]
    return "+".join(sorted(parts, key=lambda part: (_KIND_ORDER.get(part.partition(":")[0].upper(), 99), part)))


def iso_time(when: Optional[float]) -> Optional[str]:
    """Epoch seconds as ISO 8601 UTC (``2026-12-07T09:30:00.123Z``), None as None."""
    if when is None:
        return None
    moment = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = width if total == 0 else min(width, done * width // total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}"


class Progress:
    """Progress as people expect it: a bar redrawn in place on a terminal, otherwise a plain line
    every ``every`` seconds (a log fills with nothing but progress otherwise)."""

    def __init__(self, out: Optional[TextIO], *, every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.out = out
        self.every = every
        self.clock = clock
        self.terminal = bool(out is not None and getattr(out, "isatty", lambda: False)())
        self._last: Optional[float] = None

    def show(self, statuses: Sequence[RequestStatus], *, final: bool = False) -> None:
        if self.out is None:
            return
        heard = sum(s.callbacks for s in statuses)
        if any(s.open_ended for s in statuses):
            text = f"{plural(heard, 'callback')} so far"
        else:
            text = progress_bar(heard, sum(s.total for s in statuses)) + " callbacks"
        if self.terminal:
            self.out.write("\r" + text + ("\n" if final else ""))
        else:
            now = self.clock()
            if not final and self._last is not None and now - self._last < self.every:
                return
            self._last = now
            self.out.write(text + "\n")
        self.out.flush()


def wait_for(
    store: Tracking,
    request_ids: Sequence[str],
    *,
    timeout: float = 600.0,
    settle: float = DEFAULT_SETTLE,
    out: Optional[TextIO] = None,
    poll: float = 0.2,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Tuple[int, Dict[str, RequestStatus]]:
    """Poll the store until the requests are done, or ``timeout`` passes; returns how the wait
    ended (:data:`COMPLETE`, :data:`SETTLED`, :data:`NOTHING_ARRIVED` or :data:`TIMED_OUT`) and
    where each request stands.

    A device-list request is done when every listed device has a callback. An open-ended one
    (account, group, filter) is done when no callback of it has arrived for ``settle`` seconds:
    then it is *settled*, never complete, since no total exists to compare with - or, when not
    one callback came, :data:`NOTHING_ARRIVED`."""
    started = clock()
    deadline = started + timeout
    progress = Progress(out, clock=clock)
    while True:
        statuses = {rid: store.status(rid) for rid in request_ids}
        now = clock()
        quiet = [now - max(s.last_callback_at or 0.0, s.sent_at or 0.0, started) for s in statuses.values()]
        done = all(s.complete or (not s.pending and q >= settle) for s, q in zip(statuses.values(), quiet))
        if done or now >= deadline:
            progress.show(list(statuses.values()), final=True)
            if not done:
                return TIMED_OUT, statuses
            if all(s.complete for s in statuses.values()):
                return COMPLETE, statuses
            return (NOTHING_ARRIVED if all(s.callbacks == 0 for s in statuses.values()) else SETTLED), statuses
        progress.show(list(statuses.values()))
        sleep(poll)


def summary(status: RequestStatus, *, settled: bool = False) -> str:
    """One line per request, then one per failed device."""
    counts = f"{len(status.succeeded):,} succeeded, {len(status.failed):,} failed"
    if not status.known:
        head = f"{status.request_id}: nothing known (not sent through this store, and no callback yet)"
    elif status.open_ended:
        state = "settled: no callback for the settle period" if settled else "callbacks may still come"
        head = (
            f"{status.request_id} {status.action or '?'}: open-ended (account, group or filter): "
            f"{plural(status.callbacks, 'callback')} so far ({counts}); {state}"
        )
    elif status.callbacks == 0:
        head = (
            f"{status.request_id} {status.action or '?'}: sent, no callback yet (0 of {plural(status.total, 'device')})"
        )
    else:
        state = "complete" if status.complete else "in progress"
        head = (
            f"{status.request_id} {status.action or '?'}: {counts}, "
            f"{len(status.pending):,} pending of {status.total:,} ({state})"
        )
    lines = [head]
    failed = sorted((shown_device(device), code) for device, code in status.failed.items())
    lines += [f"  failed {device}: {code or 'no fault code'}" for device, code in failed]
    return "\n".join(lines)
