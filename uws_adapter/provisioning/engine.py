"""The one sending engine: every outbound HTTP request we make goes through :class:`Engine` — the
clients' calls to the carrier, the bridge's relays to the legacy listener, the emulator's
callbacks — each with its own :class:`~uws_adapter.provisioning.options.SendOptions`.

A protocol is a **codec** (:class:`Codec`): it builds the request and reads an answer into a
value, raises the fault the answer carries, or says the answer is :class:`NotUsable`. What
follows from each outcome is decided here, once:

- a request that provably **never left** (refused, name not found, connect timeout) is tried
  again ``connect_retries`` times with capped, jittered backoff, then :class:`ConnectionFailed`;
  a URL nothing can be sent to is an :class:`InputError`;
- a request whose bytes **may have left** and got no complete answer (reset, read timeout, the
  deadline, the answer cap) is :class:`OutcomeUnknown`, carrying what was sent (secrets
  redacted) — provisioning is not idempotent, so nothing is sent again blindly (a repeatable
  request says sending it again is safe); a login, or a read that changes nothing, is a
  :class:`TransportError` instead (nothing was provisioned, logging in again is safe);
- an answer that is **not usable** (an HTML page, a proxy's text, an empty body): a 404 says
  to check the endpoint URL; a login says to log in again; a 5xx, or a 2xx to a request that
  must not be repeated, is :class:`OutcomeUnknown`; anything else a :class:`TransportError`.
"""

from __future__ import annotations

import enum
import http.client
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Protocol, Set, Tuple, TypeVar, Union

import requests

from uws_adapter.errors import ConnectionFailed, InputError, OutcomeUnknown, TransportError
from uws_adapter.provisioning.options import CLIENT_OPTIONS, SendOptions
from uws_adapter.provisioning.sent import Describe, SentRequest, log_exchange, wire
from uws_adapter.provisioning.transport import (
    Answer,
    LimitExceeded,
    NotSent,
    OriginSession,
    Unsendable,
    exchange,
    with_deadline_adapters,
)
from uws_adapter.provisioning.urls import URL_FIX
from uws_adapter.redaction import masked_url

__all__ = [
    "Answer", "Codec", "Engine", "NotUsable", "Outgoing", "Stakes", "answer_failure", "causes", "connect_failure",
]  # fmt: skip

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
logger = logging.getLogger("uws_adapter.transport")

#: How the clients' limits are changed, for messages (the relay and the emulator say their own).
DEADLINE_FIX = "raise deadline= (UWS_ADAPTER_DEADLINE, --deadline) if the service is just slow"
ANSWER_FIX = "raise max_answer_bytes= (UWS_ADAPTER_MAX_ANSWER_BYTES, --max-answer-bytes) if such answers are expected"
CLIENT_LIMITS = (DEADLINE_FIX, ANSWER_FIX)
#: What to check when a header cannot be written: the credentials and tokens that go into one.
HEADER_FIX = "check the credentials and tokens given (client_id, client_secret, bearer_token, token)"
#: Where the clients' URLs are set, for messages (the relay and the emulator name their own).
CLIENT_URLS = "the endpoint URL (--endpoint, --rest-url, UWS_ENDPOINT, UWS_ADAPTER_REST_URL)"


class Stakes(enum.Enum):
    """What it costs if the request was carried out and its answer lost."""

    #: Nothing is provisioned: a lost answer means "log in again" (it is safe).
    LOGIN = "login"
    #: Repeating it does no harm (LogOut, listings, registrations).
    REPEATABLE = "repeatable"
    #: It must not be sent twice blindly (provisioning): a lost answer is an outcome to reconcile.
    ONCE = "once"
    #: It reads a document and changes nothing (the first-contact tools' GETs): a lost answer is a
    #: plain :class:`TransportError`, with no advice of its own (the caller says what to check).
    READ = "read"


@dataclass(frozen=True)
class Outgoing:
    """One request, as a codec built it. ``operation`` names it in messages; ``describe`` builds what
    an :class:`OutcomeUnknown` carries (secrets redacted), only when one is raised."""

    method: str
    url: str
    operation: str
    headers: Tuple[Tuple[str, str], ...]
    body: Optional[bytes] = None
    stakes: Stakes = Stakes.ONCE
    describe: Optional[Describe] = None
    auth: Optional[Tuple[str, str]] = None
    #: Check the server's TLS certificate (only the first-contact tools look at one that fails).
    verify: bool = True

    def sent(self) -> SentRequest:
        if self.describe is not None:
            return self.describe()
        return SentRequest(self.method, self.url, self.operation)


@dataclass(frozen=True)
class NotUsable:
    """A codec's verdict on an answer it cannot read: ``detail`` says what came instead."""

    detail: str


class Codec(Protocol[T_co]):
    """Reads an answer: a value, a raised fault (a :class:`ServiceFault` or another error of our
    tree), or :class:`NotUsable`."""

    def read(self, answer: Answer) -> Union[T_co, NotUsable]: ...


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps, outermost first, each once: requests keeps the cause in ``args``
    (and urllib3's ``MaxRetryError`` in ``reason``), urllib3 in ``__cause__`` / ``__context__``."""
    seen: Set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen and len(seen) < 16:  # short; bounded all the same
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), *getattr(current, "args", ())]
        following = next((item for item in nested if isinstance(item, BaseException)), None)
        current = following or current.__cause__ or current.__context__


def connect_failure(cause: BaseException) -> str:
    """Why a connection could not be made, in words: no urllib3 internals."""
    for seen in causes(cause):
        name = type(seen).__name__
        if name in ("gaierror", "NameResolutionError"):
            return "name not found"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, ssl.SSLError) and seen.reason == "WRONG_VERSION_NUMBER":
            return "TLS asked of a server that answered in plain HTTP (an https:// URL for an http:// service?)"
        if isinstance(seen, (requests.ConnectTimeout, TimeoutError)) or name == "ConnectTimeoutError":
            return "no connection within the connect timeout"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[:100].lower()
    return "no connection"


def answer_failure(exc: BaseException) -> str:
    """Why no answer could be read once the request was on its way, in words; never the server's
    own text (a status line it sent may hold anything)."""
    for seen in causes(exc):
        if isinstance(seen, http.client.RemoteDisconnected):
            return "the connection was closed without an answer"
        if isinstance(seen, http.client.LineTooLong):
            return "an answer line over 65,536 bytes"
        if isinstance(seen, http.client.BadStatusLine):
            return "an answer that is not HTTP"
        if isinstance(seen, http.client.HTTPException) and "headers" in str(seen):
            return "an answer of more than 100 header fields"  # http.client's limit
        if isinstance(seen, ConnectionResetError):
            return "the connection was reset"
    return type(exc).__name__


def _advice(stakes: Stakes) -> str:
    """What an :class:`OutcomeUnknown` advises, for a lost answer and an unusable 5xx alike."""
    if stakes is Stakes.REPEATABLE:  # a listing, a registration, a relay: nothing to reconcile
        return "it may have been carried out; sending it again is safe (it changes nothing twice)"
    return "it may have been carried out: check its callbacks before sending it again"


class Engine:
    """Sends :class:`Outgoing` requests under the rules above, through one :class:`requests.Session`
    (pass ``session`` to share one). ``urls`` says where the URLs it sends to are set, ``limits``
    how to raise the deadline, then the answer cap, for the messages that name them."""

    def __init__(
        self,
        options: SendOptions = CLIENT_OPTIONS,
        *,
        session: Optional[requests.Session] = None,
        sleep: Callable[[float], None] = time.sleep,
        urls: str = CLIENT_URLS,
        limits: Tuple[str, str] = CLIENT_LIMITS,
    ) -> None:
        if not isinstance(options, SendOptions):
            raise InputError("options", f"{type(options).__name__} is not SendOptions", "pass SendOptions(...)")
        self.options = options
        # Ours reads the environment's proxy and CA settings once per origin; one passed in is the caller's.
        self.session = with_deadline_adapters(session if session is not None else OriginSession())
        self._sleep = sleep
        self.urls = urls
        self.limits = limits

    def call(self, request: Outgoing, codec: Codec[T]) -> T:
        """Send ``request`` and read its answer with ``codec``, or raise what the outcome means."""
        return self.judge(request, self.send(request), codec)

    def send(self, request: Outgoing) -> Answer:
        """One exchange with its complete answer, whatever its status; the sending rules applied."""
        method, url, headers = request.method, request.url, dict(request.headers)
        if wire.isEnabledFor(logging.DEBUG):
            log_exchange(method, url, headers=headers, body=request.body)
        attempt = 0
        while True:
            try:
                answer = exchange(
                    self.session, self.options, method, url, headers, request.body, request.auth, request.verify
                )
            except LimitExceeded as exc:
                raise self._lost(self._limit_text(exc), request) from None
            except requests.RequestException as exc:  # bytes of the request may have reached the server
                raise self._lost(answer_failure(exc), request) from exc
            except NotSent as failure:
                cause = failure.cause
                if isinstance(cause, requests.exceptions.InvalidHeader):  # no retry fixes it either
                    raise InputError(
                        "headers",
                        f"a header of the request to {masked_url(url)} cannot be sent (a line break, a control "
                        "character or a character outside ISO-8859-1 in it); nothing was sent",
                        HEADER_FIX,
                    ) from None
                if isinstance(cause, Unsendable):  # no retry fixes a URL
                    raise InputError(
                        "url",
                        f"{masked_url(url)} cannot be sent to ({type(cause).__name__}); nothing was sent",
                        URL_FIX,
                    ) from None
                why = connect_failure(cause)
                if attempt >= self.options.connect_retries:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    fix = "check the host name in" if why == "name not found" else "check that it runs there, and"
                    raise ConnectionFailed(
                        f"{request.operation}: {why} at {masked_url(url)} ({tries}); nothing was sent: "
                        f"{fix} {self.urls}"
                    ) from None
                # Capped exponential backoff with full jitter, so many clients do not retry in step.
                delay = random.uniform(0, min(self.options.max_backoff, self.options.backoff * 2**attempt))
                # DEBUG: a retry that works is not news, and one that does not ends in an error
                # that counts the attempts (a command line prints that one line, nothing before it).
                logger.debug(
                    "%s %s: %s (attempt %d of %d), retrying in %.2f s", method, masked_url(url, quoted=False), why,
                    attempt + 1, self.options.connect_retries + 1, delay,
                )  # fmt: skip
                self._sleep(delay)
                attempt += 1
                continue
            if wire.isEnabledFor(logging.DEBUG):
                log_exchange(method, url, headers=answer.headers, body=answer.content, status=answer.status_code)
            return answer

    def judge(self, request: Outgoing, answer: Answer, codec: Codec[T]) -> T:
        """``codec``'s reading of ``answer``, or the error an answer that is not usable means."""
        read = codec.read(answer)
        if not isinstance(read, NotUsable):
            return read
        status = answer.status_code
        kind = answer.headers.get("Content-Type", "").split(";")[0].strip()[:100] or "no content type"
        detail = f"{request.operation}: HTTP {status} {kind}, {read.detail}"
        if status == 404:  # nothing answers at that path: neither a session nor a provisioning matter
            raise TransportError(
                f"{detail}; nothing is served at {masked_url(request.url)}: check {self.urls}", http_status=status
            )
        if request.stakes is Stakes.LOGIN:
            raise TransportError(f"{detail}; logging in failed: log in again", http_status=status)
        if request.stakes is not Stakes.READ and (
            status >= 500 or (200 <= status < 300 and request.stakes is Stakes.ONCE)
        ):
            raise OutcomeUnknown(f"{detail}; {_advice(request.stakes)}", request=request.sent(), http_status=status)
        raise TransportError(detail, http_status=status)

    def _lost(self, reason: str, request: Outgoing) -> TransportError:
        url = masked_url(request.url)
        # DEBUG, as a retry is: the error raised here says all of it, and whoever catches it logs
        # or prints it (a command line printed it twice, a log line and then its error line).
        logger.debug("%s at %s: %s", request.operation, masked_url(request.url, quoted=False), reason)
        if request.stakes is Stakes.READ:
            return TransportError(f"{request.operation}: no usable answer from {url} ({reason})")
        if request.stakes is Stakes.LOGIN:
            return TransportError(
                f"{request.operation}: no usable answer from {url} ({reason}); nothing was provisioned: "
                "log in again (it is safe)"
            )
        return OutcomeUnknown(
            f"{reason} after the request was sent to {url}; {_advice(request.stakes)}", request=request.sent()
        )

    def _limit_text(self, exc: LimitExceeded) -> str:
        if exc.cap:
            return (
                f"the answer is over the {self.options.max_answer_bytes:,}-byte limit (decompressed); {self.limits[1]}"
            )
        return f"no complete answer within the {self.options.deadline:g} s deadline; {self.limits[0]}"

    def close(self) -> None:
        """Release the connections."""
        self.session.close()
