"""Bounded HTTP serving for the receiver and the bridge: a connection limit, an idle (keep-alive)
timeout, and deadlines for a request's headers and for its body, on waitress and on uvicorn.

Why: neither server bounds what a client that never finishes its request costs. waitress stops
*accepting* at its ``connection_limit`` (new callers hang in the listen backlog) and drops idle
connections only after ``channel_timeout`` (120 s), checked every ``cleanup_interval`` (30 s);
uvicorn never times out a request that is still arriving, and a connection that never sends a byte
stays open for ever. So a few hundred idle or trickling connections shut every callback out.

Here, on both servers, each connection is in one of four states, each with its own bound:

* **awaiting** a request (just connected, or kept alive after a response): closed after
  ``idle_timeout`` (kept alive) or ``header_timeout`` (never sent a byte);
* **headers** arriving: answered ``408`` and closed when they are not complete ``header_timeout``
  after the request began (after the connection was made, for its first request);
* **body** arriving: answered ``408`` and closed when it is not complete ``body_timeout`` after
  the headers;
* **application** answering: not bounded here (that is the application's business).

At ``max_connections`` (per process: each uvicorn worker keeps its own count, as it has its own
descriptor limit), a newcomer makes room by closing, first, the longest-idle keep-alive connection
(it has no request to lose), else the connection whose request has been arriving longest, if for
more than a second (a legitimate request arrives in milliseconds: under a flood of slow clients the
oldest of them gives way). So idle clients never shut a callback out, and slow ones only for as
long as they are all younger than a second. When every connection is being answered (or arrived
within the second), the newcomer is answered ``503`` at once and closed, instead of waiting unseen
in the listen backlog.

Request headers are bounded too (:class:`ConnectionLimits` ``max_header_bytes``, ``max_header_count``,
``max_header_line``): a request line plus headers over 64 KiB in all, more than 100 header fields, or
one line over 8 KiB is answered ``431`` and the connection closed, without reading further. httptools
keeps every header it is given and joins a value arriving in pieces by copying it, so, unbounded, one
unauthenticated connection could grow a worker by gigabytes or hold its event loop; waitress's own cap
(256 KiB by default) is set to the same total, and its parser checks the same count and line length.

Requests with both ``Content-Length`` and ``Transfer-Encoding`` are refused with ``400`` and the
connection closed (RFC 9112 section 6.1), on both servers: httptools does so itself; waitress gets
a parser that does. uvicorn's h11 parser does not (it answers such a request and keeps the
connection), so the bounded uvicorn protocol is built on httptools only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Protocol, Tuple, TypeVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError, TransferEncodingNotImplemented
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import RequestHeaderFieldsTooLarge

from uws_adapter import metrics
from uws_adapter.edge import Answer
from uws_adapter.errors import InputError
from uws_adapter.serving.access import AccessErrorTask
from uws_adapter.serving.onewrite import OneWriteTask
from uws_adapter.settings.receiver import CONNECTION_OPTIONS, ConnectionBounds

logger = logging.getLogger("uws_adapter.serving")


def _raw_answer(status: int, body: bytes, *extra: bytes) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, written past the application."""
    head = [b"HTTP/1.1 " + Answer(status, "text/plain", body).status_line.encode("ascii"), b"Content-Type: text/plain",
            b"Content-Length: " + str(len(body)).encode("ascii"), *extra, b"Connection: close"]  # fmt: skip
    return b"\r\n".join(head) + b"\r\n\r\n" + body


#: Written to a connection refused at the limit (before any request was read).
REFUSED = _raw_answer(503, b"too many open connections; retry shortly\n", b"Retry-After: 1")
#: Written to a request whose headers or body missed its deadline.
TIMED_OUT = _raw_answer(408, b"the request did not arrive in time\n")
#: Written to a request whose headers are over a limit (the text says which, see :func:`too_large`).
#: Descriptors a process needs beside its connections (listening socket, SQLite files, logs, pipes).
RESERVED_DESCRIPTORS = 64
#: At the limit, a request still arriving after this many seconds may be closed for a newcomer.
EVICT_AFTER = 1.0
#: At most one "connection limit reached" warning per this many seconds: an attacker must not flood the log.
WARN_EVERY = 60.0


@dataclass(frozen=True)
class ConnectionLimits(ConnectionBounds):
    """How many connections a server process keeps, and how long each may take (seconds): the
    services' settings (:class:`~uws_adapter.settings.receiver.ConnectionBounds`, their defaults
    too) and the header bounds."""

    #: The request line and every header together, in bytes (a carrier callback sends well under 1 KiB).
    max_header_bytes: int = 64 * 1024
    #: Header fields in one request.
    max_header_count: int = 100
    #: One header line (name and value) or the request line, in bytes.
    max_header_line: int = 8 * 1024

    def __post_init__(self) -> None:
        for option in CONNECTION_OPTIONS:  # the services' own checks of these, naming the option
            value = option.convert(getattr(self, option.name), "--" + option.name.replace("_", "-"))
            object.__setattr__(self, option.name, value)
        for name, count, low, high in (
            ("max_header_bytes", self.max_header_bytes, 1024, 1024 * 1024),
            ("max_header_count", self.max_header_count, 1, 10_000),
            ("max_header_line", self.max_header_line, 256, 1024 * 1024),
        ):
            if not low <= count <= high:
                raise InputError(f"ConnectionLimits.{name}", f"{count} is out of range", f"use {low} to {high}")


class _Warner:
    """Logs a refusal at most once per WARN_EVERY seconds, with the count of refusals meanwhile:
    an attacker must not flood the log."""

    def __init__(self, text: str, level: int = logging.WARNING) -> None:
        self.text = text
        self.level = level
        self.refused = 0
        self.last = -WARN_EVERY

    def refused_one(self, *args: object) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.last >= WARN_EVERY:
            logger.log(self.level, self.text, *args, self.refused)
            self.last, self.refused = now, 0


def _limit_warner() -> _Warner:
    return _Warner(
        "connection limit %d reached: %d connection(s) refused with 503 (raise --max-connections, "
        "or filter slow clients in front)"
    )


#: Requests httptools could not parse (one line a minute at most, with the count).
_malformed = _Warner("malformed HTTP requests: %d answered 400 and closed", logging.INFO)
#: Requests whose headers were over a limit (one line a minute at most, with the count).
_too_large = _Warner("request headers over the limit (%s): %d request(s) answered 431 and closed", logging.INFO)


def too_large(limits: ConnectionLimits, what: str) -> bytes:
    """The 431 answer for headers over a limit, counted and (rate-limited) logged."""
    metrics.connection_refused(431)
    _too_large.refused_one(what)
    return _raw_answer(
        431,
        f"request headers over the limit: {what} (at most {limits.max_header_bytes} bytes, "
        f"{limits.max_header_count} fields, {limits.max_header_line} bytes a line)\n".encode("ascii"),
    )


def ensure_descriptors(limits: ConnectionLimits) -> None:
    """Raise this process's open-file limit to fit ``max_connections`` (worker processes inherit it),
    or refuse to start: past the limit, accept() fails and every caller is shut out."""
    try:
        import resource
    except ImportError:  # not on Unix: nothing to raise
        return
    needed = limits.max_connections + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise InputError(
                "--max-connections",
                f"{limits.max_connections} needs {needed} open files, the hard limit is {hard}",
                f"use at most {max(1, hard - RESERVED_DESCRIPTORS)} or raise the hard limit (ulimit -Hn)",
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class _Evictable(Protocol):
    def eviction_rank(self, now: float) -> Optional[Tuple[int, float]]: ...


E = TypeVar("E", bound=_Evictable)


def _evict(connections: Iterable[E], now: float) -> Optional[E]:
    """The connection to close for a newcomer at the limit: the longest-idle keep-alive connection
    (it has no request to lose); else the one whose request (or first byte) has been awaited longest,
    if longer than EVICT_AFTER: a legitimate request arrives in milliseconds, so under a flood of
    slow clients the oldest of them gives way, not the caller. A connection whose request the
    application is answering is never closed; a newcomer that finds nothing to close is refused."""
    ranked = [(rank, connection) for connection in connections for rank in [connection.eviction_rank(now)] if rank]
    return min(ranked, key=lambda pair: pair[0])[1] if ranked else None


# waitress ------------------------------------------------------------------------------------------


class StrictRequestParser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's parser, refusing Content-Length together with Transfer-Encoding, and any
    Transfer-Encoding in HTTP/1.0 (RFC 9112 section 6.1): waitress would frame the body one way and
    keep the connection, serving whatever was smuggled behind it. The refusal is a 400 after which
    waitress closes the connection (and drops what followed)."""

    def parse_header(self, header_plus: bytes) -> None:
        # waitress bounds the total (max_request_header_size); the count and line length are ours.
        limits: Optional[ConnectionLimits] = getattr(self.adj, "uws_limits", None)
        if limits is not None:
            over = _over_line_limits(header_plus, limits)
            if over:
                self.too_large = over
                raise ParsingError(over)
        try:
            super().parse_header(header_plus)
        except TransferEncodingNotImplemented:
            if "CONTENT_LENGTH" not in self.headers:
                raise  # a coding other than chunked, alone: 501, as the edge's screen answers it on uvicorn
            self.chunked = True  # beside a Content-Length, any coding is refused as chunked is (uvicorn: 400)
        problem = None
        # waitress removes TRANSFER_ENCODING from HTTP/1.1 headers once parsed; ``chunked`` remains.
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            problem = "Content-Length and Transfer-Encoding together; send one of them"
        # HTTP/1.0 has no Transfer-Encoding: waitress frames by Content-Length, a proxy may not.
        elif "TRANSFER_ENCODING" in self.headers:
            problem = "Transfer-Encoding in an HTTP/1.0 request; send HTTP/1.1 or Content-Length alone"
        if problem:
            # The error answer then says "Connection: close" only (not also the client's keep-alive).
            self.headers["CONNECTION"] = "close"
            raise ParsingError(problem)

    too_large: Optional[str] = None
    error: Any = None  # as waitress's: the refusal, once the request is known to be bad

    def received(self, data: bytes) -> int:
        before = self.error
        consumed: int = super().received(data)
        over = self.too_large or isinstance(self.error, RequestHeaderFieldsTooLarge)
        if before is None and self.error is not None and over:
            limits: Optional[ConnectionLimits] = getattr(self.adj, "uws_limits", None)
            what = self.too_large or f"more than {self.adj.max_request_header_size} bytes"
            self.error = RequestHeaderFieldsTooLarge(what)
            if limits is not None:
                too_large(limits, what)  # counted and logged; waitress writes its own 431 answer
        return consumed


def _over_line_limits(header_plus: bytes, limits: ConnectionLimits) -> Optional[str]:
    """What is over the count or line-length limit in a complete header block, if anything
    (bytes methods only: linear, in C)."""
    # waitress hands over the block with the blank line that ends it: without it, one line break
    # per field after the request line. A line is counted without its CRLF, as httptools counts.
    block = header_plus.rstrip(b"\r\n")
    fields = block.count(b"\n")
    if fields > limits.max_header_count:
        return f"{fields} header fields"
    start = 0
    while start < len(block):
        end = block.find(b"\n", start)
        if end < 0:
            end = len(block)
        length = end - start - (end > start and block[end - 1 : end] == b"\r")
        if length > limits.max_header_line:
            return f"a line of {length} bytes"
        start = end + 1
    return None


class BoundedChannel(HTTPChannel):  # type: ignore[misc]
    """A waitress connection that knows when its current request began and when its headers ended."""

    parser_class = StrictRequestParser
    task_class = OneWriteTask  # an answer's head and first body bytes in one send
    error_task_class = AccessErrorTask  # waitress's own refusals get an access line too
    request: Any = None  # as waitress's: the request still arriving, if any

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        self._seen_bytes = False
        self._tracked: Any = None
        self._request_at = 0.0
        self._headers_at: Optional[float] = None
        super().__init__(server, sock, addr, adj, map=map)

    def received(self, data: bytes) -> bool:
        now = time.time()
        fresh = not self._seen_bytes
        self._seen_bytes = True
        result: bool = super().received(data)
        request = self.request  # the request still arriving, if any
        if request is not self._tracked:
            self._tracked = request
            # The first request's headers are due header_timeout after the connection was made.
            self._request_at = self.creation_time if fresh else now
            self._headers_at = None
        if request is not None and self._headers_at is None and request.headers_finished:
            self._headers_at = now
        return result

    def closing(self) -> bool:
        return bool(self.will_close or self.close_when_flushed)

    def eviction_rank(self, now: float) -> Optional[Tuple[int, float]]:
        """See :func:`_evict`."""
        if self.requests or self.closing():
            return None
        if self.request is not None:
            since = self._request_at
        elif not self._seen_bytes:
            since = self.creation_time
        elif self.total_outbufs_len:  # an answer still on its way to a slow reader
            since = self.last_activity
        else:
            return (0, self.last_activity)
        return (1, since) if now - since > EVICT_AFTER else None

    def overdue(self, now: float, limits: ConnectionLimits) -> bool:
        """Close this connection if it is past its deadline; say whether it was."""
        if self.requests or self.closing():
            return False  # the application is answering (or it is already closing)
        request: Any = self.request
        if request is None:
            if self._seen_bytes:  # kept alive after a response
                deadline = self.last_activity + limits.idle_timeout
            else:  # connected, and silent ever since
                deadline = self.creation_time + limits.header_timeout
            if now <= deadline:
                return False
            self.will_close = True
            return True
        if self._headers_at is None:
            late = now > self._request_at + limits.header_timeout
        else:
            late = now > self._headers_at + limits.body_timeout
        if not late:
            return False
        with self.requests_lock:
            request.close()  # its buffers (possibly a temporary file)
            self.request = self._tracked = None
        metrics.connection_refused(408)
        with self.outbuf_lock:  # as send_continue does: answer, then close once flushed
            self.outbufs[-1].append(TIMED_OUT)
            self.current_outbuf_count += len(TIMED_OUT)
            self.total_outbufs_len += len(TIMED_OUT)
        self.close_when_flushed = True
        return True


class BoundedWsgiServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server with :class:`ConnectionLimits` enforced on its loop (maintenance runs
    about every second: a deadline is enforced within a second or two of passing)."""

    channel_class = BoundedChannel
    next_channel_cleanup: float = 0  # as waitress's

    def __init__(self, application: Any, *args: Any, limits: ConnectionLimits, **kw: Any) -> None:
        self.limits = limits
        self._warner = _limit_warner()
        self.wsgi_app = application  # as given: waitress wraps it (proxy headers) as self.application
        super().__init__(application, *args, **kw)

    def readable(self) -> bool:
        # As waitress's, without its overflow state: at the limit we accept and decide (evict or
        # refuse), rather than leave callers hanging unseen in the listen backlog.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def maintenance(self, now: float) -> None:
        for channel in list(self.active_channels.values()):
            if isinstance(channel, BoundedChannel):
                channel.overdue(now, self.limits)

    def handle_accept(self) -> None:
        if len(self.active_channels) >= self.limits.max_connections and not self._make_room():
            try:
                accepted = self.accept()
            except OSError:
                return
            if accepted is None:
                return
            conn = accepted[0]
            try:
                conn.setblocking(False)
                conn.send(REFUSED)
            except OSError:
                pass
            finally:
                conn.close()
            self._warner.refused_one(self.limits.max_connections)
            metrics.connection_refused(503)
            return
        super().handle_accept()

    def _make_room(self) -> bool:
        """Whether a new connection fits, after marking one for closing (see :func:`_evict`).
        (Marked, not closed: the loop may still hold poll results for its descriptor.)"""
        live: List[BoundedChannel] = [c for c in self.active_channels.values() if not c.closing()]
        if len(live) < self.limits.max_connections:
            return True
        victim = _evict(live, time.time())
        if victim is None:
            return False
        victim.will_close = True
        return True


def waitress_server(application: Any, limits: ConnectionLimits, **options: Any) -> Any:
    """A waitress server (as ``waitress.server.create_server`` makes, one per listening address)
    with ``limits`` enforced; ``options`` are waitress adjustments."""
    adj = Adjustments(
        **{
            **options,
            # waitress's own bookkeeping, for what it still reads of these:
            "connection_limit": limits.max_connections,
            "channel_timeout": max(1, int(limits.idle_timeout)),
            "cleanup_interval": 1,  # our deadlines are checked there
            "asyncore_loop_timeout": 1,
            # select() cannot watch descriptors past 1023; poll() can.
            "asyncore_use_poll": True,
            "max_request_header_size": limits.max_header_bytes,
        }
    )
    adj.uws_limits = limits  # read by StrictRequestParser: the header count and line limits
    if adj.unix_socket or adj.sockets:
        raise InputError("server options", "unix sockets and passed sockets are not supported", "give host and port")
    mapping: Dict[int, Any] = {}
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    servers = [
        BoundedWsgiServer(
            application, mapping, True, None, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo, limits=limits
        )
        for sockinfo in adj.listen
    ]
    if len(servers) == 1:
        return servers[0]
    effective = [(server.effective_host, server.effective_port) for server in servers]
    return MultiSocketServer(mapping, adj, effective, dispatcher, servers[-1].log_info)


# uvicorn -------------------------------------------------------------------------------------------

_AWAITING, _HEADERS, _BODY, _APPLICATION, _REFUSED = "awaiting", "headers", "body", "application", "refused"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`ConnectionLimits` (uvicorn's own keep-alive
    timer, ``timeout_keep_alive``, bounds the idle wait after a response)."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._phase = _AWAITING
        self._served = False
        self._since = 0.0  # time.monotonic(): uvloop's loop.time() has millisecond steps, too coarse to rank
        self._timer: Optional[asyncio.TimerHandle] = None
        self._header_bytes = 0  # of the request whose headers are arriving
        self._too_large: Optional[str] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        room = len(self.connections) < self.limits.max_connections or self._make_room()
        super().connection_made(transport)
        if not room:
            self._phase = _REFUSED
            transport.write(REFUSED)
            transport.close()
            _warner.refused_one(self.limits.max_connections)
            metrics.connection_refused(503)
            return
        self._since = time.monotonic()
        self._arm(self.limits.header_timeout)  # the first request's headers are due from now

    def _make_room(self) -> bool:
        live = [c for c in self.connections if not c.transport.is_closing()]
        if len(live) < self.limits.max_connections:
            return True
        victim = _evict([c for c in live if isinstance(c, BoundedHttpToolsProtocol)], time.monotonic())
        if victim is None:
            return False
        victim.transport.close()
        return True

    def eviction_rank(self, now: float) -> Optional[Tuple[int, float]]:
        """See :func:`_evict`."""
        if self.transport.is_closing() or self._phase in (_APPLICATION, _REFUSED):
            return None
        if self._phase == _AWAITING and self._served:
            return (0, self._since)
        return (1, self._since) if now - self._since > EVICT_AFTER else None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._arm(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # While headers arrive, the parser is fed at most max_header_bytes of them: httptools would
        # keep (and re-copy) whatever it is given. Past the headers, data goes through as it came.
        limit = self.limits.max_header_bytes
        while data and self._phase != _REFUSED and not self.transport.is_closing():
            if self._phase not in (_AWAITING, _HEADERS):
                self._feed(data)
                return
            room = limit - self._header_bytes
            if room <= 0:
                self._refuse_headers(f"more than {limit} bytes")
                return
            piece, data = data[:room], data[room:]
            self._header_bytes += len(piece)
            self._feed(piece)

    def _feed(self, data: bytes) -> None:
        """As uvicorn's ``data_received``, but a request over a header limit is answered 431, and a
        malformed one is logged at INFO at most once a minute (uvicorn warns on every one: a client
        could write the log at will)."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrade is served: the request goes on as plain HTTP (uvicorn's way without websockets)
        except httptools.HttpParserError:
            if self._too_large is not None:
                self._refuse_headers(self._too_large)
            else:
                metrics.connection_refused(400)
                _malformed.refused_one()
                self.send_400_response("Invalid HTTP request received.")

    def _refuse_headers(self, what: str) -> None:
        self._phase = _REFUSED
        self._arm(None)
        self.transport.write(too_large(self.limits, what))
        self.transport.close()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_header_line:
            self._too_large = f"a request line over {self.limits.max_header_line} bytes"
            raise ValueError(self._too_large)  # httptools stops parsing; see _feed

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.limits.max_header_count:
            self._too_large = f"more than {self.limits.max_header_count} header fields"
        elif len(name) + len(value) + 2 > self.limits.max_header_line:
            self._too_large = f"a header line over {self.limits.max_header_line} bytes"
        if self._too_large is not None:
            raise ValueError(self._too_large)  # httptools stops parsing; see _feed
        super().on_header(name, value)

    # httptools parser callbacks: the request's progress.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._served or self._phase != _AWAITING:  # a later request: its own header deadline
            self._arm(self.limits.header_timeout)
            self._since = time.monotonic()
        self._phase = _HEADERS

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if not self.url.startswith(b"/") and "raw_path" in self.scope:
            # httptools keeps only the path of an absolute-form target (http://host/callbacks) or
            # none of an authority-form one: the application's target rule (edge.target_refusal),
            # which refuses both on waitress, is given the target as sent. The request's task has
            # not run yet, so it reads this scope.
            self.scope["raw_path"] = self.url.partition(b"?")[0]
        self._header_bytes = 0  # the next request's headers have their own budget
        self._phase = _BODY
        # A pipelined request waits (reading paused) for the one before it: its body is due only
        # once it is started, in on_response_complete.
        self._arm(None if self.pipeline else self.limits.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _APPLICATION
        self._arm(None)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._served = True
        if self._phase == _APPLICATION and self.cycle is not None and self.cycle.response_complete:
            self._phase = _AWAITING  # uvicorn has armed its keep-alive timer
            self._since = time.monotonic()
        elif self._phase == _BODY and not self.pipeline and not self.transport.is_closing():
            self._arm(self.limits.body_timeout)  # the pipelined request has started: its body is due

    def _arm(self, seconds: Optional[float]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if self._phase in (_HEADERS, _BODY) and not answering:
            self.transport.write(TIMED_OUT)  # a request was under way: say why it ends
            metrics.connection_refused(408)
        self.transport.close()


_warner = _limit_warner()


def uvicorn_options(limits: ConnectionLimits) -> Dict[str, Any]:
    """uvicorn configuration enforcing ``limits`` (merge over the receiver's ``server_config``).
    The protocol is passed as a picklable partial: worker processes receive it with the config."""
    return {
        "http": functools.partial(BoundedHttpToolsProtocol, limits=limits),
        "timeout_keep_alive": limits.idle_timeout,
        # uvicorn's own limit answers 503 only once headers are read, after our connection limit
        # would have acted; leave it off.
        "limit_concurrency": None,
    }
