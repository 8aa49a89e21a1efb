"""The one SOAP server of our WSDL, used by the emulator's UWS front and by the bridge's SOAP
façade: a WSGI application (served by waitress, like the receiver) that screens each request
(method, media type, encoding, size), parses the body hardened (:mod:`.xmlsafe`), validates it
against our XSD as WCF would (``DeserializationFailed``), dispatches it by operation to a backend
(:class:`UwsOperations`), writes SOAP 1.1 faults the way UWS does (HTTP 500,
``<Service>.<CODE>``), and serves the WSDL with the caller's own address and the bundled XSDs.

What each operation reads and answers (the UWS messages) is in :mod:`uws_adapter.soap.service`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

from lxml import etree

from uws_adapter.errors import DocumentError, InputError, Refused
from uws_adapter.model.actions import Action
from uws_adapter.model.selection import Selection
from uws_adapter.soap.bindings import WSDL_FILE, resource_dir
from uws_adapter.soap.schemas import lxml_schema
from uws_adapter.soap.service import (
    SERVICES,
    SoapCall,
    change_response,
    login_credentials,
    login_response,
    logout_response,
    read_change_device_state,
    soap_envelope,
)
from uws_adapter.wire import CONTENT_TYPE, NS_SOAP_ENV, NS_V2, UWS_BASE_URL
from uws_adapter.xmlsafe import parse_untrusted

__all__ = [
    "XML_TYPES", "Reply", "SoapServer", "UwsOperations", "dispatch", "fault_envelope", "read_call", "reply",
    "served_file", "service_of", "wsdl_document",
]  # fmt: skip

NS_WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
StartResponse = Callable[[str, List[Tuple[str, str]]], Any]
#: An HTTP answer before it is sent: status, body, content type.
Reply = Tuple[int, bytes, str]
#: What a SOAP request may be sent as (SOAP 1.1 is text/xml; the others are accepted as the receiver does).
XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")


class UwsOperations(Protocol):
    """What a SOAP backend does; each method raises :class:`.Refused` to answer with a fault."""

    def log_in(self, username: str, password: str) -> str:
        """A new session token for this login."""

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
    return service if service in SERVICES else None


def read_call(service: str, body: bytes, *, max_bytes: int) -> SoapCall:
    """Parse (hardened) and validate against our XSD, as WCF would (``DeserializationFailed``)."""
    try:
        root = parse_untrusted(body, max_bytes=max_bytes, what="request")
    except DocumentError as exc:
        raise Refused("DeserializationFailed", str(exc)) from None
    schema = lxml_schema()
    if not schema.validate(root):
        # The first complaint names the element and line, as WCF's message does.
        first = next(iter(schema.error_log), None)  # type: ignore[call-overload]  # lxml-stubs
        raise Refused("DeserializationFailed", str(first) if first else "the request does not match the contract")
    payload = root.find(f"{{{NS_SOAP_ENV}}}Body")[0]  # type: ignore[index]
    token = root.findtext(f"{{{NS_SOAP_ENV}}}Header/{{{NS_V2}}}token")
    return SoapCall(service, etree.QName(payload).localname, payload, token)


def dispatch(operations: UwsOperations, call: SoapCall) -> bytes:
    """The answer to one validated call, by operation. The session is checked before the input is
    read, as UWS does: a stale token is refused whatever else is wrong."""
    if (call.service, call.operation) == ("SessionService", "LogIn"):
        return login_response(operations.log_in(*login_credentials(call)))
    if (call.service, call.operation) == ("SessionService", "LogOut"):
        operations.check_session(call.token)
        operations.log_out(call.token)
        return logout_response()
    if (call.service, call.operation) == ("CarrierService", "ChangeDeviceState"):
        operations.check_session(call.token)
        action, selection = read_change_device_state(call)
        return change_response(operations.change_device_state(action, selection))
    raise Refused("INPUT_INVALID.RequestUndefined", f"{call.operation} is not a {call.service} operation")


def fault_envelope(faultcode: str, message: str) -> bytes:
    """A SOAP 1.1 fault with ``faultcode`` and ``faultstring`` (escaped)."""
    code = etree.Element("faultcode")
    code.text = faultcode
    text = etree.Element("faultstring")
    text.text = message
    detail = etree.tostring(code, encoding="unicode") + etree.tostring(text, encoding="unicode")
    return soap_envelope(f"<s:Fault>{detail}</s:Fault>")


def wsdl_document(address: str) -> bytes:
    """Our WSDL with every ``soap:address`` under ``address`` (a ``.../api/v2`` base) instead of
    UWS's. Written by lxml, so that whatever ``address`` holds is escaped."""
    root = parse_untrusted((resource_dir() / WSDL_FILE).read_bytes(), what="bundled WSDL")
    for element in root.iter(f"{{{NS_WSDL_SOAP}}}address"):
        location = element.get("location") or ""
        if location.startswith(UWS_BASE_URL):
            element.set("location", address + location[len(UWS_BASE_URL) :])
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="utf-8")


def served_file(path: str, address: str) -> Optional[bytes]:
    """What a GET of ``path`` serves: the WSDL (``?wsdl``) or a bundled XSD; None otherwise."""
    bare = path.partition("?")[0]
    name = bare.rpartition("/")[2]
    if path.endswith("?wsdl") or name == WSDL_FILE:
        return wsdl_document(address)
    target = resource_dir() / name
    return target.read_bytes() if name.endswith(".xsd") and target.is_file() else None


def reply(start_response: StartResponse, status: int, body: bytes, content_type: str) -> List[bytes]:
    """Send one whole answer (its length known, so the connection can be kept alive)."""
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if status == 413:
        headers.append(("Connection", "close"))  # the unread body must not be taken for the next request
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]


def screen(environ: Mapping[str, Any], max_body: int) -> Optional[Reply]:
    """What to answer before reading a POSTed body (None: read it). The same rules as the
    receiver's: a length is required (waitress gives one for a chunked body, once it has it all),
    413 over the cap, 415 for a compressed body or a media type that is not XML."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return 411, b"a Content-Length is required\n", "text/plain"
    if length > max_body:
        return 413, f"over the {max_body}-byte limit\n".encode(), "text/plain"
    if (environ.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower() != "identity":
        return 415, b"compressed bodies are refused; send identity\n", "text/plain"
    kind = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if kind not in XML_TYPES:
        return 415, b"send SOAP requests as text/xml\n", "text/plain"
    return None


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
    ) -> None:
        self.operations = operations
        self.address = address
        self.max_body = max_body
        self.count = count
        self.refusal = refusal

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        return reply(start_response, *self.answer(environ))

    def answer(self, environ: Mapping[str, Any]) -> Reply:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            query = environ.get("QUERY_STRING", "")
            try:
                address = self.address(environ)
            except InputError as exc:  # e.g. a Host the bridge may not write into its WSDL
                return 400, f"{exc}\n".encode("utf-8", "replace"), "text/plain"
            data = served_file(path + ("?" + query if query else ""), address)
            return (200, data, CONTENT_TYPE) if data is not None else (404, b"no such document\n", "text/plain")
        service = service_of(path)
        if method != "POST":
            return 405, b"POST SOAP requests to a .svc address\n", "text/plain"
        if service is None:
            return 404, b"no such service\n", "text/plain"
        screened = screen(environ, self.max_body)
        if screened is not None:
            return screened
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        self.count("requests")
        try:
            return 200, dispatch(self.operations, read_call(service, body, max_bytes=self.max_body)), CONTENT_TYPE
        except Refused as refused:
            return self._fault(service, refused)
        except Exception as exc:  # the backend's own errors, when it says how they are answered
            refused_as = self.refusal(exc)
            if refused_as is None:
                raise
            return self._fault(service, refused_as)

    def _fault(self, service: str, refused: Refused) -> Reply:
        self.count("faults")
        return 500, fault_envelope(f"{service}.{refused.code}", str(refused)), CONTENT_TYPE
