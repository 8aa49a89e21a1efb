"""uws-adapter: provision ThingSpace lines over the legacy UWS SOAP API and the REST API.

The public API is what ``__all__`` lists; everything else may change without notice.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .actions import Action, Restore, Suspend, action_named
from .callback_json import parse_rest_callback, render_rest_callback
from .callback_xml import parse_callback, render_callback
from .callbacks import (
    CallbackFault,
    CallbackRequest,
    NiddResult,
    ProfileResult,
    ReportedDevice,
    RestoreResult,
    SuspendResult,
    callback_json_schema,
)
from .client import BatchResult, UwsClient
from .devices import KINDS, REST_ONLY_KINDS, Device, DeviceIdentifier, read_devices_csv
from .emulator import EmulatedDevice, Emulator, generated_devices
from .envelope import SoapRequest, build_envelope, zeep_envelope
from .errors import (
    CallbackParseError,
    ConnectionFailed,
    DeviceFault,
    DocumentError,
    InputError,
    InvalidInputFault,
    OutcomeUnknown,
    ResourceError,
    ServiceFault,
    SessionExpired,
    TransportError,
    UnknownFault,
    UnsupportedByApi,
    UwsAdapterError,
)
from .selection import CustomField, DeviceList, DeviceQuery, Selection, select
from .wire import MAX_DEVICES_PER_REQUEST

try:
    __version__ = version("uws-adapter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "KINDS",
    "MAX_DEVICES_PER_REQUEST",
    "REST_ONLY_KINDS",
    "Action",
    "BatchResult",
    "CallbackFault",
    "CallbackParseError",
    "CallbackRequest",
    "ConnectionFailed",
    "CustomField",
    "Device",
    "DeviceFault",
    "DeviceIdentifier",
    "DeviceList",
    "DeviceQuery",
    "DocumentError",
    "EmulatedDevice",
    "Emulator",
    "InputError",
    "InvalidInputFault",
    "NiddResult",
    "OutcomeUnknown",
    "ProfileResult",
    "ReportedDevice",
    "ResourceError",
    "Restore",
    "RestoreResult",
    "Selection",
    "ServiceFault",
    "SessionExpired",
    "SoapRequest",
    "Suspend",
    "SuspendResult",
    "TransportError",
    "UnknownFault",
    "UnsupportedByApi",
    "UwsAdapterError",
    "UwsClient",
    "__version__",
    "action_named",
    "build_envelope",
    "callback_json_schema",
    "generated_devices",
    "parse_callback",
    "parse_rest_callback",
    "read_devices_csv",
    "render_callback",
    "render_rest_callback",
    "select",
    "zeep_envelope",
]
