"""The callback receiver: a WSGI application that stores each callback durably before it answers.

Never acknowledges what it did not store: a 2xx (a SOAP envelope for UWS callbacks) is sent only
after the callback's group commit returned. Authenticates each callback's username and password
against the configured ones in constant time (a previous password is accepted during rotation;
without credentials it refuses to start unless told ``allow_anonymous``), refuses oversized,
compressed and non-XML/JSON bodies, and keeps malformed documents as dead letters, redacted and
capped, within a budget (a rate and a total size) that no unauthenticated flood can exceed.

A callback whose values the store cannot hold is kept as a dead letter and acknowledged (see
:mod:`uws_adapter.store.sqlite_writes`). Handler runs survive store errors: the runner logs, waits and
goes on; a handler that raises :class:`~uws_adapter.errors.HandlerGaveUp` is not retried.

Besides callbacks it answers, without credentials, ``GET /healthz`` (the process is alive; ``/``
and ``/health`` too), ``GET /readyz`` (the store answers and takes a write: 200 ``ok``, else 503
``not ready: store``; nothing else is said) and ``GET /metrics`` (Prometheus text, with the
``metrics`` extra; see :mod:`uws_adapter.metrics`). Counters are bumped where each decision is made.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from uws_adapter import metrics
from uws_adapter.callbacks.rest_json import read_rest_callback, rest_callback_object, rest_credentials
from uws_adapter.callbacks.uws_xml import callback_credentials, callback_element, read_callback
from uws_adapter.edge import Answer, BodyRules, StartResponse, raw_target, screen, target_refusal
from uws_adapter.errors import CallbackParseError, InputError, StoreError, install_hint
from uws_adapter.logs import Throttled
from uws_adapter.model.callbacks import OPEN_TO_ANYONE, check_credentials
from uws_adapter.model.frozen import made
from uws_adapter.model.text import decoded_text
from uws_adapter.receiver.handlers import (
    DEFAULT_HANDLER_LEASE,
    DEFAULT_HANDLER_WORKERS,
    Handler,
    HandlerRunner,
    check_lease,
)
from uws_adapter.redaction import redact
from uws_adapter.settings.source import number
from uws_adapter.store.interfaces import (
    DEAD_LETTER_MAX,
    POISONED,
    CallbackWrite,
    DeadLetterWrite,
    ReceiverStore,
    Write,
)
from uws_adapter.wire import CONTENT_TYPE, NS_SOAP_ENV, NS_V2
from uws_adapter.xmlsafe import MAX_BYTES

_log = logging.getLogger("uws_adapter.receiver")

_XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")
#: The paths answered to GET (and HEAD) without credentials.
_PROBES = frozenset({"/", "/health", "/healthz", "/readyz", "/metrics"})
_SOAP_ACK = (
    f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body><CallbackResponse xmlns="{NS_V2}"/></s:Body></s:Envelope>'
).encode()


@dataclass(frozen=True)
class Intake:
    """A body accepted for storing: the store ``write``, the answer once it is committed, and the
    answer if the commit failed (nothing is acknowledged that is not stored)."""

    write: Write
    stored: Answer
    unstored: Answer
    is_callback: bool = False


@dataclass(frozen=True)
class Probe:
    """A GET whose answer reads the store (``/readyz``, ``/metrics``): ``answer`` is called off the
    event loop by the ASGI server, in the request's thread by the WSGI one."""

    answer: Callable[[], Answer]


_JSON_ACK = Answer(200, "application/json", b'{"stored":true}')
_XML_ACK = Answer(200, CONTENT_TYPE, _SOAP_ACK)
_NOT_STORED = Answer(503, "text/plain", b"not stored; send it again\n")
#: Verdicts of :meth:`Receiver.screen` kept (see ``Receiver._screened``).
_SCREENED_KEPT = 256
_MEDIA_HINT = "send text/xml (UWS) or application/json (REST)"
_ALIVE = Answer(200, "text/plain", b"ok\n")
_READY = Answer(200, "text/plain", b"ok\n")
_NOT_READY = Answer(503, "text/plain", b"not ready: store\n")
_NO_METRICS = Answer(404, "text/plain", f"metrics need prometheus_client: {install_hint('metrics')}\n".encode())


class DeadLetterBudget:
    """How many refused documents may be kept: a token bucket of ``burst`` letters refilled at
    ``per_second``, and ``max_total`` bytes held in the store at most. What is not kept is counted
    in :attr:`dropped` and logged (one line per ``log_every`` seconds at most)."""

    def __init__(
        self,
        *,
        per_second: float = 2.0,
        burst: int = 100,
        max_total: Optional[int] = 256 * 1024 * 1024,
        log_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second < 0 or burst < 0 or (max_total is not None and max_total < 0):
            raise InputError("dead letter budget", "rates and sizes cannot be negative", "use max_total=0 to keep none")
        self.per_second = per_second
        self.burst = burst
        self.max_total = max_total
        self.log_every = log_every
        self.dropped = 0
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()
        self._log = Throttled(
            _log, "refused documents not kept as dead letters (%s, %d in all): %d", every=log_every, clock=clock
        )

    def take(self) -> bool:
        """True when one more dead letter may be kept now."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.per_second)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
        self.drop("over the rate")
        return False

    def drop(self, why: str) -> None:
        metrics.dead_letter(kept=False)
        with self._lock:
            self.dropped += 1
            dropped = self.dropped
        self._log.note(why, dropped)


def _same(given: Optional[str], expected: str) -> bool:
    # surrogatepass: a lone surrogate from a JSON escape is a wrong password, not a crash.
    return hmac.compare_digest((given or "").encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def check_login_text(username: Optional[str], password: Optional[str], previous_password: Optional[str]) -> None:
    """The :class:`InputError` for a callback credential that is no text (a byte the locale could not
    decode: see :func:`~uws_adapter.model.text.decoded_text`). The receiver checks it when it is
    built, and the command before a uvicorn receiver says it listens: its workers build theirs, and
    each died on it with a traceback, started again by the supervisor for ever."""
    for field, value in (("username", username), ("password", password), ("previous_password", previous_password)):
        if isinstance(value, str):
            decoded_text(field, value)


class Receiver:
    """WSGI application: ``Receiver(Store("callbacks.db"), username=..., password=...)``.

    ``handlers`` are called with each new event after it is committed, at least once, in
    background threads (``handler_workers`` per handler), retried with backoff when they raise;
    they never delay acknowledgements. Each run is claimed for ``handler_lease`` seconds as it
    starts, so that instances sharing the store never run it twice at once; a run whose claimer
    died is taken again when its lease is out (see :mod:`uws_adapter.receiver.handlers`).
    """

    def __init__(
        self,
        store: ReceiverStore,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        previous_password: Optional[str] = None,
        max_body: int = MAX_BYTES,
        handlers: Optional[Dict[str, Handler]] = None,
        handler_backoff: float = 1.0,
        handler_lease: float = DEFAULT_HANDLER_LEASE,
        handler_workers: int = DEFAULT_HANDLER_WORKERS,
        allow_anonymous: bool = False,
        dead_letters: Optional[DeadLetterBudget] = None,
        repair: bool = False,
    ) -> None:
        # Half a login (a username and no password) let in every callback that sent that name and no password.
        check_credentials(
            "username",
            username,
            password,
            "pass username= and password= (the ones registered with the carrier), or allow_anonymous=True "
            "on a closed network",
            refuse_none=None if allow_anonymous else OPEN_TO_ANYONE,
        )
        check_login_text(username, password, previous_password)
        self.store = store
        self.username = username
        self.passwords = [p for p in (password, previous_password) if p]
        self.allow_anonymous = allow_anonymous and not username and not password
        self.dead_letters = dead_letters or DeadLetterBudget()
        #: Mend the </Name/> end-tag defect of the carrier's documented example (opt-in, counted).
        self.repair = repair
        self.repaired = 0
        self.max_body = max_body
        #: What a callback POST may carry (the one request screen of every service).
        self.rules = BodyRules(max_body, (*_XML_TYPES, "application/json"), _MEDIA_HINT)
        # The callback POSTs let through by screen, by their request line and headers: a verdict that
        # depends on those alone (and on the rules, fixed here), for the few shapes one sender's
        # callbacks take (their lengths vary a little). Bounded: emptied when full.
        self._screened: Dict[
            Tuple[str, str, Optional[str], Optional[str], Optional[str], Optional[str]], Tuple[int, str]
        ] = {}
        self.handlers = dict(handlers or {})
        self._handler_names = tuple(self.handlers)
        # Waited for by the handler threads: NaN made them spin, past TIMEOUT_MAX a raw OverflowError ended them.
        self.handler_backoff = number(0, 86400, open_low=True)(handler_backoff, "handler_backoff")
        #: How long a claimed handler run is the claimer's: a run must end within it.
        self.handler_lease = check_lease(handler_lease, self.handlers)
        self._runner: Optional[HandlerRunner] = None
        if self.handlers:
            self._runner = HandlerRunner(
                store, self.handlers, backoff=handler_backoff, lease=handler_lease, workers=handler_workers
            )

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()

    def wake_handlers(self) -> None:
        """Look for due handler runs now (new events written to the store by another path)."""
        if self._runner is not None:
            self._runner.wake()

    # The protocol, shared by the WSGI application and the asyncio one (receiver_async) -----------

    def screen(
        self, method: str, path: str, length: Optional[str], encoding: Optional[str], content_type: Optional[str],
        *, coding: Optional[str] = None,
    ) -> Union[Answer, Probe, Tuple[int, str]]:  # fmt: skip
        """Everything decided before the body is read: an answer to send at once, a :class:`Probe`
        to answer off the loop, or (the body's length, its media type; -1 for a chunked body, read
        within :attr:`max_body`; ``coding``: the Transfer-Encoding, see :func:`.edge.screen`). ``path``
        is the request target as sent (see :func:`raw_target`)."""
        key = (method, path, length, encoding, content_type, coding)
        known = self._screened.get(key)
        if known is not None:  # let through before: counted as screen counts it below
            metrics.callback_received()
            return known
        refusal = target_refusal(path)
        if refusal is not None:
            return Answer.text(400, refusal)
        path = path.partition("?")[0]
        probe = path in _PROBES
        # HEAD as GET (the servers send no body): load balancers check health with either, and
        # HEAD was answered 405 with "Allow: POST", so such a check took the receiver for down.
        if probe and method in ("GET", "HEAD"):
            if path == "/readyz":
                return Probe(self.readiness)
            if path == "/metrics":
                return Probe(self.scrape_metrics)
            return _ALIVE
        if method != "POST":  # a callback may be POSTed to any path, a probe's too
            return Answer.text(405, "POST callbacks here", ("Allow", "GET, HEAD, POST" if probe else "POST"))
        metrics.callback_received()
        screened = screen(method, length, encoding, content_type, self.rules, coding=coding)
        if isinstance(screened, Answer):
            return self.refuse(screened)
        if len(self._screened) >= _SCREENED_KEPT:
            self._screened.clear()
        self._screened[key] = screened
        return screened

    @staticmethod
    def refuse(answer: Answer) -> Answer:
        """``answer`` to a callback POST, counted by its status."""
        metrics.callback_refused(answer.status)
        return answer

    def readiness(self) -> Answer:
        """``/readyz``: 200 while the store takes writes, else 503; says nothing more."""
        try:
            ready = self.store.ready()
        except Exception:  # a backend that raises instead of answering False
            ready = False
        return _READY if ready else _NOT_READY

    def scrape_metrics(self) -> Answer:
        """``/metrics``: the Prometheus text exposition (404 without prometheus_client)."""
        text = metrics.scrape(metrics.StoreCollector(self._backlog, self.store.clock, self._dead_letter_totals))
        return _NO_METRICS if text is None else Answer(200, metrics.CONTENT_TYPE, text)

    def _backlog(self) -> Dict[str, Tuple[int, Optional[float]]]:
        try:
            return self.store.handler_backlog()
        except Exception as exc:  # the counters are still worth serving without the queue gauges
            _log.warning("handler queue unreadable for /metrics: %s", exc)
            return {}

    def _dead_letter_totals(self) -> Optional[Tuple[int, int]]:
        read = getattr(self.store, "dead_letter_totals", None)  # a store without the operator's view
        if read is None:
            return None
        try:
            totals = read()
        except Exception as exc:
            _log.warning("dead letter totals unreadable for /metrics: %s", exc)
            return None
        return int(totals.bytes), int(totals.rotated)

    def intake(self, body: bytes, media_type: str) -> Union[Answer, Intake]:
        """What to store for a body of ``media_type`` (as :meth:`screen` gave it), and what to
        answer once it is (or is not) stored."""
        is_xml = media_type in _XML_TYPES
        try:
            # Bounded (MAX_CALLBACK_NODES, counted in C) and authenticated before the rest is read:
            # what an unauthenticated body costs is close to its C parse.
            if is_xml:
                request, mended = callback_element(body, repair=self.repair)
                username, password, request_id = callback_credentials(request)
            else:
                document = rest_callback_object(body)
                username, password, request_id = rest_credentials(document)
            if not self._authentic(username, password):
                _log.info("refused callback %r: wrong username or password", (request_id or "")[:80])
                return self.refuse(Answer.text(401, "wrong callback username or password"))
            callback = read_callback(request) if is_xml else read_rest_callback(document)
            if is_xml and mended:
                self.repaired += 1
                _log.info("mended a </Name/> end tag in callback %r (repair is on)", callback.request_id[:80])
        except CallbackParseError as exc:
            reason = " ".join(str(exc).split())[:300]
            refused = Answer.text(400, reason)
            _log.info("refused %s body of %d bytes: %s", media_type, len(body), reason)
            metrics.callback_refused(400)
            if not self.dead_letters.take():
                return refused
            kept = redact(body, self.passwords, limit=DEAD_LETTER_MAX)
            return Intake(
                DeadLetterWrite(kept, media_type, reason, max_total=self.dead_letters.max_total),
                refused,
                # Kept or not, the document was refused: the answer says why, never "stored".
                refused,
            )
        # Both made without their frozen __init__, a call per field (see model.frozen): every field given.
        write = made(
            CallbackWrite,
            {"callback": callback, "handlers": self._handler_names, "document": body, "media_type": media_type},
        )
        return made(
            Intake,
            {"write": write, "stored": _XML_ACK if is_xml else _JSON_ACK, "unstored": _NOT_STORED, "is_callback": True},
        )

    def committed(self, intake: Intake, result: Any) -> None:
        """Call after ``intake.write`` committed with ``result``: wakes the handlers for a new event,
        counts a dead letter the store had no room for."""
        if intake.is_callback:
            if result[0] == POISONED:  # its values could not be stored: kept as a dead letter instead
                metrics.dead_letter(kept=True)
            else:
                metrics.callback_committed(bool(result[1]))
            if result[1]:
                self.wake_handlers()
        elif result == 0:
            self.dead_letters.drop(f"larger than the dead letters' cap of {self.dead_letters.max_total} bytes")
        else:
            metrics.dead_letter(kept=True)

    def committed_group(self, committed: Iterable[Tuple[Intake, Any]]) -> None:
        """:meth:`committed` for the writes of one group at once (the ASGI receiver's): the same
        counts, each counter bumped once for the group; the handlers woken once."""
        new = duplicate = 0
        wake = False
        for intake, result in committed:
            if not intake.is_callback or result[0] == POISONED:
                self.committed(intake, result)  # dead letters: rare, and counted as ever
            elif result[1]:
                new += 1
                wake = True
            else:
                duplicate += 1
        metrics.callbacks_committed(new, duplicate)
        if wake:
            self.wake_handlers()

    def not_stored(self, intake: Intake, exc: BaseException) -> None:
        """Call when ``intake.write`` could not be committed (it is answered ``intake.unstored``)."""
        what = "callback" if intake.is_callback else "dead letter"
        _log.warning("%s not stored (answered %d): %s: %s", what, intake.unstored.status, type(exc).__name__, exc)

    # WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        screened = self.screen(
            environ.get("REQUEST_METHOD", "GET"), raw_target(environ), environ.get("CONTENT_LENGTH"),
            environ.get("HTTP_CONTENT_ENCODING"), environ.get("CONTENT_TYPE"),
        )  # fmt: skip
        if isinstance(screened, Answer):
            return screened.send(start_response, environ)
        if isinstance(screened, Probe):
            return screened.answer().send(start_response, environ)
        length, media_type = screened
        decided = self.intake(environ["wsgi.input"].read(length), media_type)
        if isinstance(decided, Answer):
            return decided.send(start_response, environ)
        try:
            result = self.store.apply(decided.write)
        except StoreError as exc:
            self.not_stored(decided, exc)
            if decided.is_callback:
                metrics.callback_refused(decided.unstored.status)
            return decided.unstored.send(start_response, environ)
        self.committed(decided, result)
        return decided.stored.send(start_response, environ)

    def _authentic(self, username: Optional[str], password: Optional[str]) -> bool:
        if self.allow_anonymous:
            return True
        user_ok = _same(username, self.username or "")
        # Compare against every accepted password, always, so that timing says nothing.
        password_ok = [_same(password, p) for p in self.passwords] or [_same(password, "")]
        return user_ok and any(password_ok)


def server_options(receiver: Receiver, **options: Any) -> Dict[str, Any]:
    """waitress options for serving ``receiver``: waitress reads a whole body before calling the
    application, so the size cap must be its own as well, to answer 413 before reading."""
    return {"max_request_body_size": receiver.max_body, "ident": "uws-adapter", **options}
