"""uvicorn with :class:`~uws_adapter.serving.limits.ConnectionLimits` enforced: its httptools
protocol with the connection limit, the deadlines of each request's phases and the header bounds
(the why: :mod:`uws_adapter.serving.limits`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, Callable, Dict, Optional, Tuple

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from uws_adapter import metrics
from uws_adapter.logs import Throttled
from uws_adapter.serving.limits import (
    EVICT_AFTER,
    REFUSED,
    TIMED_OUT,
    WARN_EVERY,
    ConnectionLimits,
    evict,
    limit_warner,
    logger,
    too_large,
)

__all__ = ["BoundedHttpToolsProtocol", "uvicorn_options"]

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
        self._deferred: Optional[Callable[[], None]] = None  # a refusal waiting for the answers before it

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        room = len(self.connections) < self.limits.max_connections or self._make_room()
        super().connection_made(transport)
        if not room:
            self._phase = _REFUSED
            transport.write(REFUSED)
            transport.close()
            _warner.note(self.limits.max_connections)
            metrics.connection_refused(503)
            return
        self._since = time.monotonic()
        self._arm(self.limits.header_timeout)  # the first request's headers are due from now

    def _make_room(self) -> bool:
        live = [c for c in self.connections if not c.transport.is_closing()]
        if len(live) < self.limits.max_connections:
            return True
        victim = evict([c for c in live if isinstance(c, BoundedHttpToolsProtocol)], time.monotonic())
        if victim is None:
            return False
        victim.transport.close()
        return True

    def eviction_rank(self, now: float) -> Optional[Tuple[int, float]]:
        """See :func:`evict`."""
        if self.transport.is_closing() or self._phase in (_APPLICATION, _REFUSED):
            return None
        if self.pipeline or (self.cycle is not None and self._phase == _HEADERS and not self.cycle.response_complete):
            return None  # a request before the one arriving is being answered: it has an answer to lose
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
                _malformed.note()
                self._refuse(functools.partial(self.send_400_response, "Invalid HTTP request received."))

    def _refuse_headers(self, what: str) -> None:
        self._refuse(functools.partial(self._close_with, too_large(self.limits, what)))

    def _close_with(self, answer: bytes) -> None:
        self.transport.write(answer)
        self.transport.close()

    def _refuse(self, send: Callable[[], None]) -> None:
        """``send`` a refusal (it writes and closes), but after the answers to the requests read
        whole before it: a pipelining client takes answers for its requests in order. uvicorn wrote
        its 400 at once and closed, so the 200 of the callback before it (stored, and logged as
        answered 200) was dropped, and the client took the 400 for that callback's answer."""
        self._phase = _REFUSED
        self._arm(None)
        # self.cycle is the last request whose headers were read. One whose body was still due is the
        # broken one: queued behind a running request, it is dropped (its answer is the refusal);
        # running, nothing is before it.
        cycle = self.cycle
        queued = next((item for item in self.pipeline if item[0] is cycle), None)
        if cycle is not None and cycle.more_body and queued is not None:
            self.pipeline.remove(queued)
        in_flight = queued is not None or bool(self.pipeline)
        if not in_flight and cycle is not None and not cycle.more_body and not cycle.response_complete:
            in_flight = True
        if in_flight:
            self._deferred = send
            self.flow.pause_reading()
            return
        send()

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
        starts_next = bool(self.pipeline)  # uvicorn starts the next pipelined request now
        super().on_response_complete()
        self._served = True
        if self._deferred is not None:
            if not starts_next and not self.transport.is_closing():
                self._deferred()  # the answers to every request before it are out
            return
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
        if self._phase in (_HEADERS, _BODY):
            # A request was under way: its 408 comes after the answer to a request before it still
            # being answered (headers late behind a callback being committed), as a refusal does.
            # Written at once, it dropped that answer and was read as it.
            self._refuse(self._timed_out)
            return
        self.transport.close()

    def _timed_out(self) -> None:
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self.transport.write(TIMED_OUT)  # say why it ends (not in the middle of an answer begun)
            metrics.connection_refused(408)
        self.transport.close()


_warner = limit_warner()
#: Requests httptools could not parse (one line a minute at most, with the count).
_malformed = Throttled(logger, "malformed HTTP requests: %d answered 400 and closed", logging.INFO, every=WARN_EVERY)


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
