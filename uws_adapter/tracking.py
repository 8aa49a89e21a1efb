"""Following requests to completion: waiting with a progress bar, summaries, and the end-to-end
demo that runs the emulator, the receiver and the client together on loopback."""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from uws_adapter.emulator.core import ACTIVE, DEFAULT_ACCOUNT, SUSPENDED, generated_devices
from uws_adapter.emulator.http import Emulator
from uws_adapter.model.actions import Restore, Suspend
from uws_adapter.provisioning.base import Provisioner
from uws_adapter.receiver.app import Receiver
from uws_adapter.rest.client import RestClient
from uws_adapter.serving.thread import ServedApp
from uws_adapter.store.interfaces import RequestStatus, Tracking
from uws_adapter.store.sqlite import Store
from uws_adapter.uws.client import UwsClient

#: How long ``wait`` waits without a new callback before it calls an open-ended request settled:
#: the carrier re-sends an unacknowledged callback after about 5 minutes [doc], so a quiet period
#: as long as that means the callbacks have stopped coming [inferred].
DEFAULT_SETTLE = 300.0

#: The ends of a wait, as the CLI's exit codes (documented in docs/python.md).
COMPLETE, TIMED_OUT, SETTLED = 0, 1, 3


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
        self._drawn = False

    def show(self, statuses: Sequence[RequestStatus], *, final: bool = False) -> None:
        if self.out is None:
            return
        heard = sum(s.callbacks for s in statuses)
        if any(s.open_ended for s in statuses):
            text = f"{heard:,} callbacks so far"
        else:
            text = progress_bar(heard, sum(s.total for s in statuses)) + " callbacks"
        if self.terminal:
            self.out.write("\r" + text + ("\n" if final else ""))
            self._drawn = True
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
    ended (:data:`COMPLETE`, :data:`SETTLED` or :data:`TIMED_OUT`) and where each request stands.

    A device-list request is done when every listed device has a callback. An open-ended one
    (account, group, filter) is done when no callback of it has arrived for ``settle`` seconds:
    then it is *settled*, never complete, since no total exists to compare with."""
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
            return (COMPLETE if all(s.complete for s in statuses.values()) else SETTLED), statuses
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
            f"{status.callbacks:,} callbacks so far ({counts}); {state}"
        )
    elif status.callbacks == 0:
        head = f"{status.request_id} {status.action or '?'}: sent, no callback yet (0 of {status.total:,} devices)"
    else:
        state = "complete" if status.complete else "in progress"
        head = (
            f"{status.request_id} {status.action or '?'}: {counts}, "
            f"{len(status.pending):,} pending of {status.total:,} ({state})"
        )
    lines = [head]
    lines += [f"  failed {device}: {code or 'no fault code'}" for device, code in sorted(status.failed.items())]
    return "\n".join(lines)


def _what_is_missing(action: str, expected: str, lines: Sequence[Any], statuses: Dict[str, RequestStatus]) -> List[str]:
    """Why a demo phase failed, in words: requests without all their callbacks, failed devices,
    lines not in the state the action should have left them in."""
    reasons = [
        f"request {s.request_id}: {len(s.pending):,} of {s.total:,} devices without a callback"
        for s in statuses.values()
        if s.pending
    ]
    reasons += [f"request {s.request_id}: {len(s.failed):,} devices failed" for s in statuses.values() if s.failed]
    wrong = [line for line in lines if line.state != expected]
    if wrong:
        shown = ", ".join(f"{line.device} is {line.state}" for line in wrong[:3])
        more = f" and {len(wrong) - 3:,} more" if len(wrong) > 3 else ""
        reasons.append(f"{len(wrong):,} lines not {expected} after {action}: {shown}{more}")
    return reasons


def run_demo(
    devices: int = 3000,
    *,
    out: TextIO = sys.stdout,
    progress: Optional[TextIO] = sys.stderr,
    timeout: float = 300.0,
    backend: str = "soap",
) -> bool:
    """Suspend then restore ``devices`` emulated lines over UWS SOAP (or the REST API), with
    callbacks into a receiver and a temporary store; True when every device reached the expected
    state."""
    # waitress warns on its task queue depth, which a burst of callbacks reaches by design here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    listener_password = secrets.token_urlsafe(16)
    lines = generated_devices(devices)
    with tempfile.TemporaryDirectory(prefix="uws-demo-") as folder, Store(Path(folder) / "demo.db") as store:
        receiver = Receiver(store, username="demo-listener", password=listener_password)
        server = ServedApp(receiver, threads=16, max_body=receiver.max_body, ident="uws-demo-receiver")
        server.start()
        try:
            with Emulator(devices=lines, callback_spacing=5.0, delivery_workers=16) as emulator:
                listener_url = f"{server.url}/callbacks"
                client: Provisioner
                if backend == "rest":
                    client = RestClient(
                        base_url=emulator.rest_url, client_id="ts-client", client_secret="ts-secret",
                        username="uws-user", password="uws-password", store=store,
                    )  # fmt: skip
                    client.register_callback(
                        DEFAULT_ACCOUNT, "CarrierService", listener_url, username="demo-listener",
                        password=listener_password,
                    )  # fmt: skip
                else:
                    emulator.register_listener(DEFAULT_ACCOUNT, listener_url, "demo-listener", listener_password)
                    client = UwsClient(
                        base_url=emulator.base_url, username="uws-user", password="uws-password", store=store
                    )
                address = emulator.rest_url if backend == "rest" else emulator.base_url
                out.write(f"emulator {address} ({backend}), receiver {listener_url}, {devices:,} devices\n")
                everything = [line.device for line in lines]
                ok = True
                for action, expected in ((Suspend(), SUSPENDED), (Restore(), ACTIVE)):
                    started = time.monotonic()
                    batches = client.change_device_state_in_batches(action, everything)
                    ids: List[str] = [batch.request_id for batch in batches]
                    out.write(f"{action.element}: sent {len(ids)} request(s), waiting for callbacks\n")
                    out.flush()
                    _, statuses = wait_for(store, ids, timeout=timeout, out=progress)
                    for status in statuses.values():
                        out.write(summary(status) + "\n")
                    reached = sum(1 for line in lines if line.state == expected)
                    took = time.monotonic() - started
                    out.write(f"{action.element}: {reached:,}/{devices:,} lines {expected} in {took:.1f} s\n")
                    missing = _what_is_missing(action.element, expected, lines, statuses)
                    for reason in missing:
                        out.write(f"  missing: {reason}\n")
                    ok = ok and not missing
                counts = store.counts()
                out.write(f"store: {counts['events']:,} events from {counts['attempts']:,} deliveries\n")
                out.write("demo passed\n" if ok else "demo FAILED\n")
                return ok
        finally:
            server.stop()
            receiver.close()
