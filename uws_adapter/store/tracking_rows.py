"""Where a request stands, from the rows any backend keeps: shared by the SQLite and PostgreSQL
stores so that both answer :meth:`~uws_adapter.store.interfaces.Tracking.status` alike."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from uws_adapter.store.interfaces import RequestStatus


def request_status(
    request_id: str,
    sent: Optional[Sequence[Any]],
    identifiers: Sequence[Sequence[Any]],
    events: Sequence[Sequence[Any]],
) -> RequestStatus:
    """``sent``: the request's (action, devices as JSON, sent_at) row, if recorded;
    ``identifiers``: its (identifier, device position) rows; ``events``: its (device, succeeded,
    fault code, action, received_at) rows, NiddService callbacks left out (a NiddService callback
    follows an NB-IoT restore [doc]; the device's outcome is its CarrierService callback)."""
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
