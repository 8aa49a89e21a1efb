"""What a WSDL says goes over the wire, read with lxml alone (no SOAP stack needed): per service,
its SOAP operations (SOAPAction, SOAP version, style, the elements of the body and of the headers
in and out), and the schema behind those elements (each complex type's members in order, with
their names as they are written on the wire, ``minOccurs``, ``maxOccurs``, ``nillable`` and type).

Names are Clark names (``{namespace}local``): what a WSDL calls a QName is resolved with the
namespaces in scope where it is written, so prefixes never matter. Message and type *names* do
not travel; they are kept only to be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from lxml import etree

from uws_adapter.wire import NS_WSDL, NS_WSDL_SOAP, NS_XS
from uws_adapter.wsdldiff.sources import Documents

__all__ = ["Contract", "Member", "Operation", "Schema", "contract_of", "documentation_of"]

NS_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
W, X = f"{{{NS_WSDL}}}", f"{{{NS_XS}}}"
#: A member that stands for ``xs:any``.
ANY = "*any*"


def _clark(element: etree._Element, qname: Optional[str]) -> str:
    """``qname`` (``prefix:local``) as written on ``element``, as a Clark name."""
    if not qname:
        return ""
    prefix, _, local = qname.strip().rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    return f"{{{namespace}}}{local}" if namespace else local


def documentation_of(element: etree._Element) -> str:
    """The documentation of ``element`` (``xs:annotation`` or ``wsdl:documentation``), spaces normalised."""
    places = [*element.iterfind(f"{X}annotation/{X}documentation"), *element.iterfind(f"{W}documentation")]
    words = [" ".join("".join(str(part) for part in doc.itertext()).split()) for doc in places]
    return " ".join(text for text in words if text)


@dataclass(frozen=True)
class Member:
    """One member of a complex type's content, as the wire shows it."""

    name: str  # Clark name on the wire, or ANY
    type: str  # Clark name of the named type; "" for an anonymous one
    min_occurs: int
    max_occurs: Optional[int]  # None: unbounded
    nillable: bool
    documentation: str
    declaration: etree._Element  # the xs:element (or xs:any), to read an anonymous type from

    @property
    def local(self) -> str:
        return self.name.rpartition("}")[2]

    @property
    def namespace(self) -> str:
        return self.name[1:].partition("}")[0] if self.name.startswith("{") else ""


class Schema:
    """The global elements and named types of every schema in a set of documents."""

    def __init__(self, documents: Documents) -> None:
        self.elements: Dict[str, etree._Element] = {}
        self.types: Dict[str, etree._Element] = {}
        for schema in documents.of_kind(f"{X}schema"):
            namespace = schema.get("targetNamespace") or ""
            for child in schema:
                name = child.get("name")
                if not name:
                    continue
                key = f"{{{namespace}}}{name}" if namespace else name
                if child.tag == f"{X}element":
                    self.elements.setdefault(key, child)
                elif child.tag in (f"{X}complexType", f"{X}simpleType"):
                    self.types.setdefault(key, child)

    def declared(self, element: etree._Element) -> Tuple[str, etree._Element]:
        """An ``xs:element``'s wire name, and the declaration its type is read from (a ``ref`` leads
        to the global declaration)."""
        ref = element.get("ref")
        if ref:
            name = _clark(element, ref)
            return name, self.elements.get(name, element)
        schema = _schema_of(element)
        namespace = schema.get("targetNamespace") or ""
        is_global = element.getparent() is schema
        form = element.get("form") or ("qualified" if is_global else schema.get("elementFormDefault", "unqualified"))
        local = element.get("name") or ""
        return (f"{{{namespace}}}{local}" if form == "qualified" and namespace else local), element

    def member(self, element: etree._Element) -> Member:
        if element.tag == f"{X}any":
            return Member(ANY, "", _occurs(element.get("minOccurs", "1")), _max(element.get("maxOccurs", "1")),
                          False, "", element)  # fmt: skip
        name, declaration = self.declared(element)
        return Member(
            name, _clark(declaration, declaration.get("type")),
            _occurs(element.get("minOccurs", "1")), _max(element.get("maxOccurs", "1")),
            (declaration.get("nillable") or element.get("nillable") or "false").strip() in ("true", "1"),
            documentation_of(element) or documentation_of(declaration), declaration,
        )  # fmt: skip

    def complex_type(self, member: Member) -> Optional[etree._Element]:
        """The complexType of ``member`` (anonymous or named); None for a simple type."""
        inline = member.declaration.find(f"{X}complexType")
        if inline is not None:
            return inline
        found = self.types.get(member.type)
        return found if found is not None and found.tag == f"{X}complexType" else None

    def simple_base(self, type_name: str) -> str:
        """The built-in type a simple type comes down to (its restriction bases followed)."""
        seen = set()
        while type_name and not type_name.startswith(f"{{{NS_XS}}}") and type_name not in seen:
            seen.add(type_name)
            found = self.types.get(type_name)
            restriction = found.find(f"{X}restriction") if found is not None else None
            if restriction is None:
                return type_name
            type_name = _clark(restriction, restriction.get("base"))
        return type_name

    def members(self, complex_type: etree._Element) -> Tuple[str, List[Member]]:
        """The compositor (``sequence``, ``all``, ``choice``) and the members of a complexType,
        a base type's members first (``complexContent/extension``)."""
        members: List[Member] = []
        body = complex_type
        extension = complex_type.find(f"{X}complexContent/{X}extension")
        if extension is not None:
            base = self.types.get(_clark(extension, extension.get("base")))
            if base is not None and base.tag == f"{X}complexType":
                members.extend(self.members(base)[1])
            body = extension
        kind = "sequence"
        for compositor in ("sequence", "all", "choice"):
            group = body.find(f"{X}{compositor}")
            if group is not None:
                kind = compositor
                members.extend(self._particles(group))
                break
        return kind, members

    def _particles(self, group: etree._Element) -> List[Member]:
        found: List[Member] = []
        for child in group:
            if child.tag in (f"{X}element", f"{X}any"):
                found.append(self.member(child))
            elif child.tag in (f"{X}sequence", f"{X}choice", f"{X}all"):
                found.extend(self._particles(child))  # nested groups flattened: order still shows
        return found

    def global_member(self, name: str) -> Optional[Member]:
        found = self.elements.get(name)
        return None if found is None else self.member(found)


def _schema_of(element: etree._Element) -> etree._Element:
    node: Optional[etree._Element] = element
    while node is not None and node.tag != f"{X}schema":
        node = node.getparent()
    return node if node is not None else element


def _occurs(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return 1


def _max(text: str) -> Optional[int]:
    return None if text.strip() == "unbounded" else _occurs(text)


@dataclass(frozen=True)
class Operation:
    """One SOAP operation of a service's binding."""

    name: str
    soap_action: Optional[str]
    soap_version: str  # "1.1" or "1.2"
    style: str
    use: str
    input_body: Tuple[str, ...]
    input_headers: Tuple[str, ...]
    output_body: Tuple[str, ...]
    documentation: str


@dataclass(frozen=True)
class Contract:
    """Services (by name) and their operations (by name), and the schema behind them."""

    services: Dict[str, Dict[str, Operation]]
    schema: Schema


def contract_of(documents: Documents) -> Contract:
    """The contract the documents describe. A service is read from its ports' bindings, a SOAP
    1.1 binding preferred; without ``wsdl:service`` (a bare ``?wsdl=wsdl0``), each binding counts
    as a service named after its port type less a leading ``I`` (WCF's ``ICarrierService``)."""
    roots = documents.wsdl_roots()
    if not roots:
        from uws_adapter.errors import InputError

        raise InputError("SOURCE", "holds no wsdl:definitions", "point SOURCE at the service's WSDL")
    messages: Dict[str, etree._Element] = {}
    port_types: Dict[str, etree._Element] = {}
    bindings: Dict[str, etree._Element] = {}
    services: List[etree._Element] = []
    named = {f"{W}message": messages, f"{W}portType": port_types, f"{W}binding": bindings}
    for root in roots:
        namespace = root.get("targetNamespace") or ""
        for child in root:
            if child.tag == f"{W}service":
                services.append(child)
            elif child.tag in named:
                named[child.tag][f"{{{namespace}}}{child.get('name')}"] = child
    reader = _Reader(messages, port_types)
    found: Dict[str, Dict[str, Operation]] = {}
    for service in services:
        chosen: Dict[str, Operation] = {}
        for port in service.iterfind(f"{W}port"):
            binding = bindings.get(_clark(port, port.get("binding")))
            if binding is None:
                continue
            operations = reader.operations(binding)
            # SOAP 1.1 wins over SOAP 1.2 (what our clients speak); the first port otherwise.
            if not chosen or (operations and next(iter(operations.values())).soap_version == "1.1"
                              and next(iter(chosen.values())).soap_version != "1.1"):  # fmt: skip
                chosen = operations
        found[service.get("name") or "?"] = chosen
    if not services:
        for binding in bindings.values():
            port_type = _clark(binding, binding.get("type")).rpartition("}")[2]
            name = port_type[1:] if port_type.startswith("I") and port_type[1:2].isupper() else port_type
            found.setdefault(name, {}).update(reader.operations(binding))
    return Contract(found, Schema(documents))


class _Reader:
    def __init__(self, messages: Dict[str, etree._Element], port_types: Dict[str, etree._Element]) -> None:
        self.messages = messages
        self.port_types = port_types

    def _parts(self, message_ref: str, only: Optional[str] = None) -> Tuple[str, ...]:
        message = self.messages.get(message_ref)
        if message is None:
            return ()
        parts = []
        for part in message.iterfind(f"{W}part"):
            if only is not None and part.get("name") != only:
                continue
            element = part.get("element")
            # An rpc-style part names a type, not an element: shown as "type:" so it never matches.
            parts.append(_clark(part, element) if element else "type:" + _clark(part, part.get("type")))
        return tuple(parts)

    def operations(self, binding: etree._Element) -> Dict[str, Operation]:
        soap = binding.find(f"{{{NS_WSDL_SOAP}}}binding")
        version, ns = ("1.1", NS_WSDL_SOAP) if soap is not None else ("1.2", NS_SOAP12)
        if soap is None:
            soap = binding.find(f"{{{NS_SOAP12}}}binding")
        if soap is None:
            return {}  # an HTTP or other binding: nothing a SOAP client uses
        port_type = self.port_types.get(_clark(binding, binding.get("type")))
        abstract = {} if port_type is None else {op.get("name"): op for op in port_type.iterfind(f"{W}operation")}
        found = {}
        for operation in binding.iterfind(f"{W}operation"):
            name = operation.get("name") or ""
            soap_op = operation.find(f"{{{ns}}}operation")
            style = (soap_op.get("style") if soap_op is not None else None) or soap.get("style") or "document"
            action = soap_op.get("soapAction") if soap_op is not None else None
            abstract_op = abstract.get(name)
            input_ref = output_ref = ""
            if abstract_op is not None:
                given = abstract_op.find(f"{W}input")
                taken = abstract_op.find(f"{W}output")
                input_ref = _clark(given, given.get("message")) if given is not None else ""
                output_ref = _clark(taken, taken.get("message")) if taken is not None else ""
            use, body_in = "literal", self._parts(input_ref)
            headers: List[str] = []
            wire_in = operation.find(f"{W}input")
            if wire_in is not None:
                body = wire_in.find(f"{{{ns}}}body")
                if body is not None:
                    use = body.get("use") or "literal"
                    if body.get("parts") is not None:
                        body_in = tuple(p for n in body.get("parts", "").split() for p in self._parts(input_ref, n))
                for header in wire_in.iterfind(f"{{{ns}}}header"):
                    headers.extend(self._parts(_clark(header, header.get("message")), header.get("part")))
            if headers:  # header parts of the input message itself are not in the body
                body_in = tuple(part for part in body_in if part not in headers)
            documentation = documentation_of(abstract_op) if abstract_op is not None else ""
            found[name] = Operation(name, action, version, style, use, body_in, tuple(headers),
                                    self._parts(output_ref), documentation)  # fmt: skip
        return found
