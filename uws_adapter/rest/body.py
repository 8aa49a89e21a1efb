"""REST M2M request bodies from the same request model the SOAP envelopes use.

Field names, nesting, value types and key order follow the carrier's examples in
``thingspace-docs/`` [doc]. Those examples put every field in one body, which the same pages
forbid ("Do not use accountName, groupName, or customFields if you use [devices]"); real
integrations send ``accountName`` with a device list, as the docs recommend for logins that reach
several billing accounts. So: a device list may carry ``accountName``; group, service plan and
custom fields never go with a device list (the request model refuses that mix).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Sequence

from uws_adapter.errors import InputError
from uws_adapter.model.actions import Action, Restore, Suspend
from uws_adapter.model.devices import Device, as_tuple_of
from uws_adapter.model.selection import ACCOUNT_FIX, DeviceList, DeviceQuery, Selection, check_request, required_text
from uws_adapter.wire import MAX_DEVICES_PER_REQUEST, REST_BASE_URL

#: POST paths under the REST base URL [doc].
RESTORE_PATH = "/m2m/v1/devices/actions/restore"
SUSPEND_PATH = "/m2m/v1/devices/actions/suspend"
PROFILE_RESUME_PATH = "/m2m/v1/devices/profile/actions/profile_resume"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class RestRequest:
    """A REST request ready to send: ``method``, ``url`` and its JSON ``payload`` (``body``: UTF-8).
    Tokens are added by the client at send time."""

    method: str
    url: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", MappingProxyType(dict(self.payload)))

    @property
    def body(self) -> bytes:
        return json.dumps(dict(self.payload), ensure_ascii=False).encode("utf-8")


def _device_ids(device: Device, id_first: bool = True) -> Dict[str, Any]:
    # The examples write kinds in lower case ("iccid"), and restore/suspend put "id" before "kind"
    # while profile_resume puts "kind" first [doc]; JSON does not care, but diffs against the
    # documentation stay readable.
    pairs = [
        {"id": i.identifier, "kind": i.kind.lower()} if id_first else {"kind": i.kind.lower(), "id": i.identifier}
        for i in device.identifiers
    ]
    return {"deviceIds": pairs}


def rest_body(action: Action, selection: Selection, *, checked: bool = False) -> Dict[str, Any]:
    """The JSON body of ``devices/actions/restore`` or ``/suspend`` for ``selection``, keys in the
    documented example's order (``checked``: the caller ran :func:`check_request` already)."""
    if not checked:
        check_request(action, selection)
    billing = action.with_billing if isinstance(action, Suspend) else None
    if isinstance(selection, DeviceQuery):
        return query_filters(selection, billing)
    body: Dict[str, Any] = {} if selection.account is None else {"accountName": selection.account}
    body["devices"] = [_device_ids(d) for d in selection.devices]
    if billing is not None:
        body["withBilling"] = billing
    return body


def query_filters(query: DeviceQuery, with_billing: Optional[bool] = None) -> Dict[str, Any]:
    """The filters of ``query`` as the REST API takes them (restore, suspend, the device list), in
    the documented examples' key order; a suspend's ``withBilling`` stands after the custom fields."""
    body: Dict[str, Any] = {}
    if query.account is not None:
        body["accountName"] = query.account
    if query.custom_fields:
        body["customFields"] = [{"key": f.name, "value": f.value} for f in query.custom_fields]
    if with_billing is not None:
        body["withBilling"] = with_billing
    if query.group is not None:
        body["groupName"] = query.group
    if query.service_plan is not None:
        body["servicePlan"] = query.service_plan
    return body


def rest_request(
    action: Action, selection: Selection, *, base_url: str = REST_BASE_URL, checked: bool = False
) -> RestRequest:
    """The POST for ``action`` on ``selection``."""
    path = RESTORE_PATH if isinstance(action, Restore) else SUSPEND_PATH
    return RestRequest("POST", base_url.rstrip("/") + path, rest_body(action, selection, checked=checked))


def profile_resume_body(
    devices: Sequence[Device], *, account: str, service_plan: Optional[str] = None
) -> Dict[str, Any]:
    """The body of ``devices/profile/actions/profile_resume`` (eSIM): each device needs its ICCID
    ("based on ICCID" [doc]); ``account`` is required there."""
    items = as_tuple_of(devices, Device, "devices", "build devices with Device.parse('ICCID:...')")
    if not items:
        raise InputError("devices", "no devices", "name at least one eSIM by its ICCID")
    if len(items) > MAX_DEVICES_PER_REQUEST:
        raise InputError(
            "devices", f"{len(items):,} profiles, the carrier takes {MAX_DEVICES_PER_REQUEST:,}", "split the request"
        )
    DeviceList(items)  # the same distinctness rules as any device list
    for position, device in enumerate(items):
        if not any(i.kind == "ICCID" for i in device.identifiers):
            raise InputError(f"devices[{position}]", f"{device} has no ICCID", "profile_resume names eSIMs by ICCID")
    body: Dict[str, Any] = {
        "devices": [_device_ids(d, id_first=False) for d in items],
        "accountName": required_text("account", account, ACCOUNT_FIX),
    }
    if service_plan is not None:
        body["servicePlan"] = required_text("service_plan", service_plan, "give the service plan name")
    return body
