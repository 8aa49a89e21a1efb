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

The servers: :mod:`.bounded_waitress` and :mod:`.bounded_uvicorn`; this module holds what both
enforce and answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Optional, Protocol, Tuple, TypeVar

from uws_adapter import metrics
from uws_adapter.edge import Answer
from uws_adapter.errors import InputError
from uws_adapter.logs import Throttled
from uws_adapter.settings.receiver import CONNECTION_OPTIONS, ConnectionBounds

logger = logging.getLogger("uws_adapter.serving")


def raw_answer(status: int, body: bytes, *extra: bytes) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, written past the application."""
    head = [b"HTTP/1.1 " + Answer(status, "text/plain", body).status_line.encode("ascii"), b"Content-Type: text/plain",
            b"Content-Length: " + str(len(body)).encode("ascii"), *extra, b"Connection: close"]  # fmt: skip
    return b"\r\n".join(head) + b"\r\n\r\n" + body


#: Written to a connection refused at the limit (before any request was read).
REFUSED = raw_answer(503, b"too many open connections; retry shortly\n", b"Retry-After: 1")
#: Written to a connection whose first byte opens a TLS handshake (a client given https:// for a plain
#: HTTP port): the client fails at once on these bytes, where waiting for headers that never come
#: made it wait for its timeout, and retry.
NOT_TLS = raw_answer(400, b"this port speaks plain HTTP, not TLS: use an http:// URL\n")
#: Written to a request whose headers or body missed its deadline.
TIMED_OUT = raw_answer(408, b"the request did not arrive in time\n")
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


def limit_warner() -> Throttled:
    return Throttled(
        logger,
        "connection limit %d reached: %d connection(s) refused with 503 (raise --max-connections, "
        "or filter slow clients in front)",
        every=WARN_EVERY,
    )


#: Requests whose headers were over a limit (one line a minute at most, with the count).
_too_large = Throttled(
    logger, "request headers over the limit (%s): %d request(s) answered 431 and closed", logging.INFO, every=WARN_EVERY
)


def too_large(limits: ConnectionLimits, what: str) -> bytes:
    """The 431 answer for headers over a limit, counted and (rate-limited) logged."""
    metrics.connection_refused(431)
    _too_large.note(what)
    return raw_answer(
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


class Evictable(Protocol):
    def eviction_rank(self, now: float) -> Optional[Tuple[int, float]]: ...


E = TypeVar("E", bound=Evictable)


def evict(connections: Iterable[E], now: float) -> Optional[E]:
    """The connection to close for a newcomer at the limit: the longest-idle keep-alive connection
    (it has no request to lose); else the one whose request (or first byte) has been awaited longest,
    if longer than EVICT_AFTER: a legitimate request arrives in milliseconds, so under a flood of
    slow clients the oldest of them gives way, not the caller. A connection whose request the
    application is answering is never closed; a newcomer that finds nothing to close is refused."""
    ranked = [(rank, connection) for connection in connections for rank in [connection.eviction_rank(now)] if rank]
    return min(ranked, key=lambda pair: pair[0])[1] if ranked else None
