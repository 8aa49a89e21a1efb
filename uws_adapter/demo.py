"""The end-to-end demo (``uws-adapter demo``): the emulator, the receiver and a client together on
loopback, suspending then restoring every emulated line and checking each reached its state."""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, TextIO

from uws_adapter.emulator.core import ACTIVE, DEFAULT_ACCOUNT, SUSPENDED, generated_devices
from uws_adapter.emulator.http import Emulator
from uws_adapter.model.actions import Restore, Suspend
from uws_adapter.provisioning.base import Provisioner
from uws_adapter.receiver.app import Receiver
from uws_adapter.rest.client import RestClient
from uws_adapter.serving.thread import ServedApp
from uws_adapter.store.interfaces import RequestStatus
from uws_adapter.store.sqlite import Store
from uws_adapter.tracking import summary, wait_for
from uws_adapter.uws.client import UwsClient

__all__ = ["run_demo"]


def _what_is_missing(action: str, expected: str, lines: Sequence[Any], statuses: Dict[str, RequestStatus]) -> List[str]:
    """Why a demo phase failed, in words."""
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
                    _, statuses = wait_for(store, ids, timeout=timeout, out=sys.stderr)
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
