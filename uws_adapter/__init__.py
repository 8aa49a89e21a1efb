"""uws-adapter: provision ThingSpace lines over the legacy UWS SOAP API and the REST API.

The public API is what ``__all__`` lists; everything else may change without notice. Names are
imported on first use (PEP 562), so that a receiver worker that needs the store and the parsers
never pays for zeep, requests or the emulator.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Dict, List

# A library logs, it never configures logging: without a handler of the program's, nothing is shown
# (not even Python's last-resort echo of warnings to stderr). See uws_adapter.logs for the loggers.
logging.getLogger(__name__).addHandler(logging.NullHandler())

#: module (in this package) -> the public names it defines, as the imports for type checkers below
_MODULES: Dict[str, str] = {
    "bridge.app": "Bridge",
    "callbacks.rest_json": "parse_rest_callback render_rest_callback",
    "callbacks.uws_render": "render_callback",
    "callbacks.uws_xml": "parse_callback",
    "config": "Settings connect load_settings",
    "emulator.core": "EmulatedDevice generated_devices",
    "emulator.http": "Emulator",
    "errors": (
        "AuthenticationFailed BatchFailed BudgetExceeded CallbackParseError ConnectionFailed DeviceFault "
        "DocumentError HandlerGaveUp InputError InvalidInputFault OutcomeUnknown ResourceError ServiceFault "
        "SessionExpired StoreError TransportError UnknownFault UnsupportedByApi UwsAdapterError"
    ),
    "model.actions": "Action Restore Suspend action_named",
    "model.callbacks": (
        "CallbackFault CallbackRequest NiddResult ProfileResult ReportedDevice RestoreResult SuspendResult "
        "callback_json_schema"
    ),
    "model.devices": "Device DeviceIdentifier KINDS REST_ONLY_KINDS read_devices_csv",
    "model.selection": "CustomField DeviceList DeviceQuery MAX_DEVICES_PER_REQUEST Selection select",
    "provisioning.base": "BatchResult Provisioner",
    "provisioning.options": "SendOptions",
    "receiver": "create_asgi_app create_wsgi_app",
    "receiver.app": "DeadLetterBudget Receiver",
    "receiver.asgi": "AsyncReceiver",
    "rest.body": "RestRequest profile_resume_body rest_body",
    "rest.client": "CallbackListener RestClient",
    "store.interfaces": "RequestLog RequestStatus StoredEvent",
    "store.sqlite": "Store",
    "uws.client": "UwsClient",
    "uws.envelope": "SoapRequest build_envelope zeep_envelope",
    "xmlsafe": "parse_untrusted",
}
#: public name -> the module that defines it
_PUBLIC = {name: module for module, names in _MODULES.items() for name in names.split()}

__all__ = sorted([*_PUBLIC, "__version__"])


def _version() -> str:
    # Read on first use: importlib.metadata costs a command-line start more than most commands need.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uws-adapter")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'uws_adapter' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> List[str]:
    return sorted({*globals(), *_PUBLIC, "__version__"})


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    __version__: str
    from uws_adapter.bridge.app import Bridge as Bridge
    from uws_adapter.callbacks.rest_json import parse_rest_callback as parse_rest_callback
    from uws_adapter.callbacks.rest_json import render_rest_callback as render_rest_callback
    from uws_adapter.callbacks.uws_render import render_callback as render_callback
    from uws_adapter.callbacks.uws_xml import parse_callback as parse_callback
    from uws_adapter.config import Settings as Settings
    from uws_adapter.config import connect as connect
    from uws_adapter.config import load_settings as load_settings
    from uws_adapter.emulator.core import EmulatedDevice as EmulatedDevice
    from uws_adapter.emulator.core import generated_devices as generated_devices
    from uws_adapter.emulator.http import Emulator as Emulator
    from uws_adapter.errors import AuthenticationFailed as AuthenticationFailed
    from uws_adapter.errors import BatchFailed as BatchFailed
    from uws_adapter.errors import BudgetExceeded as BudgetExceeded
    from uws_adapter.errors import CallbackParseError as CallbackParseError
    from uws_adapter.errors import ConnectionFailed as ConnectionFailed
    from uws_adapter.errors import DeviceFault as DeviceFault
    from uws_adapter.errors import DocumentError as DocumentError
    from uws_adapter.errors import HandlerGaveUp as HandlerGaveUp
    from uws_adapter.errors import InputError as InputError
    from uws_adapter.errors import InvalidInputFault as InvalidInputFault
    from uws_adapter.errors import OutcomeUnknown as OutcomeUnknown
    from uws_adapter.errors import ResourceError as ResourceError
    from uws_adapter.errors import ServiceFault as ServiceFault
    from uws_adapter.errors import SessionExpired as SessionExpired
    from uws_adapter.errors import StoreError as StoreError
    from uws_adapter.errors import TransportError as TransportError
    from uws_adapter.errors import UnknownFault as UnknownFault
    from uws_adapter.errors import UnsupportedByApi as UnsupportedByApi
    from uws_adapter.errors import UwsAdapterError as UwsAdapterError
    from uws_adapter.model.actions import Action as Action
    from uws_adapter.model.actions import Restore as Restore
    from uws_adapter.model.actions import Suspend as Suspend
    from uws_adapter.model.actions import action_named as action_named
    from uws_adapter.model.callbacks import CallbackFault as CallbackFault
    from uws_adapter.model.callbacks import CallbackRequest as CallbackRequest
    from uws_adapter.model.callbacks import NiddResult as NiddResult
    from uws_adapter.model.callbacks import ProfileResult as ProfileResult
    from uws_adapter.model.callbacks import ReportedDevice as ReportedDevice
    from uws_adapter.model.callbacks import RestoreResult as RestoreResult
    from uws_adapter.model.callbacks import SuspendResult as SuspendResult
    from uws_adapter.model.callbacks import callback_json_schema as callback_json_schema
    from uws_adapter.model.devices import KINDS as KINDS
    from uws_adapter.model.devices import REST_ONLY_KINDS as REST_ONLY_KINDS
    from uws_adapter.model.devices import Device as Device
    from uws_adapter.model.devices import DeviceIdentifier as DeviceIdentifier
    from uws_adapter.model.devices import read_devices_csv as read_devices_csv
    from uws_adapter.model.selection import MAX_DEVICES_PER_REQUEST as MAX_DEVICES_PER_REQUEST
    from uws_adapter.model.selection import CustomField as CustomField
    from uws_adapter.model.selection import DeviceList as DeviceList
    from uws_adapter.model.selection import DeviceQuery as DeviceQuery
    from uws_adapter.model.selection import Selection as Selection
    from uws_adapter.model.selection import select as select
    from uws_adapter.provisioning.base import BatchResult as BatchResult
    from uws_adapter.provisioning.base import Provisioner as Provisioner
    from uws_adapter.provisioning.options import SendOptions as SendOptions
    from uws_adapter.receiver import create_asgi_app as create_asgi_app
    from uws_adapter.receiver import create_wsgi_app as create_wsgi_app
    from uws_adapter.receiver.app import DeadLetterBudget as DeadLetterBudget
    from uws_adapter.receiver.app import Receiver as Receiver
    from uws_adapter.receiver.asgi import AsyncReceiver as AsyncReceiver
    from uws_adapter.rest.body import RestRequest as RestRequest
    from uws_adapter.rest.body import profile_resume_body as profile_resume_body
    from uws_adapter.rest.body import rest_body as rest_body
    from uws_adapter.rest.client import CallbackListener as CallbackListener
    from uws_adapter.rest.client import RestClient as RestClient
    from uws_adapter.store.interfaces import RequestLog as RequestLog
    from uws_adapter.store.interfaces import RequestStatus as RequestStatus
    from uws_adapter.store.interfaces import StoredEvent as StoredEvent
    from uws_adapter.store.sqlite import Store as Store
    from uws_adapter.uws.client import UwsClient as UwsClient
    from uws_adapter.uws.envelope import SoapRequest as SoapRequest
    from uws_adapter.uws.envelope import build_envelope as build_envelope
    from uws_adapter.uws.envelope import zeep_envelope as zeep_envelope
    from uws_adapter.xmlsafe import parse_untrusted as parse_untrusted
