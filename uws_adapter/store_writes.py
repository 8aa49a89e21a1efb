"""What the store writes for each document the receiver takes: the transaction for a callback
(one event per service, RequestId, device and action; one attempt per delivery; its handler runs)
and for a refused document (a dead letter). Each is a function of a connection, run by the store's
writer inside a group commit (:meth:`Store.write`, :meth:`Store.commit_group`)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Callable, Optional, Sequence, Tuple

from .callbacks import CallbackRequest, ReportedDevice


def device_key(devices: Sequence[ReportedDevice]) -> str:
    """One key per device whatever the order or case its identifiers arrive in."""
    return "|".join(sorted(f"{d.kind}:{d.identifier.upper()}" for d in devices))


def callback_work(
    callback: CallbackRequest, handlers: Sequence[str] = ()
) -> Callable[[sqlite3.Connection], Tuple[int, bool]]:
    """The store transaction for one callback: insert its event (or count a re-send), its attempt,
    and its handler runs. Runs in the writer thread (:meth:`Store.write` or :meth:`Store.submit`)."""
    form = callback.to_dict()  # the password is redacted here, never stored
    # What a re-send may change without being "different": its count, and its devices' order.
    content = {k: v for k, v in form.items() if k != "callback_count"}
    content["devices"] = sorted(content["devices"], key=lambda d: (d["kind"], d["identifier"].upper()))
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    key = (callback.service or "", callback.request_id, device_key(callback.devices), callback.action or "")
    fault_code = callback.fault.code if callback.fault else None

    def work(db: sqlite3.Connection) -> Tuple[int, bool]:
        now = time.time()
        cursor = db.execute(
            "INSERT OR IGNORE INTO events (service, request_id, device, action, status, succeeded, fault_code,"
            " callback, content_hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, callback.status, int(callback.succeeded), fault_code, json.dumps(form), digest, now),
        )
        new = cursor.rowcount == 1
        if new:
            event_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO handler_queue (event_id, handler, next_at) VALUES (?, ?, ?)",
                [(event_id, name, now) for name in handlers],
            )
        else:
            event_id, first_digest = db.execute(
                "SELECT id, content_hash FROM events"
                " WHERE service = ? AND request_id = ? AND device = ? AND action = ?",
                key,
            ).fetchone()
            if first_digest != digest:
                db.execute("UPDATE events SET differs = 1 WHERE id = ?", (event_id,))
        db.execute(
            "INSERT INTO attempts (event_id, callback_count, content_hash, received_at) VALUES (?, ?, ?, ?)",
            (event_id, callback.callback_count, digest, now),
        )
        return event_id, new

    return work


def dead_letter_work(body: bytes, content_type: Optional[str], reason: str) -> Callable[[sqlite3.Connection], int]:
    """The store transaction that keeps a refused document (redacted and capped by the caller)."""

    def work(db: sqlite3.Connection) -> int:
        cursor = db.execute(
            "INSERT INTO dead_letters (received_at, content_type, reason, body) VALUES (?, ?, ?, ?)",
            (time.time(), content_type, reason, body),
        )
        return int(cursor.lastrowid or 0)

    return work
