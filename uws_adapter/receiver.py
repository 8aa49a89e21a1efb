"""The callback receiver: a WSGI application that stores each callback durably before it answers.

Never acknowledges what it did not store: a 2xx (a SOAP envelope for UWS callbacks) is sent only
after the callback's group commit returned. Authenticates each callback's username and password
against the configured ones in constant time (a previous password is accepted during rotation),
refuses oversized, compressed and non-XML/JSON bodies, and keeps malformed documents as dead
letters, redacted and capped, so that nothing is lost.
"""

from __future__ import annotations

import hmac
import re
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from .callback_json import parse_rest_callback
from .callback_xml import parse_callback
from .callbacks import REDACTED, CallbackRequest
from .errors import CallbackParseError
from .store import Store, StoredEvent, StoreError, Work
from .store_writes import callback_work, dead_letter_work
from .wire import NS_SOAP_ENV, NS_V2
from .xmlsafe import MAX_BYTES

Handler = Callable[[StoredEvent], None]
StartResponse = Callable[[str, List[Tuple[str, str]]], Any]

DEAD_LETTER_MAX = 64 * 1024
_XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")
_SOAP_ACK = (
    f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body><CallbackResponse xmlns="{NS_V2}"/></s:Body></s:Envelope>'
).encode()
# Passwords inside refused documents: <Password>...</Password> in any prefix, "password": "..." in JSON.
_XML_PASSWORD = re.compile(rb"(<(?:[\w.-]+:)?Password(?:\s[^>]*)?>)(.*?)(</(?:[\w.-]+:)?Password\s*>)", re.S | re.I)
_JSON_PASSWORD = re.compile(rb'("password"\s*:\s*")((?:[^"\\]|\\.)*)(")', re.I)


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
    """A body accepted for storing: the store ``work``, the answer once it is committed, and the
    answer if the commit failed (nothing is acknowledged that is not stored)."""

    work: Work
    stored: Answer
    unstored: Answer
    is_callback: bool = False


_JSON_ACK = Answer(200, "application/json", b'{"stored":true}')


def redact(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """``body`` with password elements and fields, and any known secret, replaced by ***."""
    mask = REDACTED.encode()
    body = _XML_PASSWORD.sub(lambda m: m.group(1) + mask + m.group(3), body)
    body = _JSON_PASSWORD.sub(lambda m: m.group(1) + mask + m.group(3), body)
    for secret in secrets:
        if secret:
            body = body.replace(secret.encode("utf-8"), mask)
    return body


def _same(given: Optional[str], expected: str) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8"), expected.encode("utf-8"))


class Receiver:
    """WSGI application: ``Receiver(Store("callbacks.db"), username=..., password=...)``.

    ``handlers`` are called with each new event after it is committed, at least once, in a
    background thread, retried with backoff when they raise; they never delay acknowledgements.
    """

    def __init__(
        self,
        store: Store,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        previous_password: Optional[str] = None,
        max_body: int = MAX_BYTES,
        handlers: Optional[Dict[str, Handler]] = None,
        handler_backoff: float = 1.0,
    ) -> None:
        self.store = store
        self.username = username
        self.passwords = [p for p in (password, previous_password) if p]
        self.max_body = max_body
        self.handlers = dict(handlers or {})
        self.handler_backoff = handler_backoff
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
    ) -> Union[Answer, Tuple[int, str]]:
        """Everything decided before the body is read: an answer to send at once, or (the body's
        length, its media type)."""
        if method == "GET" and path in ("/", "/health"):
            return Answer(200, "text/plain", b"ok\n")
        if method != "POST":
            return Answer(405, "text/plain", b"POST callbacks here\n", (("Allow", "POST"),))
        try:
            size = int(length or "")
        except ValueError:
            return Answer(411, "text/plain", b"a Content-Length is required\n")
        if size > self.max_body:
            return Answer(413, "text/plain", f"over the {self.max_body}-byte limit\n".encode())
        if (encoding or "identity").strip().lower() != "identity":
            return Answer(415, "text/plain", b"compressed bodies are refused; send identity\n")
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind not in _XML_TYPES and kind != "application/json":
            return Answer(415, "text/plain", b"send text/xml (UWS) or application/json (REST)\n")
        return size, kind

    def intake(self, body: bytes, media_type: str) -> Union[Answer, Intake]:
        """What to store for a body of ``media_type`` (as :meth:`screen` gave it), and what to
        answer once it is (or is not) stored."""
        is_xml = media_type in _XML_TYPES
        try:
            callback = parse_callback(body) if is_xml else parse_rest_callback(body)
        except CallbackParseError as exc:
            reason = " ".join(str(exc).split())[:300]
            kept = redact(body[:DEAD_LETTER_MAX], self.passwords)
            return Intake(
                dead_letter_work(kept, media_type, reason),
                Answer(400, "text/plain", (reason + "\n").encode()),
                Answer(503, "text/plain", b"could not keep the refused document\n"),
            )
        if not self._authentic(callback):
            return Answer(401, "text/plain", b"wrong callback username or password\n")
        stored = Answer(200, "text/xml; charset=utf-8", _SOAP_ACK) if is_xml else _JSON_ACK
        return Intake(
            callback_work(callback, tuple(self.handlers)),
            stored,
            Answer(503, "text/plain", b"not stored; send it again\n"),
            is_callback=True,
        )

    def committed(self, intake: Intake, result: Any) -> None:
        """Call after ``intake.work`` committed with ``result``: wakes the handlers for a new event."""
        if intake.is_callback and self.handlers and result[1]:
            self._wake.set()

    # WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        screened = self.screen(
            environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"), environ.get("CONTENT_LENGTH"),
            environ.get("HTTP_CONTENT_ENCODING"), environ.get("CONTENT_TYPE"),
        )  # fmt: skip
        if isinstance(screened, Answer):
            return screened.send(start_response)
        length, media_type = screened
        decided = self.intake(environ["wsgi.input"].read(length), media_type)
        if isinstance(decided, Answer):
            return decided.send(start_response)
        try:
            result = self.store.write(decided.work)
        except StoreError:
            return decided.unstored.send(start_response)
        self.committed(decided, result)
        return decided.stored.send(start_response)

    def _authentic(self, callback: CallbackRequest) -> bool:
        if self.username is None and not self.passwords:
            return True
        user_ok = _same(callback.username, self.username or "")
        # Compare against every accepted password, always, so that timing says nothing.
        password_ok = [_same(callback.password, p) for p in self.passwords] or [_same(callback.password, "")]
        return user_ok and any(password_ok)

    # Handlers --------------------------------------------------------------------------------------

    def _run_handlers(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=self.handler_backoff)
            self._wake.clear()
            for event_id, name, attempts in self._due():
                if self._stopping.is_set():
                    return
                self._run_one(event_id, name, attempts)

    def _due(self) -> List[Tuple[int, str, int]]:
        return self.store.due_handlers()

    def _run_one(self, event_id: int, name: str, attempts: int) -> None:
        handler = self.handlers.get(name)
        if handler is None:
            return  # registered in an earlier run; kept until a handler of that name is back
        event = self.store.event(event_id)
        try:
            if event is not None:
                handler(replace(event, handler_attempts=attempts))
        except Exception as exc:  # a handler's failure is retried, never lost
            delay = min(300.0, self.handler_backoff * 2**attempts)
            self.store.handler_failed(event_id, name, f"{type(exc).__name__}: {exc}", delay)
            return
        self.store.handler_done(event_id, name)


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
