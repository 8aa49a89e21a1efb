"""Following requests to completion: waiting with a progress bar, summaries, and the end-to-end
demo that runs the emulator, the receiver and the client together on loopback."""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO

from .actions import Restore, Suspend
from .client import UwsClient
from .emulator import ACTIVE, DEFAULT_ACCOUNT, SUSPENDED, Emulator, generated_devices
from .provisioning import Provisioner
from .receiver import Receiver, server_options
from .rest_client import RestClient
from .store import RequestStatus, Store


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = width if total == 0 else min(width, done * width // total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}"


def wait_for(
    store: Store, request_ids: Sequence[str], *, timeout: float = 600.0, out: Optional[TextIO] = None, poll: float = 0.2
) -> Dict[str, RequestStatus]:
    """Poll the store until every device of every request has a callback, or ``timeout`` passes.
    Draws a progress bar on ``out`` (a terminal) while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = {rid: store.status(rid) for rid in request_ids}
        done = sum(s.total - len(s.pending) for s in statuses.values())
        total = sum(s.total for s in statuses.values())
        if out is not None:
            out.write("\r" + progress_bar(done, total) + " callbacks")
            out.flush()
        if all(s.complete for s in statuses.values()) or time.monotonic() >= deadline:
            if out is not None:
                out.write("\n")
            return statuses
        time.sleep(poll)


def summary(status: RequestStatus) -> str:
    """One line per request, then one per failed device."""
    state = "complete" if status.complete else "incomplete"
    lines = [
        f"{status.request_id} {status.action or '?'}: {len(status.succeeded):,} succeeded, "
        f"{len(status.failed):,} failed, {len(status.pending):,} pending of {status.total:,} ({state})"
    ]
    lines += [f"  failed {device}: {code or 'no fault code'}" for device, code in sorted(status.failed.items())]
    return "\n".join(lines)


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
    from waitress.server import create_server

    # waitress warns on its task queue depth, which a burst of callbacks reaches by design here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    listener_password = secrets.token_urlsafe(16)
    lines = generated_devices(devices)
    with tempfile.TemporaryDirectory(prefix="uws-demo-") as folder, Store(Path(folder) / "demo.db") as store:
        receiver = Receiver(store, username="demo-listener", password=listener_password)
        server = create_server(receiver, **server_options(receiver, host="127.0.0.1", port=0, threads=16))
        threading.Thread(target=server.run, daemon=True, name="uws-demo-receiver").start()
        try:
            with Emulator(devices=lines, callback_spacing=5.0, delivery_workers=16) as emulator:
                listener_url = f"http://127.0.0.1:{server.effective_port}/callbacks"
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
                    statuses = wait_for(store, ids, timeout=timeout, out=progress)
                    for status in statuses.values():
                        out.write(summary(status) + "\n")
                    reached = sum(1 for line in lines if line.state == expected)
                    took = time.monotonic() - started
                    out.write(f"{action.element}: {reached:,}/{devices:,} lines {expected} in {took:.1f} s\n")
                    ok = ok and reached == devices and all(s.complete and not s.failed for s in statuses.values())
                counts = store.counts()
                out.write(f"store: {counts['events']:,} events from {counts['attempts']:,} deliveries\n")
                out.write("demo passed\n" if ok else "demo FAILED\n")
                return ok
        finally:
            server.close()
            receiver.close()
