"""uws-adapter: provision ThingSpace lines over the legacy UWS SOAP API and the REST API.

The public API is what ``__all__`` lists; everything else may change without notice.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .actions import Action, Restore, Suspend, action_named
from .callback_json import parse_rest_callback, render_rest_callback
from .callback_xml import parse_callback
from .callback_xml_render import render_callback
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
from .client import UwsClient
from .config import Settings, connect, load_settings
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
from .provisioning import BatchResult, Provisioner
from .rest_body import RestRequest, profile_resume_body, rest_body
from .rest_client import CallbackListener, RestClient
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
    "CallbackListener",
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
    "Provisioner",
    "ReportedDevice",
    "ResourceError",
    "RestClient",
    "RestRequest",
    "Restore",
    "RestoreResult",
    "Selection",
    "ServiceFault",
    "SessionExpired",
    "Settings",
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
    "connect",
    "generated_devices",
    "load_settings",
    "parse_callback",
    "parse_rest_callback",
    "profile_resume_body",
    "read_devices_csv",
    "render_callback",
    "render_rest_callback",
    "rest_body",
    "select",
    "zeep_envelope",
]
