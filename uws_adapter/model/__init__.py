"""The request and callback model: plain, typed, frozen dataclasses and the carrier's input rules.

Imports only the standard library and :mod:`uws_adapter.errors` (a test checks), so that every
other package can build on it.
"""

from uws_adapter.model.actions import Action, Restore, Suspend, action_named
from uws_adapter.model.callbacks import (
    CallbackFault,
    CallbackRequest,
    NiddResult,
    ProfileResult,
    ReportedDevice,
    RestoreResult,
    SuspendResult,
    callback_json_schema,
)
from uws_adapter.model.devices import (
    KINDS,
    REST_ONLY_KINDS,
    Device,
    DeviceIdentifier,
    device_key,
    identity,
    read_devices_csv,
)
from uws_adapter.model.selection import (
    CUSTOM_FIELD_FORBIDDEN_CHARS,
    CUSTOM_FIELD_NAMES,
    CUSTOM_FIELD_VALUE_MAX,
    MAX_DEVICES_PER_REQUEST,
    CustomField,
    DeviceList,
    DeviceQuery,
    Selection,
    select,
)

__all__ = [
    "CUSTOM_FIELD_FORBIDDEN_CHARS", "CUSTOM_FIELD_NAMES", "CUSTOM_FIELD_VALUE_MAX", "KINDS", "MAX_DEVICES_PER_REQUEST",
    "REST_ONLY_KINDS", "Action", "CallbackFault", "CallbackRequest", "CustomField", "Device", "DeviceIdentifier",
    "DeviceList", "DeviceQuery", "NiddResult", "ProfileResult", "ReportedDevice", "Restore", "RestoreResult",
    "Selection", "Suspend", "SuspendResult", "action_named", "callback_json_schema", "device_key", "identity",
    "read_devices_csv", "select",
]  # fmt: skip
