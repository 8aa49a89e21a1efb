"""waitress with :class:`~uws_adapter.serving.limits.ConnectionLimits` enforced: a strict request
parser, connections that know their deadlines, and a server that makes room or refuses at the
limit (the why: :mod:`uws_adapter.serving.limits`).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError, TransferEncodingNotImplemented
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import RequestHeaderFieldsTooLarge

from uws_adapter import metrics
from uws_adapter.errors import InputError
from uws_adapter.serving.access import AccessErrorTask
from uws_adapter.serving.limits import (
    EVICT_AFTER,
    NOT_TLS,
    REFUSED,
    TIMED_OUT,
    ConnectionLimits,
    evict,
    limit_warner,
    too_large,
)
from uws_adapter.serving.onewrite import OneWriteTask

__all__ = ["BoundedChannel", "BoundedWsgiServer", "StrictRequestParser", "waitress_server"]


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


#: The first byte of a TLS record carrying a handshake (RFC 8446 section 5.1): never an HTTP method's.
_TLS_HANDSHAKE = b"\x16"


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
        if fresh and data[:1] == _TLS_HANDSHAKE:
            metrics.connection_refused(400)
            self.write_soon(NOT_TLS)
            self.close_when_flushed = True
            return False
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
        """See :func:`evict`."""
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
        self._warner = limit_warner()
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
            self._warner.note(self.limits.max_connections)
            metrics.connection_refused(503)
            return
        super().handle_accept()

    def _make_room(self) -> bool:
        """Whether a new connection fits, after marking one for closing (see :func:`evict`).
        (Marked, not closed: the loop may still hold poll results for its descriptor.)"""
        live: List[BoundedChannel] = [c for c in self.active_channels.values() if not c.closing()]
        if len(live) < self.limits.max_connections:
            return True
        victim = evict(live, time.time())
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
