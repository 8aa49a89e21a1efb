"""The emulator's UWS front: SessionService and CarrierService carried out on its inventory, served
by the shared :class:`.SoapServer` (faults ``<Service>.<CODE>`` with HTTP 500 like WCF [inferred status])."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from uws_adapter.emulator.core import MAX_BODY, Carrier
from uws_adapter.model.actions import Action
from uws_adapter.model.selection import DeviceList, Selection
from uws_adapter.soap.server import SoapServer


class SoapFront:
    """The UWS operations over ``emulator`` (a :class:`.UwsOperations`); ``server`` serves them,
    writing ``address(environ)`` into the WSDL."""

    def __init__(self, emulator: Carrier, *, address: Callable[[Mapping[str, Any]], str]) -> None:
        self.emulator = emulator
        self.server = SoapServer(self, address=address, max_body=MAX_BODY, count=emulator.count)

    def log_in(self, username: str, password: str, client: str) -> str:
        return self.emulator.open_session(username, password)  # UWS locks the account, whoever calls [doc]

    def check_session(self, token: Optional[str]) -> None:
        self.emulator.touch_session(token)

    def log_out(self, token: Optional[str]) -> None:
        self.emulator.close_session(token)

    def change_device_state(self, action: Action, selection: Selection) -> str:
        emulator = self.emulator
        if isinstance(selection, DeviceList):
            targets = emulator.listed([device.identifiers for device in selection.devices])
        else:
            targets = emulator.query(
                selection.account, selection.group, selection.service_plan, selection.custom_fields
            )
        return emulator.provision(action.element, targets)
