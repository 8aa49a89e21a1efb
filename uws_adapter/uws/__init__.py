"""The carrier's UWS SOAP API, as a client: zeep bindings from our WSDL, request envelopes and
:class:`UwsClient`. The only package that imports zeep. Retiring UWS means deleting this package,
the emulator's UWS front and the CLI's UWS commands; the bridge and the receiver never import it.
"""

from uws_adapter.uws.client import UwsClient
from uws_adapter.uws.envelope import SoapRequest, build_envelope, zeep_envelope

__all__ = ["SoapRequest", "UwsClient", "build_envelope", "zeep_envelope"]
