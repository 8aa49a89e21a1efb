"""Our SOAP server (lxml only): parse, validate, dispatch, faults and WSDL serving, shared by the
emulator and the bridge, and the bundled WSDL files. It outlives UWS: the bridge serves it to legacy
systems after the carrier's UWS API is gone. The carrier's UWS *client* is :mod:`uws_adapter.uws`.
"""

from uws_adapter.soap.server import SoapServer

__all__ = ["SoapServer"]
