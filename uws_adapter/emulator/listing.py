"""The emulator's REST device list (``POST /m2m/v1/devices/actions/list``) over its inventory, by the
facts (and what is [inferred]) :mod:`uws_adapter.rest.devicelist` lists: filters, pages of at most
``page_size`` devices with ``hasMoreData`` and HTTP 202, oldest first, paged by ``earliest`` or,
sorted by device ID, by ``largestDeviceIdSeen``.

Each line's ``createdAt`` is made up from its place in the inventory, one second apart from a
fixed start [inferred format: ISO 8601 with an offset], and its device ID is its place plus one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from uws_adapter.emulator.core import EmulatorFault
from uws_adapter.emulator.lines import EmulatedDevice
from uws_adapter.errors import Code
from uws_adapter.model.selection import CustomField

__all__ = ["LIST_FIELDS", "device_list"]

#: The request's fields [doc: AccountDeviceListRequest]; ``deviceId`` and ``filter`` are not
#: emulated and refused as unknown, as every other field is.
LIST_FIELDS = frozenset({
    "accountName", "groupName", "servicePlan", "customFields", "currentState", "earliest", "latest",
    "largestDeviceIdSeen", "maxNumberOfDevices",
})  # fmt: skip
_UNDEFINED = Code.REQUEST_UNDEFINED
_START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
#: The carrier each line is on [inferred: the name the carrierInformations of Verizon lines carry].
CARRIER = "Verizon Wireless"


def _added(position: int) -> dt.datetime:
    return _START + dt.timedelta(seconds=position)


def _when(data: Mapping[str, Any], key: str) -> Optional[dt.datetime]:
    value = data.get(key)
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise EmulatorFault(_UNDEFINED, f"{key} must be an ISO 8601 date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _count(data: Mapping[str, Any], key: str) -> Optional[int]:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EmulatorFault(_UNDEFINED, f"{key} must be a whole number")
    return value


def _device(line: EmulatedDevice, position: int) -> Dict[str, Any]:
    return {
        "accountName": line.account,
        "deviceIds": [{"id": i.identifier, "kind": i.kind.lower()} for i in line.device.identifiers],
        "carrierInformations": [{"carrierName": CARRIER, "servicePlan": line.service_plan, "state": line.state}],
        "connected": False,
        "createdAt": _added(position).isoformat(),
        "customFields": [{"key": k, "value": v} for k, v in sorted(line.custom_fields.items())],
        "groupNames": [line.group] if line.group else [],
    }


def device_list(
    devices: Sequence[EmulatedDevice], data: Mapping[str, Any], fields: Sequence[CustomField], *, page_size: int
) -> Dict[str, Any]:
    """One page of the listing: ``data`` holds only :data:`LIST_FIELDS`, its names as strings and
    an account some line is in, and ``fields`` are its custom fields (the REST front checks them)."""
    earliest, latest = _when(data, "earliest"), _when(data, "latest")
    after_id = _count(data, "largestDeviceIdSeen")
    asked = _count(data, "maxNumberOfDevices")  # 0 is refused below, not taken for "no limit"
    size = page_size if asked is None else min(page_size, asked)
    if size < 1:
        raise EmulatorFault(_UNDEFINED, "maxNumberOfDevices must be 1 or more")
    state = data.get("currentState")
    found: List[Tuple[int, EmulatedDevice]] = []
    for position, line in enumerate(devices):
        if after_id is not None and position + 1 <= after_id:
            continue
        added = _added(position)
        if (earliest is not None and added < earliest) or (latest is not None and added > latest):
            continue
        if state is not None and str(state).lower() != line.state.lower():
            continue
        if line.matches(data.get("accountName"), data.get("groupName"), data.get("servicePlan"), fields):
            found.append((position, line))
    page = found[:size]
    return {"devices": [_device(line, position) for position, line in page], "hasMoreData": len(found) > size}
