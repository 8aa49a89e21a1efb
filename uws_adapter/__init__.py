"""uws-adapter: provision ThingSpace lines over the legacy UWS SOAP API and the REST API.

The public API is what ``__all__`` lists; everything else may change without notice.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .actions import Action, Restore, Suspend, action_named
from .devices import KINDS, REST_ONLY_KINDS, Device, DeviceIdentifier, read_devices_csv
from .envelope import SoapRequest, build_envelope, zeep_envelope
from .errors import InputError, ResourceError, UnsupportedByApi, UwsAdapterError
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
    "CustomField",
    "Device",
    "DeviceIdentifier",
    "DeviceList",
    "DeviceQuery",
    "InputError",
    "ResourceError",
    "Restore",
    "Selection",
    "SoapRequest",
    "Suspend",
    "UnsupportedByApi",
    "UwsAdapterError",
    "__version__",
    "action_named",
    "build_envelope",
    "read_devices_csv",
    "select",
    "zeep_envelope",
]
