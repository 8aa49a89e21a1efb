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
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from uws_adapter import metrics
from uws_adapter.callbacks.rest_json import parse_rest_callback
from uws_adapter.callbacks.uws_xml import parse_callback_mended
from uws_adapter.errors import CallbackParseError, HandlerGaveUp, InputError, StoreError, install_hint
from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.redaction import redact
from uws_adapter.store.interfaces import (
    DEAD_LETTER_MAX,
    POISONED,
    CallbackWrite,
    DeadLetterWrite,
    ReceiverStore,
    StoredEvent,
    Write,
)
from uws_adapter.wire import NS_SOAP_ENV, NS_V2
from uws_adapter.xmlsafe import MAX_BYTES

Handler = Callable[[StoredEvent], None]
StartResponse = Callable[[str, List[Tuple[str, str]]], Any]

_log = logging.getLogger("uws_adapter.receiver")

_XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")
_SOAP_ACK = (
    f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body><CallbackResponse xmlns="{NS_V2}"/></s:Body></s:Envelope>'
).encode()


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: Tuple[Tuple[str, str], ...] = ()

    def send(self, start_response: StartResponse) -> List[bytes]:
        return reply(start_response, self.status, self.content_type, self.body, self.headers)


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
        self._logged_at: Optional[float] = None
        self._dropped_since_log = 0
        self._lock = threading.Lock()

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
            self._dropped_since_log += 1
            now = self._clock()
            if self._logged_at is not None and now - self._logged_at < self.log_every:
                return
            count, self._dropped_since_log, self._logged_at = self._dropped_since_log, 0, now
        _log.warning("refused documents not kept as dead letters (%s): %d, %d in all", why, count, self.dropped)


def _same(given: Optional[str], expected: str) -> bool:
    # surrogatepass: a lone surrogate from a JSON escape is a wrong password, not a crash.
    return hmac.compare_digest((given or "").encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


class Receiver:
    """WSGI application: ``Receiver(Store("callbacks.db"), username=..., password=...)``.

    ``handlers`` are called with each new event after it is committed, at least once, in a
    background thread, retried with backoff when they raise; they never delay acknowledgements.
    Each run is claimed for ``handler_lease`` seconds first, so that instances sharing the store
    never run it twice at once; a run whose claimer died is taken again when its lease is out.
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
        handler_lease: float = 300.0,
        handler_batch: int = 20,
        allow_anonymous: bool = False,
        dead_letters: Optional[DeadLetterBudget] = None,
        repair: bool = False,
    ) -> None:
        if not username and not password and not allow_anonymous:
            raise InputError(
                "callback credentials",
                "a receiver without a username and password would store callbacks from anyone",
                "give the ones registered with the carrier (--username/--password, UWS_CALLBACK_USERNAME/"
                "UWS_CALLBACK_PASSWORD), or allow_anonymous=True (--allow-anonymous) for a closed network",
            )
        self.store = store
        self.username = username
        self.passwords = [p for p in (password, previous_password) if p]
        self.allow_anonymous = allow_anonymous and not username and not password
        self.dead_letters = dead_letters or DeadLetterBudget()
        #: Mend the </Name/> end-tag defect of the carrier's documented example (opt-in, counted).
        self.repair = repair
        self.repaired = 0
        self.max_body = max_body
        self.handlers = dict(handlers or {})
        self.handler_backoff = handler_backoff
        #: How long a claimed handler run is the claimer's: a run must end within it.
        self.handler_lease = handler_lease
        #: Runs claimed at a time: small, so that instances sharing a store share the work.
        self.handler_batch = max(1, handler_batch)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._runner: Optional[threading.Thread] = None
        if self.handlers:
            self._runner = threading.Thread(target=self._run_handlers, daemon=True, name="uws-handlers")
            self._runner.start()

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._runner is not None:
            self._runner.join(timeout=5)

    # The protocol, shared by the WSGI application and the asyncio one (receiver_async) -----------

    def screen(
        self, method: str, path: str, length: Optional[str], encoding: Optional[str], content_type: Optional[str]
    ) -> Union[Answer, Probe, Tuple[int, str]]:
        """Everything decided before the body is read: an answer to send at once, a :class:`Probe`
        to answer off the loop, or (the body's length, its media type)."""
        if method == "GET":
            if path in ("/", "/health", "/healthz"):
                return _ALIVE
            if path == "/readyz":
                return Probe(self.readiness)
            if path == "/metrics":
                return Probe(self.scrape_metrics)
        if method != "POST":
            return Answer(405, "text/plain", b"POST callbacks here\n", (("Allow", "POST"),))
        metrics.callback_received()
        try:
            size = int(length or "")
        except ValueError:
            return self.refuse(Answer(411, "text/plain", b"a Content-Length is required\n"))
        if size > self.max_body:
            return self.refuse(Answer(413, "text/plain", f"over the {self.max_body}-byte limit\n".encode()))
        if (encoding or "identity").strip().lower() != "identity":
            return self.refuse(Answer(415, "text/plain", b"compressed bodies are refused; send identity\n"))
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind not in _XML_TYPES and kind != "application/json":
            return self.refuse(Answer(415, "text/plain", b"send text/xml (UWS) or application/json (REST)\n"))
        return size, kind

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
            if is_xml:
                callback, mended = parse_callback_mended(body, repair=self.repair)
                if mended:
                    self.repaired += 1
                    _log.info("mended a </Name/> end tag in callback %r (repair is on)", callback.request_id[:80])
            else:
                callback = parse_rest_callback(body)
        except CallbackParseError as exc:
            reason = " ".join(str(exc).split())[:300]
            refused = Answer(400, "text/plain", (reason + "\n").encode("utf-8", "replace"))
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
        if not self._authentic(callback):
            _log.info("refused callback %r: wrong username or password", callback.request_id[:80])
            return self.refuse(Answer(401, "text/plain", b"wrong callback username or password\n"))
        stored = Answer(200, "text/xml; charset=utf-8", _SOAP_ACK) if is_xml else _JSON_ACK
        return Intake(
            CallbackWrite(callback, tuple(self.handlers), document=body, media_type=media_type),
            stored,
            Answer(503, "text/plain", b"not stored; send it again\n"),
            is_callback=True,
        )

    def committed(self, intake: Intake, result: Any) -> None:
        """Call after ``intake.write`` committed with ``result``: wakes the handlers for a new event,
        counts a dead letter the store had no room for."""
        if intake.is_callback:
            if result[0] == POISONED:  # its values could not be stored: kept as a dead letter instead
                metrics.dead_letter(kept=True)
            else:
                metrics.callback_committed(bool(result[1]))
            if self.handlers and result[1]:
                self._wake.set()
        elif result == 0:
            self.dead_letters.drop(f"larger than the dead letters' cap of {self.dead_letters.max_total} bytes")
        else:
            metrics.dead_letter(kept=True)

    def not_stored(self, intake: Intake, exc: BaseException) -> None:
        """Call when ``intake.write`` could not be committed (it is answered ``intake.unstored``)."""
        what = "callback" if intake.is_callback else "dead letter"
        _log.warning("%s not stored (answered %d): %s: %s", what, intake.unstored.status, type(exc).__name__, exc)

    # WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        screened = self.screen(
            environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"), environ.get("CONTENT_LENGTH"),
            environ.get("HTTP_CONTENT_ENCODING"), environ.get("CONTENT_TYPE"),
        )  # fmt: skip
        if isinstance(screened, Answer):
            return screened.send(start_response)
        if isinstance(screened, Probe):
            return screened.answer().send(start_response)
        length, media_type = screened
        decided = self.intake(environ["wsgi.input"].read(length), media_type)
        if isinstance(decided, Answer):
            return decided.send(start_response)
        try:
            result = self.store.apply(decided.write)
        except StoreError as exc:
            self.not_stored(decided, exc)
            if decided.is_callback:
                metrics.callback_refused(decided.unstored.status)
            return decided.unstored.send(start_response)
        self.committed(decided, result)
        return decided.stored.send(start_response)

    def _authentic(self, callback: CallbackRequest) -> bool:
        if self.allow_anonymous:
            return True
        user_ok = _same(callback.username, self.username or "")
        # Compare against every accepted password, always, so that timing says nothing.
        password_ok = [_same(callback.password, p) for p in self.passwords] or [_same(callback.password, "")]
        return user_ok and any(password_ok)

    # Handlers --------------------------------------------------------------------------------------

    def _run_handlers(self) -> None:
        names = tuple(self.handlers)
        more = False
        while not self._stopping.is_set():
            if not more:  # a full batch was claimed: there may be more due at once
                self._wake.wait(timeout=self.handler_backoff)
            self._wake.clear()
            try:
                # Claimed atomically (leased): a run is never taken by two runners at once, in this
                # process or in another instance sharing the store.
                due = self.store.claim_handlers(self.handler_batch, lease=self.handler_lease, names=names)
            except Exception as exc:  # the store is down for a while: wait and look again
                _log.warning("handler queue unreadable, retrying in %s s: %s", self.handler_backoff, exc)
                more = False
                continue
            more = len(due) >= self.handler_batch
            for position, (event_id, name, attempts) in enumerate(due):
                if self._stopping.is_set():
                    self._release([(e, n) for e, n, _ in due[position:]])
                    return
                try:
                    self._run_one(event_id, name, attempts)
                except Exception as exc:  # a store error around the run: it is run again when its lease is out
                    _log.warning("handler %s on event %d: store error, will retry: %s", name, event_id, exc)

    def _release(self, runs: List[Tuple[int, str]]) -> None:
        """Give back what was claimed and not run, so that the next runner (a restart, or another
        instance) need not wait for the lease to run out."""
        try:
            self.store.release_handlers(runs)
        except Exception as exc:  # they come back when their lease is out
            _log.warning("could not give back %d claimed handler runs: %s", len(runs), exc)

    def _run_one(self, event_id: int, name: str, attempts: int) -> None:
        handler = self.handlers.get(name)
        if handler is None:
            return  # registered in an earlier run; kept until a handler of that name is back
        event = self.store.event(event_id)
        try:
            if event is not None:
                handler(replace(event, handler_attempts=attempts))
        except HandlerGaveUp as exc:
            metrics.handler_run(name, "gave_up", attempts)
            reason = exc.reason
            _log.error("handler %s gave up on event %d (request %s): %s", name, event_id, _request_of(event), reason)
            self._until_stored(lambda: self.store.handler_gave_up(event_id, name, reason))
            return
        except Exception as exc:  # a handler's failure is retried, never lost
            metrics.handler_run(name, "failed", attempts)
            delay = min(300.0, self.handler_backoff * 2**attempts)
            _log.warning("handler %s failed on event %d (request %s, attempt %d), retry in %.0f s: %s: %s",
                         name, event_id, _request_of(event), attempts + 1, delay, type(exc).__name__, exc)  # fmt: skip
            self.store.handler_failed(event_id, name, f"{type(exc).__name__}: {exc}", delay)
            return
        # The handler ran: recording that must not be given up on, or it would run again.
        metrics.handler_run(name, "done", attempts)
        self._until_stored(lambda: self.store.handler_done(event_id, name))
        _log.debug("handler %s done on event %d (request %s, attempt %d)", name, event_id, _request_of(event),
                   attempts + 1)  # fmt: skip

    def _until_stored(self, write: Callable[[], None]) -> None:
        while True:
            try:
                write()
                return
            except StoreError as exc:
                _log.warning("could not record a handler run, retrying in %s s: %s", self.handler_backoff, exc)
                if self._stopping.wait(self.handler_backoff):
                    return


def _request_of(event: Optional[StoredEvent]) -> str:
    return repr(event.callback.request_id[:80]) if event is not None else "unknown"


def server_options(receiver: Receiver, **options: Any) -> Dict[str, Any]:
    """waitress options for serving ``receiver``: waitress reads a whole body before calling the
    application, so the size cap must be its own as well, to answer 413 before reading."""
    return {"max_request_body_size": receiver.max_body, "ident": "uws-adapter", **options}


def reply(
    start_response: StartResponse,
    status: int,
    content_type: str,
    body: bytes,
    extra: Tuple[Tuple[str, str], ...] = (),
) -> List[bytes]:
    reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
               411: "Length Required", 500: "Internal Server Error",
               413: "Payload Too Large", 415: "Unsupported Media Type", 503: "Service Unavailable"}  # fmt: skip
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    if status == 413:
        headers.append(("Connection", "close"))  # the unread body must not be taken for the next request
    start_response(f"{status} {reasons[status]}", headers)
    return [body]
