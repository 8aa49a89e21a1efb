"""Service faults: which exception a fault code means, and reading SOAP faults from responses.

Codes are matched, never messages [doc]. UWS writes ``<Service>.<CODE>``, e.g.
``CarrierService.REQUEST_FAILED.SessionToken.Expired``; REST sends the bare code.
"""

from __future__ import annotations

from typing import Optional, Tuple, Type

from lxml import etree

from uws_adapter.errors import DeviceFault, InvalidInputFault, ServiceFault, SessionExpired, UnknownFault
from uws_adapter.wire import NS_SOAP_ENV

_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


def fault_class(code: str) -> Type[ServiceFault]:
    """The exception class for a fault code."""
    bare = code.rpartition(":")[2]  # a QName prefix carries no meaning
    if bare.endswith("SessionToken.Expired"):
        return SessionExpired
    if "DeviceNotFound" in bare or ".Device." in f".{bare}" or "DeviceState" in bare:
        return DeviceFault
    if "INPUT_INVALID" in bare or "DeserializationFailed" in bare or "AccountNotFound" in bare:
        return InvalidInputFault
    return UnknownFault


def make_fault(code: str, message: str, http_status: Optional[int] = None) -> ServiceFault:
    return fault_class(code)(code, message, http_status=http_status)


def soap_fault(root: etree._Element) -> Optional[Tuple[str, str]]:
    """(code, message) of the SOAP 1.1 (or 1.2) fault in an envelope, or None."""
    for namespace in (NS_SOAP_ENV, _SOAP12):
        fault = root.find(f"{{{namespace}}}Body/{{{namespace}}}Fault")
        if fault is None:
            continue
        if namespace == NS_SOAP_ENV:
            code = fault.findtext("faultcode") or ""
            message = fault.findtext("faultstring") or ""
        else:
            code = fault.findtext(f"{{{namespace}}}Code/{{{namespace}}}Value") or ""
            message = fault.findtext(f"{{{namespace}}}Reason/{{{namespace}}}Text") or ""
        return code.strip(), message.strip()
    return None
