"""Running a receiver's handlers (the bridge's relay, say) on each stored event, at least once.

Each handler has its own lane of ``workers`` threads, so that a slow handler (a legacy listener
that trickles its answer) delays only its own runs, never another handler's. A worker claims
**one run at a time**, for ``lease`` seconds, just before it runs it: a claim is a lease per run,
taken when the run starts, so a slow run never eats into the lease of runs queued behind it, and
after a crash (kill -9) only the runs that were in flight wait for their lease to run out — the
rest were never claimed and another instance takes them at once. The lease must be well above
what one run may take: a handler that declares a ``deadline`` (the relay's engine deadline) is
refused at start unless ``lease`` is at least :data:`LEASE_MARGIN` times it, so that a run never
outlives its claim and is taken by a second instance while it goes on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Callable, Dict, List, Optional

from uws_adapter import metrics
from uws_adapter.errors import HandlerGaveUp, InputError, StoreError, shown
from uws_adapter.settings.receiver import DEFAULT_HANDLER_LEASE
from uws_adapter.store.interfaces import ReceiverStore, StoredEvent
from uws_adapter.waits import check_seconds

__all__ = ["DEFAULT_HANDLER_LEASE", "DEFAULT_HANDLER_WORKERS", "LEASE_MARGIN", "Handler", "HandlerRunner"]

Handler = Callable[[StoredEvent], None]
_log = logging.getLogger("uws_adapter.receiver")

#: Runs of one handler in flight at once (each its own connection to the handler's listener).
DEFAULT_HANDLER_WORKERS = 4
#: How many times a handler's ``deadline`` its lease must be.
LEASE_MARGIN = 2.0


def check_lease(lease: object, handlers: Dict[str, Handler]) -> float:
    """``lease`` as seconds, well above every handler's declared ``deadline``."""
    # The one check of seconds given to us (an integer past a float was a raw OverflowError here).
    seconds = check_seconds("handler_lease", lease, "120 (--handler-lease)")
    for name, handler in handlers.items():
        deadline = getattr(handler, "deadline", None)
        if isinstance(deadline, (int, float)) and seconds < LEASE_MARGIN * deadline:
            raise InputError(
                "handler_lease",
                f"{seconds:g} s is not well above the {deadline:g} s a {name} run may take",
                f"use at least {LEASE_MARGIN * deadline:g} s (--handler-lease), so that no run outlives its claim",
            )
    return seconds


class HandlerRunner:
    """The lanes of worker threads (see the module), started at once; :meth:`wake` after a commit
    that queued new runs, :meth:`close` to stop (runs in flight finish or are taken again when
    their lease is out)."""

    def __init__(
        self,
        store: ReceiverStore,
        handlers: Dict[str, Handler],
        *,
        backoff: float = 1.0,
        lease: float = DEFAULT_HANDLER_LEASE,
        workers: int = DEFAULT_HANDLER_WORKERS,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise InputError("handler_workers", f"{shown(workers)} is not a count", "use 1 to 64")
        self.store = store
        self.handlers = dict(handlers)
        self.backoff = backoff
        self.lease = check_lease(lease, self.handlers)
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._generation = 0  # counts wakes, so that a wake between a claim and a wait is not lost
        self._threads: List[threading.Thread] = [
            threading.Thread(target=self._work, args=(name,), daemon=True, name=f"uws-handler-{name}-{number}")
            for name in self.handlers
            for number in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def is_alive(self) -> bool:
        """Every worker is still running (none died of an error it did not catch)."""
        return all(thread.is_alive() for thread in self._threads)

    def wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=timeout / max(1, len(self._threads)))

    def _work(self, name: str) -> None:
        while not self._stopping.is_set():
            with self._changed:
                seen = self._generation
            try:
                # Claimed atomically (leased) as it starts: never run by two workers at once, in
                # this process or in another instance sharing the store.
                due = self.store.claim_handlers(1, lease=self.lease, names=(name,))
            except Exception as exc:  # the store is down for a while: wait and look again
                _log.warning("handler queue unreadable, retrying in %s s: %s", self.backoff, exc)
                due = []
            if due:
                event_id, _, attempts = due[0]
                try:
                    self._run_one(event_id, name, attempts)
                except Exception as exc:  # a store error around the run: run again when its lease is out
                    _log.warning("handler %s on event %d: store error, will retry: %s", name, event_id, exc)
                continue
            with self._changed:
                if self._generation == seen and not self._stopping.is_set():
                    self._changed.wait(timeout=self.backoff)

    def _run_one(self, event_id: int, name: str, attempts: int) -> None:
        handler = self.handlers[name]
        event = self.store.event(event_id)
        try:
            if event is not None:
                handler(replace(event, handler_attempts=attempts))
        except HandlerGaveUp as exc:
            metrics.handler_run(name, "gave_up", attempts)
            reason = exc.reason
            _log.error("handler %s gave up on event %d (request %s): %s", name, event_id, _request_of(event), reason)
            self._until_stored(lambda: self.store.handler_gave_up(event_id, name, reason))
            return
        except Exception as exc:  # a handler's failure is retried, never lost
            metrics.handler_run(name, "failed", attempts)
            delay = min(300.0, self.backoff * 2**attempts)
            _log.warning("handler %s failed on event %d (request %s, attempt %d), retry in %.0f s: %s: %s",
                         name, event_id, _request_of(event), attempts + 1, delay, type(exc).__name__, exc)  # fmt: skip
            self.store.handler_failed(event_id, name, f"{type(exc).__name__}: {exc}", delay)
            return
        # The handler ran: recording that must not be given up on, or it would run again.
        metrics.handler_run(name, "done", attempts)
        self._until_stored(lambda: self.store.handler_done(event_id, name))
        _log.debug("handler %s done on event %d (request %s, attempt %d)", name, event_id, _request_of(event),
                   attempts + 1)  # fmt: skip

    def _until_stored(self, write: Callable[[], None]) -> None:
        while True:
            try:
                write()
                return
            except StoreError as exc:
                _log.warning("could not record a handler run, retrying in %s s: %s", self.backoff, exc)
                if self._stopping.wait(self.backoff):
                    return


def _request_of(event: Optional[StoredEvent]) -> str:
    return repr(event.callback.request_id[:80]) if event is not None else "unknown"
