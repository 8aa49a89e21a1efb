"""The REST device-list API (``POST /m2m/v1/devices/actions/list``), for previews: which lines a
selection by account, group, service plan and custom fields matches now, without acting on them.

Facts, each tagged as in ``uws-wire-notes.md`` ([doc]: the carrier's "Retrieve Device
Information" page or the vendor SDK's models ``AccountDeviceListRequest``,
``AccountDeviceListResult``, ``ThingspaceDevice``, ``CarrierInformation``; [inferred]: ours):

- Same headers as every M2M call: the bearer token and ``VZ-M2M-Token`` [doc].
- Request body: ``accountName``, ``groupName``, ``servicePlan``, ``customFields``
  (``[{key, value}]``), ``currentState``, ``earliest``, ``latest``, ``deviceId``,
  ``largestDeviceIdSeen``, ``maxNumberOfDevices`` [doc: SDK model]; all criteria must match [doc].
  The filter names are those of restore and suspend, so a preview sends the same filters [doc].
- Answer: ``devices`` (``accountName``, ``deviceIds`` ``[{id, kind}]``, ``carrierInformations``
  ``[{carrierName, servicePlan, state}]``, ``groupNames``, ``customFields``, ``createdAt``, ...)
  and ``hasMoreData`` [doc: SDK model], which is true with HTTP 202 [doc: SDK model's text].
- Paging: up to 2000 devices per answer [doc]; without ``largestDeviceIdSeen`` they come oldest
  first by the date they were added, and the next page is asked for by moving ``earliest`` to
  where the last one ended [doc]. The numeric device ID that ``largestDeviceIdSeen`` pages by is in
  no answer model, so we page by ``earliest`` = the last device's ``createdAt`` [doc]; that the
  bound is inclusive (the last device comes again) is [inferred], so lines are counted once by
  their identifiers. A page that adds no line (more devices added in the same instant than one
  page holds) ends the count, marked incomplete [inferred].
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from uws_adapter.errors import InputError
from uws_adapter.model.devices import DeviceIdentifier, identity
from uws_adapter.model.selection import DeviceQuery
from uws_adapter.rest.body import query_filters

__all__ = ["DEVICE_LIST_PATH", "PAGE_LIMIT", "ListedLine", "Preview", "device_list_body", "preview", "read_page"]

DEVICE_LIST_PATH = "/m2m/v1/devices/actions/list"  # [doc]
#: Devices in one answer at most [doc].
PAGE_LIMIT = 2000
#: Pages a preview reads at most (2,000,000 lines): a bound against a service that never ends.
MAX_PAGES = 1000


def device_list_body(query: DeviceQuery, *, earliest: Optional[str] = None) -> Dict[str, Any]:
    """The list request for the lines ``query`` selects (the filters restore and suspend send)."""
    body = query_filters(query)
    if earliest is not None:
        body["earliest"] = earliest
    return body


@dataclass(frozen=True)
class ListedLine:
    """One line of a listing: its identifiers and what the answer says of it."""

    identifiers: Tuple[DeviceIdentifier, ...]
    state: Optional[str] = None
    service_plan: Optional[str] = None
    groups: Tuple[str, ...] = ()
    account: Optional[str] = None
    created_at: Optional[str] = None

    @property
    def key(self) -> str:
        return "+".join(sorted(identity(i.kind, i.identifier) for i in self.identifiers))

    def text(self) -> str:
        ids = "+".join(map(str, self.identifiers)) or "(no identifier)"
        facts = [f"state {self.state or '?'}"]
        if self.service_plan:
            facts.append(f"plan {self.service_plan}")
        if self.groups:
            facts.append("group " + ", ".join(self.groups))
        return f"{ids}  {', '.join(facts)}"


def _text(value: object) -> Optional[str]:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _line(item: Mapping[str, Any]) -> Optional[ListedLine]:
    identifiers = []
    for pair in item.get("deviceIds") or ():
        if not isinstance(pair, Mapping):
            continue
        try:
            identifiers.append(DeviceIdentifier(str(pair.get("kind") or ""), str(pair.get("id") or "")))
        except InputError:
            continue  # a kind we do not know (IMSI, EID under another name): not one we can show
    if not identifiers:
        return None
    carrier = next((c for c in item.get("carrierInformations") or () if isinstance(c, Mapping)), {})
    groups = tuple(str(g) for g in item.get("groupNames") or () if isinstance(g, str))
    return ListedLine(
        tuple(identifiers), _text(carrier.get("state")), _text(carrier.get("servicePlan")), groups,
        _text(item.get("accountName")), _text(item.get("createdAt")),
    )  # fmt: skip


def read_page(answer: Mapping[str, Any]) -> Tuple[List[ListedLine], bool]:
    """The lines of one answer, and whether more data is to be asked for."""
    devices = answer.get("devices")
    lines = [line for item in devices if isinstance(item, Mapping) for line in [_line(item)] if line is not None] if (
        isinstance(devices, list)
    ) else []  # fmt: skip
    return lines, answer.get("hasMoreData") is True


@dataclass(frozen=True)
class Preview:
    """What a selection matches now: ``count`` lines (a lower bound unless ``complete``), the
    first of them, and how many are in each state."""

    count: int
    first: Tuple[ListedLine, ...]
    states: Dict[str, int] = field(default_factory=dict)
    complete: bool = True

    def ready_for(self, action: str) -> Optional[int]:
        """How many of the lines are in the state ``action`` acts on: Restore from Suspend, Suspend
        from Active [doc: the state machine]. The answer's state names are read by their start
        ("suspend...", "activ...") [inferred: the SDK lists Activate, Suspend, Deactive,
        Pre-active]. None when the action is neither or no line has a state."""
        start = {"restore": "suspend", "suspend": "activ"}.get(action.lower())
        if start is None or set(self.states) <= {"unknown"}:
            return None
        return sum(n for state, n in self.states.items() if state.lower().startswith(start))

    def lines(self, what: str, action: Optional[str] = None) -> List[str]:
        """The preview as text: ``what`` names the selection, ``action`` what would be sent."""
        counted = f"{self.count}" if self.complete else f"at least {self.count}"
        out = [f"{counted} line(s) match {what} now"]
        out += [f"  {line.text()}" for line in self.first]
        if self.count > len(self.first):
            out.append(f"  ... and {self.count - len(self.first)} more")
        if self.states:
            out.append("states: " + ", ".join(f"{state} {n}" for state, n in sorted(self.states.items())))
        ready = self.ready_for(action) if action else None
        if action and ready is not None and ready < self.count:
            wanted = "suspended" if action.lower() == "restore" else "active"
            out.append(f"{action} acts on {wanted} lines: {self.count - ready} of these are not; each of them "
                       "would get a failed callback (DeviceState.Invalid)")  # fmt: skip
        if not self.complete:
            out.append("the listing could not be paged to its end: the count is a lower bound")
        return out


def preview(list_page: Any, query: DeviceQuery, *, first: int = 10) -> Preview:
    """The lines ``query`` matches, read page by page through ``list_page(body) -> answer``
    (:meth:`.RestClient.list_devices`)."""
    seen: Dict[str, ListedLine] = {}
    earliest: Optional[str] = None
    complete = False
    for _ in range(MAX_PAGES):
        lines, more = read_page(list_page(device_list_body(query, earliest=earliest)))
        added = 0
        for line in lines:
            if line.key not in seen:
                seen[line.key] = line
                added += 1
        if not more:
            complete = True
            break
        following = lines[-1].created_at if lines else None
        if added == 0 or following is None or following == earliest:
            break  # no way forward: counted so far, marked incomplete
        earliest = following
    found = list(seen.values())
    states = dict(Counter(line.state or "unknown" for line in found))
    return Preview(len(found), tuple(found[:first]), states, complete)
