"""The UWS SOAP API: zeep bindings from our WSDL, request envelopes, the client, and the one SOAP
server (parse, validate, dispatch, faults, WSDL serving) that the emulator and the bridge share.

The only package that imports zeep. Retiring UWS means deleting this package, the emulator's SOAP
front and the bridge.
"""

from uws_adapter.soap.client import UwsClient
from uws_adapter.soap.envelope import SoapRequest, build_envelope, zeep_envelope
from uws_adapter.soap.server import SoapServer

__all__ = ["SoapRequest", "SoapServer", "UwsClient", "build_envelope", "zeep_envelope"]
