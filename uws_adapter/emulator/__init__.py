"""A carrier emulator on loopback: the inventory and its state machine, the UWS SOAP front and the
REST front on one WSGI application, and callback delivery with re-sends."""

from uws_adapter.emulator.core import Carrier, EmulatorFault, listener_url_problem
from uws_adapter.emulator.http import Emulator
from uws_adapter.emulator.lines import ACTIVE, DEFAULT_ACCOUNT, SUSPENDED, EmulatedDevice, generated_devices

__all__ = [
    "ACTIVE", "DEFAULT_ACCOUNT", "SUSPENDED", "Carrier", "EmulatedDevice", "Emulator", "EmulatorFault",
    "generated_devices", "listener_url_problem",
]  # fmt: skip
