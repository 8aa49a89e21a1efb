"""uws-adapter: provision ThingSpace lines over the legacy UWS SOAP API and the REST API.

The public API is what ``__all__`` lists; everything else may change without notice. Names are
imported on first use (PEP 562), so that a receiver worker that needs the store and the parsers
never pays for zeep, requests or the emulator.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Dict, List

try:
    __version__ = version("uws-adapter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

#: public name -> the module (in this package) that defines it
_PUBLIC: Dict[str, str] = {
    "Action": "actions",
    "Restore": "actions",
    "Suspend": "actions",
    "action_named": "actions",
    "Bridge": "bridge",
    "parse_rest_callback": "callback_json",
    "render_rest_callback": "callback_json",
    "parse_callback": "callback_xml",
    "render_callback": "callback_xml_render",
    "CallbackFault": "callbacks",
    "CallbackRequest": "callbacks",
    "NiddResult": "callbacks",
    "ProfileResult": "callbacks",
    "ReportedDevice": "callbacks",
    "RestoreResult": "callbacks",
    "SuspendResult": "callbacks",
    "callback_json_schema": "callbacks",
    "UwsClient": "client",
    "Settings": "config",
    "connect": "config",
    "load_settings": "config",
    "Device": "devices",
    "DeviceIdentifier": "devices",
    "KINDS": "devices",
    "REST_ONLY_KINDS": "devices",
    "read_devices_csv": "devices",
    "EmulatedDevice": "emulator",
    "Emulator": "emulator",
    "generated_devices": "emulator",
    "SoapRequest": "envelope",
    "build_envelope": "envelope",
    "zeep_envelope": "envelope",
    "CallbackParseError": "errors",
    "ConnectionFailed": "errors",
    "DeviceFault": "errors",
    "DocumentError": "errors",
    "HandlerGaveUp": "errors",
    "InputError": "errors",
    "InvalidInputFault": "errors",
    "OutcomeUnknown": "errors",
    "ResourceError": "errors",
    "ServiceFault": "errors",
    "SessionExpired": "errors",
    "StoreError": "errors",
    "TransportError": "errors",
    "UnknownFault": "errors",
    "UnsupportedByApi": "errors",
    "UwsAdapterError": "errors",
    "BatchResult": "provisioning",
    "Provisioner": "provisioning",
    "DeadLetterBudget": "receiver",
    "Receiver": "receiver",
    "AsyncReceiver": "receiver_async",
    "RestRequest": "rest_body",
    "profile_resume_body": "rest_body",
    "rest_body": "rest_body",
    "CallbackListener": "rest_client",
    "RestClient": "rest_client",
    "CustomField": "selection",
    "DeviceList": "selection",
    "DeviceQuery": "selection",
    "Selection": "selection",
    "select": "selection",
    "Store": "store",
    "RequestLog": "stores",
    "RequestStatus": "stores",
    "StoredEvent": "stores",
    "MAX_DEVICES_PER_REQUEST": "wire",
    "parse_untrusted": "xmlsafe",
}

__all__ = sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'uws_adapter' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> List[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .actions import Action as Action
    from .actions import Restore as Restore
    from .actions import Suspend as Suspend
    from .actions import action_named as action_named
    from .bridge import Bridge as Bridge
    from .callback_json import parse_rest_callback as parse_rest_callback
    from .callback_json import render_rest_callback as render_rest_callback
    from .callback_xml import parse_callback as parse_callback
    from .callback_xml_render import render_callback as render_callback
    from .callbacks import CallbackFault as CallbackFault
    from .callbacks import CallbackRequest as CallbackRequest
    from .callbacks import NiddResult as NiddResult
    from .callbacks import ProfileResult as ProfileResult
    from .callbacks import ReportedDevice as ReportedDevice
    from .callbacks import RestoreResult as RestoreResult
    from .callbacks import SuspendResult as SuspendResult
    from .callbacks import callback_json_schema as callback_json_schema
    from .client import UwsClient as UwsClient
    from .config import Settings as Settings
    from .config import connect as connect
    from .config import load_settings as load_settings
    from .devices import KINDS as KINDS
    from .devices import REST_ONLY_KINDS as REST_ONLY_KINDS
    from .devices import Device as Device
    from .devices import DeviceIdentifier as DeviceIdentifier
    from .devices import read_devices_csv as read_devices_csv
    from .emulator import EmulatedDevice as EmulatedDevice
    from .emulator import Emulator as Emulator
    from .emulator import generated_devices as generated_devices
    from .envelope import SoapRequest as SoapRequest
    from .envelope import build_envelope as build_envelope
    from .envelope import zeep_envelope as zeep_envelope
    from .errors import CallbackParseError as CallbackParseError
    from .errors import ConnectionFailed as ConnectionFailed
    from .errors import DeviceFault as DeviceFault
    from .errors import DocumentError as DocumentError
    from .errors import HandlerGaveUp as HandlerGaveUp
    from .errors import InputError as InputError
    from .errors import InvalidInputFault as InvalidInputFault
    from .errors import OutcomeUnknown as OutcomeUnknown
    from .errors import ResourceError as ResourceError
    from .errors import ServiceFault as ServiceFault
    from .errors import SessionExpired as SessionExpired
    from .errors import StoreError as StoreError
    from .errors import TransportError as TransportError
    from .errors import UnknownFault as UnknownFault
    from .errors import UnsupportedByApi as UnsupportedByApi
    from .errors import UwsAdapterError as UwsAdapterError
    from .provisioning import BatchResult as BatchResult
    from .provisioning import Provisioner as Provisioner
    from .receiver import DeadLetterBudget as DeadLetterBudget
    from .receiver import Receiver as Receiver
    from .receiver_async import AsyncReceiver as AsyncReceiver
    from .rest_body import RestRequest as RestRequest
    from .rest_body import profile_resume_body as profile_resume_body
    from .rest_body import rest_body as rest_body
    from .rest_client import CallbackListener as CallbackListener
    from .rest_client import RestClient as RestClient
    from .selection import CustomField as CustomField
    from .selection import DeviceList as DeviceList
    from .selection import DeviceQuery as DeviceQuery
    from .selection import Selection as Selection
    from .selection import select as select
    from .store import Store as Store
    from .stores import RequestLog as RequestLog
    from .stores import RequestStatus as RequestStatus
    from .stores import StoredEvent as StoredEvent
    from .wire import MAX_DEVICES_PER_REQUEST as MAX_DEVICES_PER_REQUEST
    from .xmlsafe import parse_untrusted as parse_untrusted
