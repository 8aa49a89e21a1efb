"""Where a request stands, from the rows any backend keeps: shared by the SQLite and PostgreSQL
stores so that both answer :meth:`~uws_adapter.store.interfaces.Tracking.status` alike."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

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


def recent_line_actions(
    wanted: Set[str],
    linked: Callable[[List[str]], Iterable[Sequence[Any]]],
    requests: Callable[[List[str]], Iterable[Sequence[Any]]],
    callbacks: Iterable[Sequence[Any]],
) -> Dict[str, List[Tuple[str, float]]]:
    """:meth:`~uws_adapter.store.interfaces.RequestLog.recent_actions` from a backend's rows:
    ``linked(identities)`` gives (identity, other identifier) pairs a request named together for
    one device; ``requests(identifiers)`` the (identifier, request id, sent_at) of recent requests
    naming them; ``callbacks`` the (request id, device key, received_at) of recent succeeded
    callbacks of requests the log does not name devices for."""
    line_of: Dict[str, Set[str]] = {name: {name} for name in wanted}
    for mine, other in linked(sorted(wanted)):
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

    for identifier, request_id, sent_at in requests(sorted(named_by)):
        add(str(identifier), str(request_id), float(sent_at))
    for request_id, device, received_at in callbacks:
        for part in str(device).split("|"):
            add(part, str(request_id), float(received_at))
    return {name: sorted(seen.items(), key=lambda pair: pair[1]) for name, seen in found.items()}
