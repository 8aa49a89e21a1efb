"""The one SOAP server of our WSDL, used by the emulator's UWS front and by the bridge's SOAP
façade: a WSGI application (served by waitress, like the receiver) that screens each request
(method, media type, encoding, size), parses the body hardened (:mod:`.xmlsafe`), reads it as
SOAP 1.1 allows and validates the Body's payload against our XSD as WCF would
(``DeserializationFailed``), dispatches it by operation to a backend (:class:`UwsOperations`),
writes SOAP 1.1 faults the way UWS does (HTTP 500, ``<Service>.<CODE>``), and serves the WSDL
and XSDs as WCF serves a ``.svc`` (:mod:`uws_adapter.soap.documents`).

Lenient where SOAP 1.1 allows (what legacy stacks send: qualified attributes on Envelope, Header
and Body, unknown header blocks unless they must be understood, ``xsi:nil`` and ``xsi:type``),
strict where the carrier, a WCF basicHttpBinding, is (a SOAPAction not naming the Body's operation
is ``ActionNotSupported`` [inferred code]); the manual lists both (docs/services.md).
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

from lxml import etree

from uws_adapter.edge import Answer, BodyRules, StartResponse, wsgi_body
from uws_adapter.errors import Code, DocumentError, InputError, Refused, ServiceFault
from uws_adapter.model.actions import Action
from uws_adapter.model.devices import API_KINDS
from uws_adapter.model.selection import MAX_DEVICES_PER_REQUEST, Selection
from uws_adapter.model.text import xml_escaped
from uws_adapter.soap import service as messages
from uws_adapter.soap.documents import served_document
from uws_adapter.soap.resources import resource_dir
from uws_adapter.soap.schemas import REQUEST_XSD
from uws_adapter.wire import CONTENT_TYPE, NS_SOAP_ENV, NS_V2, NS_XSI, soap_action
from uws_adapter.xmlsafe import parse_untrusted, wide_encoding

__all__ = [
    "FAULT_KEY", "QUALIFIED_CODES", "XML_TYPES", "SoapServer", "UwsOperations", "dispatch", "fault_envelope",
    "may_hold_xsi", "payload_schema", "read_call", "schema_complaint", "served_file", "service_of",
]  # fmt: skip

#: What a SOAP 1.1 request may be sent as: text/xml, and application/xml as the receiver accepts it.
XML_TYPES = ("text/xml", "application/xml")
#: SOAP 1.2's media type: a basicHttpBinding (SOAP 1.1) answers it with 415 [seen].
SOAP12_TYPE = "application/soap+xml"
#: The WCF namespace of ``ActionNotSupported`` on a binding without WS-Addressing [inferred].
NS_ADDRESSING_NONE = "http://schemas.microsoft.com/ws/2005/05/addressing/none"
#: Fault codes written qualified (``s:MustUnderstand``), not as ``<Service>.<CODE>``.
QUALIFIED_CODES = {
    "VersionMismatch": NS_SOAP_ENV,
    "MustUnderstand": NS_SOAP_ENV,
    "ActionNotSupported": NS_ADDRESSING_NONE,  # [inferred]: what WCF's contract filter answers
}
ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
ENVELOPE, HEADER, BODY = (f"{{{NS_SOAP_ENV}}}{name}" for name in ("Envelope", "Header", "Body"))
TOKEN = f"{{{NS_V2}}}token"
#: The most elements and comments a request may hold, counted while it is parsed (before any
#: session is looked up): the largest request there is, a ChangeDeviceState of
#: MAX_DEVICES_PER_REQUEST devices each named by every kind UWS takes (per device a
#: DeviceIdentifierCollection, its DeviceIdentifiers, and a DeviceIdentifier, Kind and Identifier
#: per kind: 23 elements, 740 bytes), with room for the envelope, the header and the filters.
#: Without it, a body of empty elements within the bridge's 8 MiB limit (two million of them)
#: cost about a second of CPU before it was refused, without credentials (benchmarks/soap_flood.py).
MAX_REQUEST_NODES = MAX_DEVICES_PER_REQUEST * (2 + 3 * len(API_KINDS["soap"])) + 1_000
#: A name in Clark notation (``{uri}Name``); linear: no nested quantifier.
_QUALIFIED = re.compile(r"\{([^{}]*)\}([\w.\-]*)")
#: Where the SOAP server says whose fault a fault was, for the access line (a client's at INFO).
FAULT_KEY = "uws_adapter.fault"
XSI_TYPE = f"{{{NS_XSI}}}type"
_TYPED = etree.XPath("descendant-or-self::*[@xsi:type]", namespaces={"xsi": NS_XSI})
XSI_NIL = f"{{{NS_XSI}}}nil"
_XML_SPACE = " \t\r\n"  # what XPath's normalize-space strips
# Elements carrying xsi:nil at all (rare), whose value is then read in Python: XPath's
# normalize-space on every element's attribute costs four times the bare test.
_NILLED = etree.XPath("descendant-or-self::*[@xsi:nil]", namespaces={"xsi": NS_XSI})
_XSI_BYTES = NS_XSI.encode("ascii")
#: Namespaces the Envelope and Body may declare before the payload is validated as a copy (real
#: envelopes declare a handful; see _payload).
MAX_INHERITED_NAMESPACES = 64


class UwsOperations(Protocol):
    """What a SOAP backend does; each method raises :class:`.Refused` to answer with a fault."""

    def log_in(self, username: str, password: str, client: str) -> str:
        """A new session token for this login, asked for from the address ``client``."""

    def check_session(self, token: Optional[str]) -> None:
        """Note a use of ``token``; refuse an unknown or expired one."""

    def log_out(self, token: Optional[str]) -> None:
        """End the session of ``token`` (already checked)."""

    def change_device_state(self, action: Action, selection: Selection) -> str:
        """Carry out ``action`` on ``selection``; the RequestId."""


# Parsing and answering -------------------------------------------------------------------------


def service_of(path: str) -> Optional[str]:
    """``CarrierService`` for ``.../CarrierService.svc``, None for anything else we do not serve."""
    name = path.partition("?")[0].rstrip("/").rpartition("/")[2]
    service = name[: -len(".svc")] if name.endswith(".svc") else ""
    return service if service in messages.SERVICES else None


@functools.cache
def payload_schema() -> etree.XMLSchema:
    """Our request XSD (the v2 operations and their data contracts), for the Body's payload alone:
    the envelope around it is checked by the SOAP 1.1 rules in :func:`read_call`, not by a schema."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(resource_dir() / REQUEST_XSD), parser))


def _malformed(problem: str) -> Refused:
    return Refused(Code.DESERIALIZATION_FAILED, f"{problem}; send a SOAP 1.1 envelope as the WSDL describes")


def _elements(parent: etree._Element, where: str) -> List[etree._Element]:
    """The children of ``parent`` (elements: comments are gone); text between them is refused."""
    if (parent.text or "").strip() or any((node.tail or "").strip() for node in parent):
        raise _malformed(f"text inside {where}")
    return list(parent)


def _check_attributes(element: etree._Element, where: str) -> None:
    # SOAP 1.1 lets Envelope, Header and Body carry namespace-qualified attributes (e.g.
    # soap:encodingStyle, SOAP::Lite's default); an unqualified one is not SOAP.
    for name in element.attrib:
        if not str(name).startswith("{"):
            raise _malformed(f"{where} carries the unqualified attribute {str(name)[:40]!r}")


def _must_understand(block: etree._Element) -> bool:
    """Whether ``block`` must be understood by us: mustUnderstand 1 and meant for this node (no
    actor, or the next one) [SOAP 1.1 section 4.2]."""
    actor = block.get(f"{{{NS_SOAP_ENV}}}actor")
    flag = (block.get(f"{{{NS_SOAP_ENV}}}mustUnderstand") or "0").strip().lower()
    return flag in ("1", "true") and actor in (None, "", ACTOR_NEXT)


def _read_header(header: Optional[etree._Element]) -> Optional[str]:
    """The session token; a MustUnderstand fault for a block we do not know that must be understood.
    Other blocks (WS-Addressing, WS-Security meant for a proxy, ...) are ignored, as WCF does."""
    if header is None:
        return None
    _check_attributes(header, "Header")
    tokens = []
    for block in _elements(header, "Header"):
        if block.tag == TOKEN:
            if len(block):
                raise _malformed("v2:token holds elements; send the session token as text")
            tokens.append(block.text or "")
        elif _must_understand(block):
            qname = etree.QName(block)
            raise Refused(
                "MustUnderstand",
                f"The header '{qname.localname}' from the namespace '{qname.namespace or ''}' was not understood "
                'by the recipient of this message; drop it or send it without mustUnderstand="1"',
            )
    if len(tokens) > 1:
        raise _malformed("more than one v2:token header")
    return tokens[0].strip() if tokens else None


def _check_action(service: str, operation: str, soap_action_header: Optional[str]) -> None:
    """A SOAPAction that does not name the Body's operation of this service: WCF's contract filter
    refuses it (``ActionNotSupported`` [inferred code]). No SOAPAction header: dispatched by the
    Body, as SOAP 1.1 reads an absent intent."""
    if soap_action_header is None:
        return
    given = soap_action_header.strip()
    if len(given) >= 2 and given[0] == given[-1] == '"':
        given = given[1:-1]
    expected = soap_action(service, operation) if operation in messages.OPERATIONS[service] else None
    if given != expected:
        shown = given if len(given) <= 200 else given[:200] + "..."
        raise Refused(
            "ActionNotSupported",
            f"The message with Action '{shown}' cannot be processed at the receiver, due to a ContractFilter "
            f"mismatch at the EndpointDispatcher; send SOAPAction "
            + (f'"{expected}"' if expected else f"one of {', '.join(messages.OPERATIONS[service])} of {service}"),
        )


def _found(path: etree.XPath, root: etree._Element) -> List[etree._Element]:
    result = path(root)
    return [e for e in result if isinstance(e, etree._Element)] if isinstance(result, list) else []


def may_hold_xsi(document: bytes) -> bool:
    """Whether an element of ``document`` (the bytes as sent) can carry an ``xsi:`` attribute. Its
    namespace must be declared, and the declaration is the namespace's URI written out: in bytes a
    scan finds unless the text is UTF-16 or UTF-32 or spells the URI with character references (no
    DTD is parsed, so no entity or default attribute can bring it in). False: none can."""
    if not isinstance(document, bytes):
        return True  # not the bytes as sent: no scan can say
    return wide_encoding(document) is not None or b"&#" in document or _XSI_BYTES in document


def _payload(body: etree._Element, xsi: bool = True) -> etree._Element:
    """The Body's one payload element, validated on its own against our XSD (as WCF would:
    ``DeserializationFailed``). ``xsi:type`` annotations are dropped first (each element is read
    by its declared type); members sent ``xsi:nil="true"`` (nillable in our XSD) are then removed,
    so that they count as absent. ``xsi``: whether the request may hold such attributes at all
    (:func:`may_hold_xsi`); most do not, and then neither is searched for."""
    _check_attributes(body, "Body")
    children = _elements(body, "Body")
    if len(children) != 1:
        raise _malformed(f"the Body holds {len(children)} elements, not one operation element")
    # Worked on in place (the tree is this request's own), found by XPath: a 10,000-device
    # request has some 100,000 elements, too many to walk in Python.
    payload = children[0]
    if len(body.nsmap) > MAX_INHERITED_NAMESPACES:
        # lxml validates an element that is not its document's root in a stand-in document given
        # every namespace declared above it, checking each against those given so far: quadratic.
        # 250,000 declarations on the Envelope (6 MB, no element, before any login) cost 90 s of
        # CPU. A copy declares only the namespaces it uses.
        payload = copy.deepcopy(payload)
    for element in _found(_TYPED, payload) if xsi else ():
        del element.attrib[XSI_TYPE]
    schema = payload_schema()
    if not schema.validate(payload):
        # The first complaint names the element and line, as WCF's message does.
        first = next(iter(schema.error_log), None)  # type: ignore[call-overload]  # lxml-stubs
        raise Refused(Code.DESERIALIZATION_FAILED, schema_complaint(first))
    for element in _found(_NILLED, payload) if xsi else ():
        parent = element.getparent()
        if parent is not None and (element.get(XSI_NIL) or "").strip(_XML_SPACE) in ("true", "1"):
            parent.remove(element)
    return payload


def schema_complaint(entry: Optional[Any]) -> str:
    """What is wrong, in words, from libxml2's first validation error: the element by its name,
    what was expected, and the line, as WCF says it ("Expecting element 'Username'"), without
    libxml2's internals (``<string>:1:0:ERROR:SCHEMASV:SCHEMAV_ELEMENT_CONTENT: ...``). A name in
    the operations' namespace is written bare, any other with its namespace (which is what differs
    when an element has the right name in the wrong namespace)."""
    if entry is None:
        return "the request does not match the contract"

    def name(match: re.Match[str]) -> str:
        return match.group(2) if match.group(1) == NS_V2 else f"{match.group(2)} (namespace {match.group(1)})"

    text = _QUALIFIED.sub(name, str(entry.message)).strip()
    text = text.replace("This element is not expected. Expected is one of ( ", "not expected here; expecting one of ")
    text = text.replace("This element is not expected. Expected is ( ", "not expected here; expecting ")
    text = text.replace("This element is not expected.", "not expected here.").replace(" ).", ".")
    text = text.replace("No matching global declaration available for the validation root.", "not an operation")
    return f"the request does not match the contract at line {entry.line}: {text[:300]}"


def read_call(
    service: str, body: bytes, *, max_bytes: int, soap_action_header: Optional[str] = None
) -> messages.SoapCall:
    """Parse (hardened) and read one SOAP 1.1 request, lenient and strict as the module says."""
    try:
        root = parse_untrusted(body, max_bytes=max_bytes, what="request", max_nodes=MAX_REQUEST_NODES)
    except DocumentError as exc:
        raise Refused(Code.DESERIALIZATION_FAILED, str(exc)) from None
    # Comments are no content: a value reads whole and every child is an element (1 ms at 10,000
    # devices); processing instructions are dropped by the parser.
    etree.strip_tags(root, etree.Comment)
    qname = etree.QName(root)
    if qname.localname == "Envelope" and qname.namespace != NS_SOAP_ENV:
        raise Refused(
            "VersionMismatch", f"the Envelope is in {str(qname.namespace)[:100]!r}; send SOAP 1.1 ({NS_SOAP_ENV})"
        )
    if root.tag != ENVELOPE:
        raise _malformed(f"the document is {qname.localname[:60]!r}, not a SOAP Envelope")
    _check_attributes(root, "Envelope")
    parts = _elements(root, "Envelope")
    header = parts.pop(0) if parts and parts[0].tag == HEADER else None
    if not parts or parts[0].tag != BODY:
        raise _malformed("the Envelope has no Body (after an optional Header)")
    # SOAP 1.1 section 4.3: qualified elements may follow the Body; they mean nothing to us.
    if any(etree.QName(extra).namespace in (None, NS_SOAP_ENV) for extra in parts[1:]):
        raise _malformed("only namespace-qualified elements of another namespace may follow the Body")
    payloads = list(parts[0])
    if len(payloads) == 1:  # else not SOAP we can dispatch at all: DeserializationFailed below
        _check_action(service, etree.QName(payloads[0]).localname, soap_action_header)
    token = _read_header(header)
    # The two searches for xsi attributes were a tenth of a one-device request's reading (issue 19).
    payload = _payload(parts[0], may_hold_xsi(body))
    return messages.SoapCall(service, etree.QName(payload).localname, payload, token)


def dispatch(operations: UwsOperations, call: messages.SoapCall, client: str = "") -> bytes:
    """The answer to one validated call, by operation. The session is checked before the input is
    read, as UWS does: a stale token is refused whatever else is wrong."""
    if (call.service, call.operation) == ("SessionService", "LogIn"):
        return messages.login_response(operations.log_in(*messages.login_credentials(call), client))
    if (call.service, call.operation) == ("SessionService", "LogOut"):
        operations.check_session(call.token)
        operations.log_out(call.token)
        return messages.logout_response()
    if (call.service, call.operation) == ("CarrierService", "ChangeDeviceState"):
        operations.check_session(call.token)
        action, selection = messages.read_change_device_state(call)
        return messages.change_response(operations.change_device_state(action, selection))
    raise Refused(Code.REQUEST_UNDEFINED, f"{call.operation} is not a {call.service} operation")


def fault_envelope(faultcode: str, message: str, *, code_namespace: Optional[Tuple[str, str]] = None) -> bytes:
    """A SOAP 1.1 fault with ``faultcode`` and ``faultstring`` (escaped). ``code_namespace``
    (prefix, URI) is declared on ``faultcode`` for a code qualified by another namespace than the
    envelope's (prefix ``s``)."""
    code = etree.Element("faultcode", nsmap=dict([code_namespace]) if code_namespace else None)
    # Both may come from the REST API behind the bridge: not ours to trust to be XML text.
    code.text = xml_escaped(faultcode)
    text = etree.Element("faultstring")
    text.text = xml_escaped(message)
    detail = etree.tostring(code, encoding="unicode") + etree.tostring(text, encoding="unicode")
    return messages.soap_envelope(f"<s:Fault>{detail}</s:Fault>")


def served_file(path: str, address: str) -> Optional[bytes]:
    """What a GET of ``path`` (with its query) serves; None otherwise. See :mod:`.documents`."""
    bare, _, query = path.partition("?")
    return served_document(bare, query, address, service_of(bare))


def body_rules(max_body: int) -> BodyRules:
    """What a SOAP request may carry, for the one request screen (:func:`uws_adapter.edge.screen`):
    a length (waitress gives one for a chunked body, once it has it all), at most ``max_body``
    bytes, text/xml (SOAP 1.2's media type is a 415 of its own, as a basicHttpBinding answers)."""
    return BodyRules(
        max_body, XML_TYPES, "send SOAP requests as text/xml",
        refused_types=((SOAP12_TYPE, "SOAP 1.2 (application/soap+xml) is not served; send SOAP 1.1 as text/xml"),),
    )  # fmt: skip


# The WSGI application --------------------------------------------------------------------------


class SoapServer:
    """WSGI application serving our WSDL's services under any prefix (``.../CarrierService.svc``).

    ``address(environ)`` is the ``.../api/v2`` base written into the WSDL (an :class:`.InputError`
    from it is answered 400); ``count(name)`` is told of each ``"requests"`` (a POST to a service)
    and each ``"faults"``; ``refusal(exc)`` turns a backend's own exceptions into a
    :class:`.Refused` (None: not one to answer, re-raised).
    """

    def __init__(
        self,
        operations: UwsOperations,
        *,
        address: Callable[[Mapping[str, Any]], str],
        max_body: int,
        count: Callable[[str], None] = lambda name: None,
        refusal: Callable[[Exception], Optional[Refused]] = lambda exc: None,
        client: Callable[[Mapping[str, Any]], str] = lambda environ: str(environ.get("REMOTE_ADDR") or ""),
    ) -> None:
        self.operations = operations
        self.client = client
        self.address = address
        self.max_body = max_body
        self.rules = body_rules(max_body)
        self.count = count
        self.refusal = refusal

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        return self.answer(environ).send(start_response, environ)

    def answer(self, environ: Dict[str, Any]) -> Answer:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            query = environ.get("QUERY_STRING", "")
            try:
                address = self.address(environ)
            except InputError as exc:  # e.g. a Host the bridge may not write into its WSDL
                return Answer.text(400, str(exc))
            data = served_file(path + ("?" + query if query else ""), address)
            return Answer(200, CONTENT_TYPE, data) if data is not None else Answer.text(404, "no such document")
        service = service_of(path)
        if method != "POST":
            return Answer.text(405, "POST SOAP requests to a .svc address", ("Allow", "GET, POST"))
        if service is None:
            return Answer.text(404, "no such service")
        body = wsgi_body(environ, self.rules)
        if isinstance(body, Answer):
            return body
        self.count("requests")
        try:
            call = read_call(service, body, max_bytes=self.max_body, soap_action_header=environ.get("HTTP_SOAPACTION"))
            return Answer(200, CONTENT_TYPE, dispatch(self.operations, call, self.client(environ)))
        except Refused as refused:
            environ[FAULT_KEY] = "client"  # the request was refused: nothing of ours failed
            return self._fault(service, refused)
        except Exception as exc:  # the backend's own errors, when it says how they are answered
            refused_as = self.refusal(exc)
            if refused_as is None:
                raise
            # The service behind refused it (its own fault code) or our input check did: the client's;
            # anything else (no answer from behind) is ours, logged as a warning.
            environ[FAULT_KEY] = "client" if isinstance(exc, (ServiceFault, InputError)) else "server"
            return self._fault(service, refused_as)

    def _fault(self, service: str, refused: Refused) -> Answer:
        self.count("faults")
        namespace = QUALIFIED_CODES.get(refused.code)
        if namespace is None:
            return Answer(500, CONTENT_TYPE, fault_envelope(f"{service}.{refused.code}", str(refused)))
        prefix = "s" if namespace == NS_SOAP_ENV else "a"  # s: the envelope's own prefix
        code_namespace = None if prefix == "s" else (prefix, namespace)
        body = fault_envelope(f"{prefix}:{refused.code}", str(refused), code_namespace=code_namespace)
        return Answer(500, CONTENT_TYPE, body)
