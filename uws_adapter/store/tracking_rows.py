"""Where a request stands, and what each line did lately, read from the rows of the SQL core
(:mod:`.core`): :meth:`~uws_adapter.store.interfaces.Tracking.status` and
:meth:`~uws_adapter.store.interfaces.RequestLog.recent_actions`."""

from __future__ import annotations

import json
from typing import Dict, Iterable, List, Optional, Set, Tuple

from uws_adapter.store import unlisted
from uws_adapter.store.interfaces import RequestStatus
from uws_adapter.store.names import NAME, key_of
from uws_adapter.store.sql import Row, Sql

#: Per identity, its line's recent actions as (request id, when) pairs.
LineActions = Dict[str, List[Tuple[str, float]]]


def request_status(db: Sql, request_id: str) -> RequestStatus:
    """Per device of the request known as ``request_id``: succeeded, failed or pending. NiddService
    callbacks are left out (a NiddService callback follows an NB-IoT restore [doc]; the device's
    outcome is its CarrierService callback)."""
    key = key_of(db, request_id)
    sent: Optional[Row] = None
    identifiers: List[Row] = []
    if key is not None:
        sent = db.one("SELECT action, devices, sent_at FROM requests WHERE request_id = ?", (key,))
        identifiers = db.all("SELECT identifier, device FROM request_identifiers WHERE request_id = ?", (key,))
    events = db.all(
        "SELECT device, succeeded, fault_code, action, received_at FROM events"
        " WHERE request_id = ? AND service != 'NiddService'",
        (request_id,),
    )
    positions = {str(i[0]): int(i[1]) for i in identifiers}
    names: List[str] = json.loads(sent[1]) if sent else []
    outcome: Dict[str, Tuple[bool, Optional[str]]] = {}
    action = sent[0] if sent else None
    last: Optional[float] = None
    for device, succeeded, fault_code, event_action, received_at in events:
        action = action or event_action or None
        last = received_at if last is None else max(last, received_at)
        matched = next((positions[part] for part in device.split("|") if part in positions), None)
        name = names[matched] if matched is not None else device
        outcome[name] = (bool(succeeded), fault_code)
    every = names or sorted(outcome)
    return RequestStatus(
        request_id=request_id,
        action=action,
        total=len(every),
        succeeded=tuple(n for n in every if n in outcome and outcome[n][0]),
        failed={n: outcome[n][1] for n in every if n in outcome and not outcome[n][0]},
        pending=tuple(n for n in every if n not in outcome),
        # No device list (a query, or a request this store never sent): no total is known.
        open_ended=not names,
        sent_at=float(sent[2]) if sent else None,
        last_callback_at=last,
    )


def line_actions(db: Sql, wanted: Iterable[str], since: float, callbacks: Optional[List[Row]] = None) -> LineActions:
    """:meth:`~uws_adapter.store.interfaces.RequestLog.recent_actions` of the identities ``wanted``:
    ``callbacks`` are :func:`.unlisted.callbacks` after ``since``, if the caller read them."""
    if callbacks is None:
        callbacks = unlisted.callbacks(db, since)
    line_of: Dict[str, Set[str]] = {name: {name} for name in wanted}
    linked = db.all_in(
        "SELECT DISTINCT a.identifier, b.identifier FROM request_identifiers a JOIN request_identifiers b"
        " ON b.request_id = a.request_id AND b.device = a.device AND b.identifier != a.identifier WHERE {}",
        "a.identifier", sorted(line_of),
    )  # fmt: skip
    for mine, other in linked:
        line_of[str(mine)].add(str(other))
    named_by: Dict[str, Set[str]] = {}  # an identifier -> the wanted identities of its line
    for name, others in line_of.items():
        for other in others:
            named_by.setdefault(other, set()).add(name)
    found: Dict[str, Dict[str, float]] = {}

    def add(identifier: str, request_id: str, when: float) -> None:
        for name in named_by.get(identifier, ()):
            seen = found.setdefault(name, {})
            seen[request_id] = min(when, seen.get(request_id, when))

    requests = db.all_in(
        f"SELECT i.identifier, {NAME}, r.sent_at FROM request_identifiers i"
        " JOIN requests r ON r.request_id = i.request_id WHERE {} AND r.sent_at > ?",
        "i.identifier", sorted(named_by), (since,),
    )  # fmt: skip
    for identifier, request_id, sent_at in requests:
        add(str(identifier), str(request_id), float(sent_at))
    for request_id, device, received_at in callbacks:
        for part in str(device).split("|"):
            add(part, str(request_id), float(received_at))
    return {name: sorted(seen.items(), key=lambda pair: pair[1]) for name, seen in found.items()}
