"""Reading a SOAP fault out of an answer. Which exception a code means is decided by the one table
beside the exception tree (:data:`uws_adapter.errors.FAULT_CLASSES`, :func:`~uws_adapter.errors.fault_for`):
codes are matched, never messages [doc]."""

from __future__ import annotations

from typing import Optional, Tuple

from lxml import etree

from uws_adapter.wire import NS_SOAP12_ENV, NS_SOAP_ENV

__all__ = ["soap_fault"]


def soap_fault(root: etree._Element) -> Optional[Tuple[str, str]]:
    """(code, message) of the SOAP 1.1 (or 1.2) fault in an envelope, or None."""
    for namespace in (NS_SOAP_ENV, NS_SOAP12_ENV):
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
