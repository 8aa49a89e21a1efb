"""The WSDL and XSD documents our SOAP server serves on GET, laid out as WCF serves a ``.svc`` (the
URLs are listed in the manual: docs/services.md, "WSDL URLs"). Every ``soap:address`` and every
``schemaLocation`` is written under the caller's base address (checked by the caller: see
:mod:`uws_adapter.bridge.address`), by lxml, so whatever the address holds is escaped.
"""

from __future__ import annotations

from typing import List, Optional, Set, Tuple

from lxml import etree

from uws_adapter.soap.resources import WSDL_FILE, resource_dir
from uws_adapter.soap.schemas import REQUEST_XSD
from uws_adapter.wire import NS_WSDL, NS_WSDL_SOAP, NS_XS, UWS_BASE_URL
from uws_adapter.xmlsafe import imported_documents, parse_untrusted

__all__ = ["served_document", "service_wsdl", "whole_wsdl", "xsd_document"]


def _bundled(name: str) -> etree._Element:
    return parse_untrusted((resource_dir() / name).read_bytes(), what=f"bundled {name}")


def _written(root: etree._Element) -> bytes:
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="utf-8")


def _local(qname: Optional[str]) -> str:
    # Every reference in our WSDL is to its own target namespace: the local part names it.
    return (qname or "").rpartition(":")[2]


def _set_addresses(root: etree._Element, address: str) -> None:
    for element in root.iter(f"{{{NS_WSDL_SOAP}}}address"):
        location = element.get("location") or ""
        if location.startswith(UWS_BASE_URL):
            element.set("location", address + location[len(UWS_BASE_URL) :])


def _schema_references(schema: etree._Element) -> List[etree._Element]:
    return [e for e in schema.iter(f"{{{NS_XS}}}import", f"{{{NS_XS}}}include") if e.get("schemaLocation")]


def whole_wsdl(address: str) -> bytes:
    """The bundled WSDL, both services, under ``address`` (a ``.../api/v2`` base)."""
    root = _bundled(WSDL_FILE)
    _set_addresses(root, address)
    return _written(root)


def _only_service(root: etree._Element, service: str) -> None:
    """Remove from ``root`` every service but ``service`` and what only the others use."""
    wsdl = f"{{{NS_WSDL}}}"

    def keep(tag: str, names: Set[str]) -> None:
        for element in root.findall(wsdl + tag):
            if element.get("name") not in names:
                root.remove(element)

    keep("service", {service})  # then each kind by what the kept ones still use
    keep("binding", {_local(port.get("binding")) for port in root.iterfind(f"{wsdl}service/{wsdl}port")})
    keep("portType", {_local(b.get("type")) for b in root.iterfind(f"{wsdl}binding")})
    keep("message", {_local(e.get("message")) for e in root.iter() if e.get("message") and e.tag != f"{wsdl}part"})


def _inlined_schemas() -> List[etree._Element]:
    """Every XSD reachable from the one the WSDL's types import, each parsed afresh with its imports left by
    namespace only (the schemas are all in the same ``wsdl:types``)."""

    def read(name: str) -> Tuple[etree._Element, List[str]]:
        schema = _bundled(name)
        return schema, [str(reference.attrib.pop("schemaLocation")) for reference in _schema_references(schema)]

    # Dependencies first: some stacks read the schemas in order.
    return list(reversed(list(imported_documents(REQUEST_XSD, read).values())))


def service_wsdl(service: str, address: str, *, single: bool = False) -> bytes:
    """The WSDL of ``service`` alone under ``address``: its schema imported from ``?xsd=``, or
    inlined (``single``, WCF's ``?singleWsdl``)."""
    root = _bundled(WSDL_FILE)
    _only_service(root, service)
    _set_addresses(root, address)
    types = root.find(f"{{{NS_WSDL}}}types")
    if types is not None:
        if single:
            for child in list(types):
                types.remove(child)
            types.extend(_inlined_schemas())
        else:
            _import_from_svc(types, address, service)
    return _written(root)


def _import_from_svc(root: etree._Element, address: str, service: str) -> None:
    for reference in _schema_references(root):
        reference.set("schemaLocation", f"{address}/{service}.svc?xsd={reference.get('schemaLocation')}")


def xsd_document(name: str, *, address: Optional[str] = None, service: Optional[str] = None) -> Optional[bytes]:
    """The bundled XSD ``name`` (None when there is no such file): as it is, or with its imports
    pointed at ``<address>/<service>.svc?xsd=...`` when both are given."""
    # Only our files: no path, no other name reaches the disk.
    if name not in {path.name for path in resource_dir().iterdir() if path.name.endswith(".xsd")}:
        return None
    if address is None or service is None:
        return (resource_dir() / name).read_bytes()
    root = _bundled(name)
    _import_from_svc(root, address, service)
    return _written(root)


def served_document(path: str, query: str, address: str, service: Optional[str]) -> Optional[bytes]:
    """What a GET of ``path`` with ``query`` serves (None: 404). ``service`` is the ``.svc`` the
    path names, if any."""
    name = path.rstrip("/").rpartition("/")[2]
    key, _, value = query.partition("=")
    key = key.strip().lower()
    if service is not None:
        if key in ("wsdl", "singlewsdl") and not value:
            return service_wsdl(service, address, single=key == "singlewsdl")
        if key == "xsd" and value:
            return xsd_document(value, address=address, service=service)
        return None
    if name == WSDL_FILE:
        return whole_wsdl(address)
    if name.endswith(".xsd"):
        return xsd_document(name)
    return None
