"""Facts about the UWS and REST wire formats, in one place.

Each constant carries its evidence from ``uws-wire-notes.md``: [doc] carrier documentation,
[seen] public traffic or code, [inferred] our best reading. Change a value here when a real
capture disagrees. Element *order* is not here: it lives in ``wsdl/uws-carrier.xsd``, the one
source zeep renders from.
"""

from __future__ import annotations

from typing import Dict, Optional

# The carrier's request limits are model rules (model.selection); the device limit is named here too.
from uws_adapter.model.selection import MAX_DEVICES_PER_REQUEST as MAX_DEVICES_PER_REQUEST

# Namespaces [doc], spelled exactly; prefixes as in the carrier's example envelope.
NS_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"  # SOAP 1.1 [seen]
NS_V2 = "http://nphase.com/unifiedwebservice/v2"
_CONTRACT = "http://schemas.datacontract.org/2004/07/NPhase.UnifiedWebService.APIs.v2.Contract."
NS_CARRIER = _CONTRACT + "CarrierService"
NS_COMMON = _CONTRACT + "Common"
NS_SESSION = _CONTRACT + "SessionService"  # [seen]
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: SOAP 1.2's envelope: read (a fault, a callback), never written.
NS_SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
# The WSDL 1.1 and XML Schema documents we serve and compare.
NS_WSDL = "http://schemas.xmlsoap.org/wsdl/"
NS_WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
NS_XS = "http://www.w3.org/2001/XMLSchema"

#: Namespaces declared once, on the Envelope, in the requests we write. Prefixes carry no meaning
#: on the wire; the Common contract is the default namespace because the per-device elements are
#: in it, and at 10,000 devices their tags are most of the message.
REQUEST_PREFIXES: Dict[Optional[str], str] = {"v2": NS_V2, "nph": NS_CARRIER, None: NS_COMMON}

# Transport [seen unless noted].
CONTENT_TYPE = "text/xml; charset=utf-8"
UWS_BASE_URL = "https://uws.apps.nphase.com/api/v2"
SOAP_ACTION_BASE = "http://nphase.com/unifiedwebservice/v2"


def soap_action(service: str, operation: str) -> str:
    """SOAPAction of an operation: ``.../I<Service>/<Operation>`` [seen for LogIn, else inferred]."""
    return f"{SOAP_ACTION_BASE}/I{service}/{operation}"


# REST M2M API [doc].
REST_BASE_URL = "https://thingspace.verizon.com/api"
OAUTH_TOKEN_PATH = "/ts/v1/oauth2/token"
SESSION_LOGIN_PATH = "/m2m/v1/session/login"
CALLBACKS_PATH = "/m2m/v1/callbacks"
#: The header that carries the M2M session token, beside ``Authorization: Bearer``.
M2M_TOKEN_HEADER = "VZ-M2M-Token"
#: The UWS services our WSDL describes, the carrier's names [doc]; ``/api/v2/<name>.svc``.
UWS_SERVICES = ("SessionService", "CarrierService")
#: The services of a callback: the sections of a UWS CallbackRequest, and what a REST listener is
#: registered for [doc for the names].
CALLBACK_SERVICES = ("CarrierService", "NiddService", "DeviceProfileService")
