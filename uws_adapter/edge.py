"""The inbound HTTP edge shared by the receiver, the bridge and the emulator: one answer type
(:class:`Answer`, status lines from :class:`http.HTTPStatus`), one request screen (:func:`screen`:
length, encoding, charset and media type; :func:`target_refusal`: the request target) and one
router (:class:`Router`: the SOAP services under ``/api/v2/``, the rest elsewhere), so that the
same request gets the same answer from every service.

Pure standard library (and :mod:`uws_adapter.xmlsafe`'s decode rule): importing it never loads a
server.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    MutableMapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import quote

from uws_adapter.xmlsafe import encoding_refusal

__all__ = [
    "SOAP_BASE", "SOAP_PREFIX", "Answer", "AsgiApp", "BodyRules", "Message", "Receive", "Router", "Scope", "Send",
    "StartResponse", "WsgiApp", "WsgiBody", "charset_of", "media_type_of", "over_the_cap", "raw_target", "screen",
    "target_refusal", "wsgi_body",
]  # fmt: skip

StartResponse = Callable[..., Any]
WsgiApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: Where our SOAP services are served (``/api/v2/CarrierService.svc``, as the carrier's).
SOAP_PREFIX = "/api/v2/"
#: The UWS base URL's path (what a client is given, ``.../api/v2``).
SOAP_BASE = SOAP_PREFIX.rstrip("/")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type, body, extra headers, and whether the connection must
    close after it (a body left unread must not be taken for the next request)."""

    status: int
    content_type: str
    body: bytes
    headers: Tuple[Tuple[str, str], ...] = ()
    close: bool = False

    @classmethod
    def text(cls, status: int, message: str, *headers: Tuple[str, str], close: bool = False) -> Answer:
        """A plain-text answer of one line (``message``, a newline added)."""
        # The charset said: a message may quote the refused document, and text/plain is US-ASCII
        # unless it says otherwise (RFC 6657), so clients misread every other character.
        return cls(status, "text/plain; charset=utf-8", (message + "\n").encode("utf-8", "replace"), headers, close)

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def header_list(self, *, hop_by_hop: bool = True) -> List[Tuple[str, str]]:
        """Every header of the answer (its length known, so the connection can be kept alive).
        ``hop_by_hop=False`` leaves out ``Connection``, which a WSGI application may not send
        (PEP 3333); a WSGI server has read the whole body before calling it anyway."""
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))), *self.headers]
        if self.close and hop_by_hop:
            headers.append(("Connection", "close"))
        return headers

    def send(self, start_response: StartResponse, environ: Dict[str, Any]) -> List[bytes]:
        """Send the whole answer through a WSGI ``start_response``; to a HEAD request (``environ``'s
        method) without its body, its length said: waitress writes whatever body it is given, and
        bytes after a HEAD answer were read as the start of the next answer on the connection.
        ``environ`` is required so that no answer can forget whose request it answers."""
        start_response(self.status_line, self.header_list(hop_by_hop=False))
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]


@dataclass(frozen=True)
class BodyRules:
    """What a service takes in a request body: at most ``max_body`` bytes of one of
    ``media_types`` (None: any; the service reads the type itself), and whether a length must be
    given (a POST without one is an empty body otherwise). ``media_hint`` says what to send."""

    max_body: int
    media_types: Optional[Tuple[str, ...]] = None
    media_hint: str = "send the media type this service takes"
    length_required: bool = True
    #: Media types answered 415 with their own reason (SOAP 1.2 on a SOAP 1.1 service).
    refused_types: Tuple[Tuple[str, str], ...] = ()


def media_type_of(content_type: Optional[str]) -> str:
    """The bare media type, lower case (``text/xml`` of ``text/xml; charset=utf-8``)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset_of(content_type: Optional[str]) -> Optional[str]:
    """The ``charset`` parameter of a Content-Type, unquoted (None without one)."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def target_refusal(raw_path: str) -> Optional[str]:
    """Why a request target is refused (None: it is a path we route): it must be a path that
    starts with one ``/``. ``//metrics`` is not ``/metrics`` on one server and ``/`` on another:
    it is refused on every one."""
    if not raw_path.startswith("/") or raw_path.startswith("//"):
        shown = raw_path if len(raw_path) <= 60 else raw_path[:60] + "..."
        return f"the request target {shown!r} is not a path starting with one /"
    return None


def screen(
    method: str, length: Optional[str], encoding: Optional[str], content_type: Optional[str], rules: BodyRules,
    *, coding: Optional[str] = None,
) -> Union[Answer, Tuple[int, str]]:  # fmt: skip
    """Everything decided about a request body before it is read: the refusal to send (and close
    after), or (its length, its media type). The same request gets the same answer on every
    service: no or a malformed Content-Length 411 / 400, over the cap 413, compressed 415, a charset
    that is not a text encoding we read 400, a media type the service does not take 415.
    ``coding``: the Transfer-Encoding an ASGI server passes on (waitress reads a chunked body whole
    and gives its length, and answers 501 to any other coding itself): ``chunked`` leaves the
    length unknown (-1) until the body is read, within the cap; any other is 501, as waitress's."""
    if coding and coding.strip().lower() != "chunked":
        return Answer.text(501, "only the chunked transfer coding is supported", close=True)
    if coding and (length is None or not length.strip()):
        size = -1
    elif length is None or not length.strip():
        if rules.length_required and method == "POST":
            return Answer.text(411, "a Content-Length is required", close=True)
        size = 0
    else:
        text = length.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            return Answer.text(400, "the Content-Length is not a number of bytes", close=True)
        size = int(text)
    if size > rules.max_body:
        return over_the_cap(rules.max_body)
    if (encoding or "identity").strip().lower() != "identity":
        return Answer.text(415, "compressed bodies are refused; send identity", close=True)
    charset = charset_of(content_type)
    if charset is not None:
        refusal = encoding_refusal(charset, "charset")
        if refusal is not None:
            return Answer.text(400, refusal, close=True)
    kind = media_type_of(content_type)
    for refused, reason in rules.refused_types:
        if kind == refused:
            return Answer.text(415, reason, close=True)
    if rules.media_types is not None and kind not in rules.media_types:
        return Answer.text(415, rules.media_hint, close=True)
    return size, kind


def over_the_cap(max_body: int) -> Answer:
    """The answer to a body over ``max_body`` bytes, known from its length or found while reading it."""
    return Answer.text(413, f"over the {max_body}-byte limit", close=True)


def wsgi_body(environ: Dict[str, Any], rules: BodyRules) -> Union[Answer, bytes]:
    """The body of a WSGI request, read once :func:`screen` lets it through; else its refusal."""
    screened = screen(
        environ.get("REQUEST_METHOD", "GET"), environ.get("CONTENT_LENGTH"), environ.get("HTTP_CONTENT_ENCODING"),
        environ.get("CONTENT_TYPE"), rules,
    )  # fmt: skip
    return screened if isinstance(screened, Answer) else environ["wsgi.input"].read(screened[0])


def raw_target(environ: Dict[str, Any]) -> str:
    """The request target as the client sent it (waitress's ``REQUEST_URI``, gunicorn's
    ``RAW_URI``), not the server's decoded and normalised ``PATH_INFO``: waitress serves
    ``//metrics`` as ``/metrics``."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    return raw if isinstance(raw, str) and raw else quote(environ.get("PATH_INFO") or "/")


class WsgiBody:
    """An answer's body passed on, with :meth:`closed` run once the server closes it (PEP 3333: after
    the last byte, or when the client went away), after the body's own ``close``."""

    def __init__(self, body: Iterable[bytes]) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self.closed()

    def closed(self) -> None:
        raise NotImplementedError


class Router:
    """WSGI application: a request whose target is refused (:func:`target_refusal`) gets 400; else
    the first of ``routes`` (path prefix, application) whose prefix the path starts with, else
    ``default``. The one place that says which service of a process answers which path."""

    def __init__(self, routes: Sequence[Tuple[str, WsgiApp]], default: WsgiApp) -> None:
        self.routes = tuple(routes)
        self.default = default

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        refusal = target_refusal(raw_target(environ))
        if refusal is not None:
            return Answer.text(400, refusal).send(start_response, environ)
        path = environ.get("PATH_INFO") or "/"
        for prefix, app in self.routes:
            if path.startswith(prefix):
                return app(environ, start_response)
        return self.default(environ, start_response)
