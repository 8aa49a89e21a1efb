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
from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .callback_json import parse_rest_callback
from .callback_xml import parse_callback
from .callbacks import REDACTED, CallbackRequest
from .errors import CallbackParseError
from .store import Store, StoredEvent, StoreError
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

    # WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET" and environ.get("PATH_INFO", "/") in ("/", "/health"):
            return reply(start_response, 200, "text/plain", b"ok\n")
        if method != "POST":
            return reply(start_response, 405, "text/plain", b"POST callbacks here\n", (("Allow", "POST"),))
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return reply(start_response, 411, "text/plain", b"a Content-Length is required\n")
        if length > self.max_body:
            return reply(start_response, 413, "text/plain", f"over the {self.max_body}-byte limit\n".encode())
        encoding = (environ.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower()
        if encoding != "identity":
            return reply(start_response, 415, "text/plain", b"compressed bodies are refused; send identity\n")
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        is_xml = content_type in _XML_TYPES
        if not is_xml and content_type != "application/json":
            return reply(start_response, 415, "text/plain", b"send text/xml (UWS) or application/json (REST)\n")
        body = environ["wsgi.input"].read(length)
        try:
            callback = parse_callback(body) if is_xml else parse_rest_callback(body)
        except CallbackParseError as exc:
            reason = " ".join(str(exc).split())[:300]
            try:
                self.store.add_dead_letter(redact(body[:DEAD_LETTER_MAX], self.passwords), content_type, reason)
            except StoreError:
                return reply(start_response, 503, "text/plain", b"could not keep the refused document\n")
            return reply(start_response, 400, "text/plain", (reason + "\n").encode())
        if not self._authentic(callback):
            return reply(start_response, 401, "text/plain", b"wrong callback username or password\n")
        try:
            _, new = self.store.add_callback(callback, tuple(self.handlers))
        except StoreError:
            return reply(start_response, 503, "text/plain", b"not stored; send it again\n")
        if new and self.handlers:
            self._wake.set()
        if is_xml:
            return reply(start_response, 200, "text/xml; charset=utf-8", _SOAP_ACK)
        return reply(start_response, 200, "application/json", b'{"stored":true}')

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
