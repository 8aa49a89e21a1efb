"""One access line per request, for every service the command line serves: a WSGI middleware
(:class:`AccessLog`, receiver and bridge on waitress, the emulator), an ASGI wrapper
(:class:`AsgiAccessLog`, the receiver on uvicorn), and waitress's own refusals
(:class:`AccessErrorTask`: a body over the limit, a smuggled request), which never reach the
application.

Each line goes to ``uws_adapter.<service>.access`` at INFO (WARNING for a 5xx, except a SOAP fault
the SOAP server marks as the client's: WCF answers every fault with 500, and a flood of bad
requests must not write warnings at will)::

    "POST /" 401 37 bytes in 2.1 ms from 127.0.0.1:50312: wrong callback username or password

with the structured fields ``method``, ``path``, ``status``, ``bytes``, ``duration_ms``,
``client`` and, for a refusal, ``reason`` (for ``--log-format json``). What is never logged:
bodies, headers (so no credentials), and query strings (a query may carry a token). The reason
is read from the service's own answer: the first line of a plain-text refusal, a SOAP fault's
code and string, a JSON error's code and message. Attacker-chosen text (the method, the path)
is cut short and its control characters escaped, so that no request can forge a log line.
Refusals repeat (the same status and reason): after :data:`REPEATS` lines in a minute, the rest of
that minute's are counted, not written, and the count is logged with the next line that is.

Applied where the command line builds each service, not inside the protocol classes: a program
that serves a :class:`~uws_adapter.receiver.app.Receiver` itself wraps it the same way if it wants
these lines (``AccessLog(receiver, "receiver")``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from waitress.task import ErrorTask

from uws_adapter.edge import AsgiApp, Message, Receive, Scope, Send, StartResponse, WsgiApp, WsgiBody
from uws_adapter.errors import DocumentError, UwsAdapterError
from uws_adapter.jsonsafe import loads_untrusted
from uws_adapter.logs import StderrHandler, printable, text_handler

#: Bytes of a refusal's answer kept to read its reason from (our refusals are short).
_REASON_BYTES = 2048
#: Lines of one refusal (service, status, reason) written per :data:`REPEAT_WINDOW` seconds.
REPEATS = 10
REPEAT_WINDOW = 60.0
#: Refusals remembered per window (beyond: written as they come, the memory stays bounded).
_REPEAT_KEYS = 1000
#: An access line's message, with its arguments (see _Line.log).
_MESSAGE = '"%s %s" %d %d bytes in %.1f ms from %s%s%s'
#: Where the SOAP server marks a fault as the client's (see uws_adapter.soap.server.FAULT_KEY).
_FAULT_KEY = "uws_adapter.fault"


class _Repeats:
    """How many lines of each refusal were written in the current window; how many of the last
    window's were left out (said with the first line of the next)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.window = clock()
        self.seen: Dict[Tuple[str, int, str], int] = {}
        self.previous: Dict[Tuple[str, int, str], int] = {}
        self.lock = threading.Lock()

    def allow(self, key: Tuple[str, int, str]) -> Optional[int]:
        """None: leave this line out; else how many like it were left out before it."""
        with self.lock:
            now = self.clock()
            if now - self.window >= REPEAT_WINDOW:
                self.previous = {k: n - REPEATS for k, n in self.seen.items() if n > REPEATS}
                self.window, self.seen = now, {}
            count = self.seen.get(key, 0)
            if count == 0 and len(self.seen) >= _REPEAT_KEYS:
                return 0  # too many kinds of refusal to remember: written, not counted
            self.seen[key] = count + 1
            if count >= REPEATS:
                return None
            return self.previous.pop(key, 0) if count == 0 else 0


_repeats = _Repeats()


def access_logger(service: str) -> logging.Logger:
    return logging.getLogger(f"uws_adapter.{service}.access")


class _Line:
    """What one request's access line says, filled in as the answer goes out."""

    __slots__ = (
        "bytes", "client", "client_fault", "content_type", "head", "logged", "method", "path", "started", "status",
    )  # fmt: skip

    def __init__(self, method: str, path: str, client: str) -> None:
        self.method = method
        self.path = path
        self.client = client
        self.started = time.perf_counter()
        self.status = 0
        self.content_type = ""
        self.bytes = 0
        self.head = b""
        self.logged = False
        self.client_fault = False

    def answered(self, status: int, headers: Iterable[Tuple[Any, Any]]) -> None:
        self.status = status
        if status < 400:
            return  # the content type serves only to read a refusal's reason (see log)
        for name, value in headers:
            name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            if name.lower() == "content-type":
                self.content_type = value.decode("latin-1") if isinstance(value, bytes) else str(value)

    def sent(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if self.status >= 400 and len(self.head) < _REASON_BYTES:
            self.head += chunk[: _REASON_BYTES - len(self.head)]

    def log(self, logger: logging.Logger, reason: Optional[str] = None, batch: Optional[_Batch] = None) -> None:
        """Log the line (once), in ``batch`` when it goes straight to a text handler (the ASGI
        wrapper's: written with the other lines of its event-loop iteration)."""
        if self.logged:
            return
        self.logged = True
        status = self.status or 500
        if reason is None and status >= 400:
            reason = refusal_reason(self.content_type, self.head)
        level = logging.WARNING if status >= 500 and not self.client_fault else logging.INFO
        if not logger.isEnabledFor(level):
            return
        left_out = 0
        if status >= 400:
            allowed = _repeats.allow((logger.name, status, (reason or "")[:200]))
            if allowed is None:
                return
            left_out = allowed
        duration = (time.perf_counter() - self.started) * 1000
        arguments = (
            self.method, self.path, status, self.bytes, duration, self.client, f": {reason}" if reason else "",
            f" ({left_out} more like it left out in the last minute)" if left_out else "",
        )  # fmt: skip
        direct = text_handler(logger, level)
        if direct is not None:  # a text line to stderr and nothing else: the same line, without a record
            if batch is not None:
                batch.add(direct, direct.text_line(level, logger.name, _MESSAGE % arguments))
            else:
                direct.write_line(level, logger.name, _MESSAGE % arguments)
            return
        # One record made by the record factory and handed over directly: Logger.log would walk the
        # stack to find the caller's file and line for every request, which no access line shows,
        # and makeRecord would check each structured field's name against the record's (ours are
        # fixed and never clash).
        record = logging.getLogRecordFactory()(logger.name, level, __file__, 0, _MESSAGE, arguments, None, "access")
        fields = record.__dict__
        fields["method"], fields["path"], fields["status"], fields["bytes"] = self.method, self.path, status, self.bytes
        fields["duration_ms"], fields["client"] = round(duration, 3), self.client
        if reason:
            fields["reason"] = reason
        if left_out:
            fields["left_out"] = left_out
        logger.handle(record)


def refusal_reason(content_type: str, head: bytes) -> str:
    """Why a service refused, from the start of its own answer: the first line of a plain-text
    body, a SOAP fault's code and string, or a JSON error's code and message ("" otherwise)."""
    text = head.decode("utf-8", errors="replace")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/plain":
        return printable(text.strip().partition("\n")[0])
    if kind.endswith("xml"):
        code, message = _between(text, "<faultcode>", "</faultcode>"), _between(text, "<faultstring>", "</faultstring>")
        return printable(f"{code}: {message}" if code and message else code or message)
    if kind.endswith("json") and len(head) < _REASON_BYTES:
        try:
            value = loads_untrusted(text, what="answer")
        except DocumentError:
            return ""
        if isinstance(value, dict):
            parts = (
                value.get("errorCode") or value.get("error"),
                value.get("errorMessage") or value.get("error_description"),
            )
            return printable(": ".join(str(part) for part in parts if part))
    return ""


def _between(text: str, start: str, end: str) -> str:
    at = text.find(start)
    if at < 0:
        return ""
    at += len(start)
    stop = text.find(end, at)
    return text[at : stop if stop >= 0 else len(text)]


def _host_port(address: Any) -> Tuple[Any, Any]:
    return (address[0], address[1]) if isinstance(address, (tuple, list)) and len(address) >= 2 else (None, None)


#: The text of the ASGI clients seen lately: a keep-alive connection's every request has the same
#: (host, port). Bounded: emptied when full.
_CLIENTS: Dict[Tuple[Any, Any], str] = {}
_CLIENTS_KEPT = 1024


def _asgi_client(client: Any) -> str:
    if type(client) is not tuple:  # a list, or None: not a key
        return _client(*_host_port(client))
    try:
        text = _CLIENTS.get(client)
    except TypeError:  # a server's odd client, unhashable: written as it is, not kept
        return _client(*_host_port(client))
    if text is None:
        text = _client(*_host_port(client))
        if len(_CLIENTS) >= _CLIENTS_KEPT:
            _CLIENTS.clear()
        _CLIENTS[client] = text
    return text


def _client(host: Any, port: Any) -> str:
    if not host:
        return "-"
    host = printable(str(host), 64)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# WSGI ----------------------------------------------------------------------------------------------


class AccessLog:
    """WSGI middleware: ``AccessLog(app, "receiver")`` logs each request ``app`` answers on
    ``uws_adapter.receiver.access``; requests waitress refuses itself are logged by
    :class:`AccessErrorTask` through :meth:`refused`."""

    def __init__(self, app: WsgiApp, service: str) -> None:
        self.app = app
        self.service = service
        self.logger = access_logger(service)

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        line = _Line(
            printable(str(environ.get("REQUEST_METHOD", "-")), 16),
            printable(str(environ.get("PATH_INFO", "/")), 200),  # PATH_INFO has no query string
            _client(environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT", "-")),
        )

        def recording_start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                code = int(status[:3])
            except ValueError:
                code = 500
            line.answered(code, headers)
            write = start_response(status, headers, exc_info)

            def recording_write(data: bytes) -> Any:
                line.sent(data)
                return write(data)

            return recording_write

        try:
            body = self.app(environ, recording_start_response)
            line.client_fault = environ.get(_FAULT_KEY) == "client"
        except Exception as exc:  # the server answers 500 and logs the traceback; this is its line
            line.status = 500
            line.log(self.logger, f"the application failed: {type(exc).__name__}")
            raise
        return _LoggedBody(body, line, self.logger)

    def refused(self, task: Any) -> None:
        """The line of a request waitress answered itself (see :class:`AccessErrorTask`)."""
        request = task.request
        error = getattr(request, "error", None)
        line = _Line(
            printable(str(getattr(request, "command", None) or "-"), 16),
            printable(str(getattr(request, "path", None) or "-"), 200),
            _client(*_host_port(getattr(task.channel, "addr", None))),
        )
        try:
            line.status = int(str(task.status)[:3])
        except ValueError:
            line.status = 400
        line.bytes = int(getattr(task, "content_length", 0) or 0)
        reason = getattr(error, "body", None) or getattr(error, "reason", None) or ""
        line.log(self.logger, printable(str(reason)))

    def close(self) -> None:
        close = getattr(self.app, "close", None)
        if close is not None:
            close()


class _LoggedBody(WsgiBody):
    """The answer's body as the application gave it, counted as it goes out; the line is logged
    when the server closes it."""

    def __init__(self, body: Iterable[bytes], line: _Line, logger: logging.Logger) -> None:
        super().__init__(body)
        self._line = line
        self._logger = logger

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._line.sent(chunk)
            yield chunk

    def closed(self) -> None:
        self._line.log(self._logger)


class AccessErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's answer to a request it refuses before the application (a body over the limit,
    a malformed or smuggled request), logged by the application's :class:`AccessLog` if it has one.
    (A 500 for an application that raised is already logged by the AccessLog itself.)"""

    def execute(self) -> None:
        super().execute()
        app = getattr(self.channel.server, "wsgi_app", None)  # the bounded server's (see serving.limits)
        if isinstance(app, AccessLog) and not str(self.status).startswith("500"):
            app.refused(self)


# ASGI ----------------------------------------------------------------------------------------------


class _Batch:
    """The text access lines of one event-loop iteration, written together at its end (one write
    and one flush for a group of callbacks answered at once, not one each: a system call each,
    3.2 against 0.4 µs a line timed alone). Each line is stamped when it is logged; a line reaches
    the log at the end of the iteration that logged it, a few microseconds later. Lines for
    another handler (logging configured anew meanwhile) first write those before them."""

    __slots__ = ("handler", "lines", "loop")

    def __init__(self) -> None:
        self.handler: Optional[StderrHandler] = None
        self.lines: List[str] = []
        self.loop: Optional[asyncio.AbstractEventLoop] = None  # the one that will write them

    def add(self, handler: StderrHandler, line: str) -> None:
        # A loop closed before its iteration ended (a program's own, stopped at once) never writes them.
        if self.lines and (handler is not self.handler or self.loop is None or self.loop.is_closed()):
            self.flush()
        if not self.lines:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop running this request: written at once
                handler.write_lines([line])
                return
            loop.call_soon(self.flush)
            self.handler, self.loop = handler, loop
        self.lines.append(line)

    def flush(self) -> None:
        handler, lines = self.handler, self.lines
        if handler is None or not lines:
            return
        self.handler, self.lines = None, []
        handler.write_lines(lines)


class AsgiAccessLog:
    """ASGI wrapper: ``AsgiAccessLog(app, "receiver")``, as :class:`AccessLog` for WSGI."""

    def __init__(self, app: AsgiApp, service: str) -> None:
        self.app = app
        self.service = service
        self.logger = access_logger(service)
        self._batch = _Batch()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                self._batch.flush()  # the lifespan's shutdown: nothing left unwritten
            return
        line = _Line(
            printable(str(scope.get("method", "-")), 16),
            printable(str(scope.get("path", "/")), 200),  # the ASGI path has no query string
            _asgi_client(scope.get("client")),
        )

        # A plain function handing back the server's awaitable: an async one made a coroutine of
        # its own for every message (two a request).
        def recording_send(message: Message) -> Awaitable[None]:
            kind = message["type"]
            if kind == "http.response.start":
                line.answered(int(message["status"]), message.get("headers") or ())
            elif kind == "http.response.body":
                line.sent(bytes(message.get("body", b"")))
            return send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception as exc:  # uvicorn answers 500 and logs the traceback; this is its line
            if not line.status:
                line.status = 500
            line.log(self.logger, f"the application failed: {type(exc).__name__}", self._batch)
            raise
        finally:
            line.log(self.logger, batch=self._batch)


def receiver_worker() -> AsgiAccessLog:
    """The application each uvicorn worker of ``uws-adapter receiver`` builds: logging as the
    command line chose (handed over in the environment), the receiver from the settings file the
    command line wrote for its workers (:func:`uws_adapter.receiver.wsgi.create_app`), one access
    line per request, and its store closed when uvicorn shuts the worker down (Ctrl-C leaves no
    ``-wal``/``-shm`` beside a SQLite store)."""
    from uws_adapter.logs import configure_from_environment
    from uws_adapter.receiver.asgi import AsyncReceiver
    from uws_adapter.receiver.wsgi import create_app
    from uws_adapter.settings.receiver import ReceiverSettings

    configure_from_environment()
    try:
        receiver = create_app()
    except UwsAdapterError as exc:  # a store that cannot be opened now, say
        # A worker process of the command line's: its reason handed to the command line, which says
        # it once, and the supervisor (the command line's process) stopped as SIGTERM stops it. Each
        # worker printed a traceback and uvicorn started it again, for ever. Not uvicorn's
        # startup-failure status (3): uvicorn 0.30+ logs its own line for it, uvicorn 0.20 ignores it.
        # (In the command line's own process, as with one worker, the error goes up to it.)
        if multiprocessing.parent_process() is None or not ReceiverSettings.worker_failed(exc):
            raise
        os.kill(os.getppid(), signal.SIGTERM)
        raise SystemExit(1) from None
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_stop_when_orphaned, args=(parent,), name="uws-orphan-watch", daemon=True).start()
    return AsgiAccessLog(AsyncReceiver(receiver, owns_store=True), "receiver")


def _stop_when_orphaned(parent: multiprocessing.process.BaseProcess) -> None:
    """Stop this worker as SIGTERM stops it once the command line's process is gone without
    stopping it (kill -9, the OOM killer): uvicorn's workers outlived it, kept the port (a restart
    said "already in use") and went on storing callbacks. Waits on the parent's sentinel: no polling."""
    parent.join()
    os.kill(os.getpid(), signal.SIGTERM)
