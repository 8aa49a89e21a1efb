"""HTTP sending shared by the UWS and REST clients: bounded exchanges, and the no-blind-retry rule.

Every exchange is bounded twice, so that a hostile or broken server can neither hold a client nor
fill its memory: a **deadline** for the whole exchange (connect, send and the complete answer; a
server that trickles one byte a second under the per-read timeout still runs into it), and a
**cap on the answer's size**, counted after decompression and enforced while reading (a small
gzip answer that inflates to gigabytes is stopped at the cap).

Provisioning is not idempotent (each line has a small daily budget of actions), so only a request
that provably never left is sent again, with capped, jittered backoff. Anything that may have
reached the service raises :class:`OutcomeUnknown` carrying a :class:`SentRequest` (secrets
redacted), to be reconciled from callbacks; a login that gets no usable answer is a
:class:`TransportError` of the login, since nothing was provisioned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from http.client import HTTPException
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, ReadTimeoutError

from uws_adapter.errors import ConnectionFailed, DocumentError, InputError, OutcomeUnknown, TransportError
from uws_adapter.jsonsafe import loads_untrusted
from uws_adapter.logs import WIRE, printable
from uws_adapter.model.devices import Device
from uws_adapter.model.selection import DeviceList, Selection
from uws_adapter.redaction import masked_url, redact
from uws_adapter.xmlsafe import parse_untrusted

logger = logging.getLogger("uws_adapter.transport")
#: DEBUG: every document the clients send and receive, secrets redacted (see :func:`log_exchange`).
wire = logging.getLogger(WIRE)
#: Bytes of a document the wire log shows (a 10,000-device envelope is about 2 MB).
WIRE_SHOWN_BYTES = 16 * 1024

#: (connect, read) seconds. The carrier can take a while to accept a 10,000-device request.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 120.0)
#: Seconds for a whole exchange: connect, send, and read the complete answer.
DEFAULT_DEADLINE = 180.0
#: Bytes of an answer, after decompression. A RequestId answer is a few hundred bytes.
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024

_CHUNK = 16 * 1024
#: Names (compared in lower case) whose values are never shown: XML elements, JSON keys, headers.
SECRET_NAMES = frozenset(
    {"password", "token", "sessiontoken", "client_secret", "access_token", "refresh_token", "authorization",
     "vz-m2m-token", "proxy-authorization", "cookie", "set-cookie"}
)  # fmt: skip
REDACTED = "***"
#: How the limits are changed, for messages.
DEADLINE_FIX = "raise deadline= (UWS_ADAPTER_DEADLINE, --deadline) if the service is just slow"
ANSWER_FIX = "raise max_answer_bytes= (UWS_ADAPTER_MAX_ANSWER_BYTES, --max-answer-bytes) if such answers are expected"


def check_timeout(timeout: object) -> Tuple[float, float]:
    """``timeout`` as (connect, read) seconds, both positive; never None (requests would wait forever)."""
    if not (
        isinstance(timeout, tuple)
        and len(timeout) == 2
        and all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in timeout)
    ):
        raise InputError("timeout", f"{timeout!r} is not (connect, read) seconds", "pass e.g. (10, 120)")
    return float(timeout[0]), float(timeout[1])


def check_deadline(deadline: object) -> float:
    """``deadline`` as positive seconds."""
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not 0 < deadline < float("inf"):
        raise InputError("deadline", f"{deadline!r} is not a number of seconds", "pass e.g. 180")
    return float(deadline)


def check_max_answer_bytes(limit: object) -> int:
    """``limit`` as a positive byte count."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError("max_answer_bytes", f"{limit!r} is not a byte count", "pass e.g. 1048576")
    return limit


URL_FIX = "give an http(s) URL with a host, e.g. https://uws.apps.nphase.com/api/v2"
#: Raised by requests before any connection is made: the URL or a header cannot be sent at all.
_UNSENDABLE = (
    requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader, requests.exceptions.URLRequired,
)  # fmt: skip


def check_base_url(url: object, field: str = "base_url") -> str:
    """``url`` if a request can be sent to it (an http or https URL with a host and a valid port),
    else an :class:`InputError` naming ``field``: checked before any I/O, so that a typo is bad
    input, never an outcome to reconcile."""
    if not isinstance(url, str) or not url.strip():
        raise InputError(field, "no URL", URL_FIX)
    if not url.isprintable() or any(c.isspace() for c in url):
        raise InputError(field, f"{masked_url(url)} has spaces or control characters", URL_FIX)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise InputError(field, f"{masked_url(url)} cannot be parsed ({exc})", URL_FIX) from None
    try:
        port = parts.port  # ValueError for a port that is not a number in 0..65535
    except ValueError:
        raise InputError(field, f"{masked_url(url)} has a port that is not a number from 1 to 65535", URL_FIX) from None
    if parts.scheme.lower() not in ("http", "https") or "://" not in url:
        raise InputError(field, f"{masked_url(url)} is not an http(s) URL", URL_FIX)
    if not parts.hostname:
        raise InputError(field, f"{masked_url(url)} has no host", URL_FIX)
    if port == 0:
        raise InputError(field, f"{masked_url(url)} has port 0", URL_FIX)
    try:
        requests.Request("POST", url).prepare()
    except (requests.RequestException, ValueError) as exc:
        raise InputError(field, f"{masked_url(url)} cannot be parsed ({type(exc).__name__})", URL_FIX) from None
    return url


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably did not leave: the URL could not be used, or no connection
    was ever made. (Where the client's own connections are in use, the exchange also knows
    whether a byte of the request was handed to a socket; see :meth:`HttpSender.send`.)"""
    if isinstance(exc, _UNSENDABLE):
        return True
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)
    return False


# What was sent, without its secrets ------------------------------------------------------------


def redact_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({k: REDACTED if k.lower() in SECRET_NAMES else v for k, v in headers.items()})


def redact_xml(body: bytes) -> bytes:
    """Our own SOAP envelope with the text of every secret element (``Password``, ``token``,
    ``SessionToken``) replaced; a body that does not parse is not shown at all."""
    try:
        root = parse_untrusted(body, max_bytes=max(len(body), 1), what="request")  # our own envelope
    except DocumentError:
        return b""
    from lxml import etree

    for element in root.iter("{*}*"):
        if etree.QName(element).localname.lower() in SECRET_NAMES:
            element.text = REDACTED
            for child in list(element):
                element.remove(child)
    text: bytes = etree.tostring(root, encoding="utf-8")
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_NAMES else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value


def redact_json(body: bytes) -> bytes:
    """A JSON body with the value of every secret key (``password``, ``token``, ...) replaced."""
    if not body:
        return b""
    try:
        value = loads_untrusted(body.decode("utf-8"), what="request")
    except (DocumentError, UnicodeDecodeError):
        return b""
    return json.dumps(_redact_value(value), ensure_ascii=False).encode("utf-8")


def shown_url(url: str) -> str:
    """``url`` for a log: any user and password in it masked, its query left out (it may hold a
    token), control characters escaped."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = REDACTED + "@" + authority.rpartition("@")[2]
    return printable(scheme + sep + authority + slash + path.partition("?")[0], 300)


def log_exchange(
    method: str, url: str, *, headers: Mapping[str, str], body: Optional[bytes], status: Optional[int] = None
) -> None:
    """One document on the ``uws_adapter.wire`` logger (DEBUG): a request as sent (``status``
    None) or an answer as received. Secret headers (Authorization, VZ-M2M-Token, cookies) are
    masked and the values of secret elements, attributes and members (passwords, tokens, client
    secrets) blanked, by :func:`uws_adapter.redaction.redact`; the document is cut to
    :data:`WIRE_SHOWN_BYTES` after redaction, and its line breaks escaped."""
    shown_headers = {name: printable(str(value), 200) for name, value in redact_headers(headers).items()}
    document = ""
    if body:
        # Cut before redacting as well, to bound the work; the redaction blanks a value cut short.
        redacted = redact(body[: 4 * WIRE_SHOWN_BYTES])
        kept = redacted[:WIRE_SHOWN_BYTES].decode("utf-8", errors="ignore")
        cut = len(body) > 4 * WIRE_SHOWN_BYTES or len(redacted) > WIRE_SHOWN_BYTES
        document = printable(kept, WIRE_SHOWN_BYTES) + (f"... ({len(body):,} bytes in all)" if cut else "")
    if status is None:
        direction, summary = "sent", f"{method} {shown_url(url)}"
    else:
        direction, summary = "received", f"HTTP {status} for {method} {shown_url(url)}"
    wire.debug(
        "%s %s headers=%s body=%s", direction, summary, shown_headers, document or "(none)",
        extra={"direction": direction, "method": method, "url": shown_url(url), "status": status},
    )  # fmt: skip


@dataclass(frozen=True)
class SentRequest:
    """A request as it went out, for reconciling an unknown outcome, with every secret redacted
    (passwords, tokens, the client secret and the Authorization header never appear here).

    ``operation`` names the call (``ChangeDeviceState``, ``LogIn``, ``POST /m2m/v1/...``),
    ``action`` the provisioning action (``Suspend``, ``Restore``, ``ProfileResume``) if any, and
    ``selection`` the devices or filter it acted on. The carrier assigns the RequestId in its
    answer, so a request whose answer was lost has none: find its callbacks by these devices."""

    method: str
    url: str
    operation: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    action: Optional[str] = None
    selection: Optional[Selection] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", redact_headers(self.headers))

    @property
    def devices(self) -> Tuple[Device, ...]:
        """The devices of a device-list request; empty for a filter (account, group, ...)."""
        return self.selection.devices if isinstance(self.selection, DeviceList) else ()

    @property
    def text(self) -> str:
        """The body (secrets redacted) as text."""
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        parts = [f"{self.method} {self.url}", f"operation={self.operation!r}"]
        if self.action is not None:
            parts.append(f"action={self.action!r}")
        if isinstance(self.selection, DeviceList):
            shown = ", ".join(str(d) for d in self.selection.devices[:3])
            more = f", ... {len(self.selection.devices):,} in all" if len(self.selection.devices) > 3 else ""
            parts.append(f"devices=[{shown}{more}]")
        elif self.selection is not None:
            parts.append(f"selection={self.selection!r}")
        parts.append(f"body={len(self.body):,} bytes, secrets redacted")
        return "SentRequest(" + ", ".join(parts) + ")"

    __str__ = __repr__


#: Builds the :class:`SentRequest` only when an error needs it: redacting a 10,000-device
#: envelope costs more than building it, and most requests succeed.
Describe = Callable[[], SentRequest]


@dataclass(frozen=True)
class Answer:
    """A complete answer, read within the deadline and the size cap."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


# The deadline: a watchdog that shuts the exchange's socket down when time is up ----------------

_current = threading.local()


class _Exchange:
    """One exchange's deadline. The socket is learnt when the connection is made (or taken from
    the pool); at the deadline it is shut down, which ends a blocked read at once, whatever the
    per-read timeout."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self.expired = False
        self._done = False
        #: True once one of our own connections served this exchange (then ``sending`` is known).
        self.tracked = False
        #: True once a byte of the request may have been handed to a connected socket.
        self.sending = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: Optional[socket.socket]) -> None:
        with self._lock:
            self._sock = sock
            if self.expired and sock is not None:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def finish(self) -> bool:
        """Stop the watchdog; True when the deadline had passed."""
        with self._lock:
            self._done = True
            self._timer.cancel()
            return self.expired


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to interrupt
        sock.shutdown(socket.SHUT_RDWR)


def _attach(sock: Optional[socket.socket]) -> None:
    exchange: Optional[_Exchange] = getattr(_current, "exchange", None)
    if exchange is not None and sock is not None:
        exchange.attach(sock)


def _mark(*, tracked: bool = False, sending: bool = False) -> None:
    exchange: Optional[_Exchange] = getattr(_current, "exchange", None)
    if exchange is not None:
        exchange.tracked = exchange.tracked or tracked
        exchange.sending = exchange.sending or sending


class _SendTracking:
    """Knows whether a byte of the request may have left: ``send`` on a connected socket, outside
    ``connect`` (a proxy's CONNECT goes through ``send`` too, and is not the request). Everything
    http.client and urllib3 write goes through ``send``."""

    sock: Any
    auto_open: int
    _connecting = False

    def connect(self) -> None:
        self._connecting = True
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self._connecting = False
        _attach(self.sock)

    def send(self, data: Any) -> None:
        if self.sock is None and self.auto_open and not self._connecting:
            self.connect()  # what http.client's send would do first, so that a failure here is "not sent"
        if not self._connecting:
            _mark(sending=True)
        super().send(data)  # type: ignore[misc]


class _TrackedHTTPConnection(_SendTracking, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_SendTracking, HTTPSConnection):
    pass


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        conn = super()._get_conn(timeout)
        _mark(tracked=isinstance(conn, _SendTracking))
        _attach(getattr(conn, "sock", None))  # a kept-alive connection is already open
        return conn


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        conn = super()._get_conn(timeout)
        _mark(tracked=isinstance(conn, _SendTracking))
        _attach(getattr(conn, "sock", None))
        return conn


class DeadlineAdapter(HTTPAdapter):
    """A requests transport adapter whose connections the deadline watchdog can interrupt,
    also while the status line and headers are still arriving. Mount it on a session you pass
    in if that session has its own adapters (plain ones are replaced by this one)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


def _with_deadline_adapters(session: requests.Session) -> requests.Session:
    for prefix in ("http://", "https://"):
        adapter = session.adapters.get(prefix)
        if type(adapter) is HTTPAdapter:  # the default: same settings, interruptible connections
            session.mount(
                prefix,
                DeadlineAdapter(
                    pool_connections=getattr(adapter, "_pool_connections", 10),
                    pool_maxsize=getattr(adapter, "_pool_maxsize", 10), max_retries=adapter.max_retries,
                    pool_block=getattr(adapter, "_pool_block", False),
                ),
            )  # fmt: skip
    return session


class _LimitExceeded(TransportError):
    """Internal: the deadline or the cap ended the read; turned into the right public error."""


class _NotSent(TransportError):
    """Internal: the exchange failed before any byte of the request left (``cause``)."""

    def __init__(self, cause: requests.RequestException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class HttpSender:
    """Sends requests through a :class:`requests.Session` under the rules above."""

    def __init__(
        self,
        *,
        session: Optional[requests.Session] = None,
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        connect_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(connect_retries, bool) or not isinstance(connect_retries, int) or connect_retries < 0:
            raise InputError("connect_retries", f"{connect_retries!r} is not a count", "pass 0 or more")
        self.session = _with_deadline_adapters(session if session is not None else requests.Session())
        self.timeout = check_timeout(timeout)
        self.deadline = check_deadline(deadline)
        self.max_answer_bytes = check_max_answer_bytes(max_answer_bytes)
        self.connect_retries = connect_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    def send(
        self,
        method: str,
        url: str,
        *,
        request: Describe,
        headers: Mapping[str, str],
        data: Optional[bytes] = None,
        login: bool = False,
        **options: Any,
    ) -> Answer:
        """One HTTP exchange, with its complete answer. ``request()`` is what an
        :class:`OutcomeUnknown` carries; with ``login``, an answer lost after sending is a
        :class:`TransportError` of the login instead (nothing was provisioned)."""
        attempt = 0
        if wire.isEnabledFor(logging.DEBUG):
            log_exchange(method, url, headers=headers, body=data)
        while True:
            try:
                answer = self._exchange(method, url, headers, data, options)
            except _LimitExceeded as exc:
                raise self._lost(str(exc), url, request, login) from None
            except requests.RequestException as exc:  # bytes of the request may have reached the server
                raise self._lost(type(exc).__name__, url, request, login) from exc
            except _NotSent as failure:
                cause = failure.cause
                if isinstance(cause, _UNSENDABLE):  # no retry fixes a URL or a header
                    raise InputError(
                        "url",
                        f"{masked_url(url)} cannot be sent to ({type(cause).__name__}); nothing was sent",
                        URL_FIX,
                    ) from None
                if attempt >= self.connect_retries:
                    raise ConnectionFailed(f"could not connect to {url} ({attempt + 1} attempts): {cause}") from cause
                # Capped exponential backoff with full jitter, so many clients do not retry in step.
                delay = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
                logger.info(
                    "%s %s: could not connect (attempt %d of %d), retrying in %.2f s: %s",
                    method, shown_url(url), attempt + 1, self.connect_retries + 1, delay, type(cause).__name__,
                )  # fmt: skip
                self._sleep(delay)
                attempt += 1
                continue
            if wire.isEnabledFor(logging.DEBUG):
                log_exchange(method, url, headers=answer.headers, body=answer.content, status=answer.status_code)
            return answer

    @staticmethod
    def _lost(reason: str, url: str, describe: Describe, login: bool) -> TransportError:
        request = describe()
        logger.info("%s at %s: %s", request.operation, shown_url(url), reason)
        if login:
            return TransportError(
                f"{request.operation}: no usable answer from {url} ({reason}); nothing was provisioned: "
                "log in again (it is safe)"
            )
        return OutcomeUnknown(
            f"{reason} after the request was sent to {url}; it may have been carried out: check its "
            "callbacks before sending it again",
            request=request,
        )

    def _exchange(
        self, method: str, url: str, headers: Mapping[str, str], data: Optional[bytes], options: Dict[str, Any]
    ) -> Answer:
        exchange = _Exchange(self.deadline)
        _current.exchange = exchange
        response: Optional[requests.Response] = None
        try:
            # Each wait is also capped by the deadline, so that a connect or a read never outlives it.
            timeout = (min(self.timeout[0], self.deadline), min(self.timeout[1], self.deadline))
            response = self.session.request(
                method, url, data=data, headers=dict(headers), timeout=timeout, allow_redirects=False,
                stream=True, **options,
            )  # fmt: skip
            # A session with adapters of its own: interruptible from here on at least.
            _attach(getattr(getattr(response.raw, "connection", None), "sock", None))
            content = self._read(response)
            if exchange.finish():
                raise _LimitExceeded(self._deadline_text())
            return Answer(response.status_code, response.headers, content)
        except requests.RequestException as exc:
            expired = exchange.finish()
            # Sent or not: known from our own connections, else judged by the kind of failure.
            sent = exchange.sending if exchange.tracked else not never_sent(exc)
            if isinstance(exc, _UNSENDABLE):
                sent = False
            if not sent:
                raise _NotSent(exc) from exc
            # The watchdog's shutdown surfaces as a reset or a timeout: say what it was.
            if expired:
                raise _LimitExceeded(self._deadline_text()) from None
            raise
        finally:
            exchange.finish()
            _current.exchange = None
            if response is not None:
                response.close()

    def _read(self, response: requests.Response) -> bytes:
        parts: List[bytes] = []
        size = 0
        raw = response.raw
        while True:
            try:
                # decode_content: the cap counts decompressed bytes, a chunk at a time.
                chunk = raw.read(_CHUNK, decode_content=True)
            except ReadTimeoutError as exc:
                raise requests.ReadTimeout(exc) from exc
            except (OSError, HTTPError, HTTPException) as exc:  # a reset, or the watchdog's shutdown
                raise requests.ConnectionError(exc) from exc
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise _LimitExceeded(
                    f"the answer is over the {self.max_answer_bytes:,}-byte limit (decompressed); {ANSWER_FIX}"
                )
            parts.append(chunk)

    def _deadline_text(self) -> str:
        return f"no complete answer within the {self.deadline:g} s deadline; {DEADLINE_FIX}"
