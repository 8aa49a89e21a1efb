"""The emulator's UWS front: SessionService and CarrierService as our WSDL describes them, every
request validated against our XSD (``DeserializationFailed`` otherwise), faults written
``<Service>.<CODE>`` with HTTP 500 like WCF [inferred status]."""

from __future__ import annotations

from typing import Tuple

from .emulator import MAX_BODY, Emulator
from .selection import DeviceList
from .soap_service import (
    Refused,
    change_response,
    fault_envelope,
    login_credentials,
    login_response,
    logout_response,
    read_call,
    read_change_device_state,
    served_file,
    service_of,
)
from .wire import CONTENT_TYPE

Reply = Tuple[int, bytes, str]


class SoapFront:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def get(self, path: str) -> Reply:
        data = served_file(path, self.emulator.base_url)
        return (200, data, CONTENT_TYPE) if data is not None else (404, b"not found", "text/plain")

    def post(self, path: str, body: bytes) -> Reply:
        service = service_of(path)
        if service is None:
            return 404, b"no such service", "text/plain"
        emulator = self.emulator
        with emulator.lock:
            emulator.counters["requests"] += 1
        try:
            return 200, self._operation(service, body), CONTENT_TYPE
        except Refused as fault:  # EmulatorFault too
            with emulator.lock:
                emulator.counters["faults"] += 1
            return 500, fault_envelope(f"{service}.{fault.code}", str(fault)), CONTENT_TYPE

    def _operation(self, service: str, body: bytes) -> bytes:
        emulator = self.emulator
        call = read_call(service, body, max_bytes=MAX_BODY)
        if (service, call.operation) == ("SessionService", "LogIn"):
            return login_response(emulator.open_session(*login_credentials(call)))
        if (service, call.operation) == ("SessionService", "LogOut"):
            emulator.touch_session(call.token)
            emulator.close_session(call.token)
            return logout_response()
        if (service, call.operation) == ("CarrierService", "ChangeDeviceState"):
            emulator.touch_session(call.token)
            action, selection = read_change_device_state(call)
            if isinstance(selection, DeviceList):
                targets = emulator.listed([device.identifiers for device in selection.devices])
            else:
                targets = emulator.query(
                    selection.account, selection.group, selection.service_plan, selection.custom_fields
                )
            return change_response(emulator.provision(action.element, targets))
        raise Refused("INPUT_INVALID.RequestUndefined", f"{call.operation} is not a {service} operation")
