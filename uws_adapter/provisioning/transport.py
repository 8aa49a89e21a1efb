"""One HTTP attempt, bounded: the deadline watchdog, the answer cap, and knowing whether a byte of
the request left.

The deadline is a watchdog that shuts the exchange's socket down when time is up, which ends a
blocked read at once, whatever the per-read timeout. The cap is counted after decompression while
reading (a small gzip answer that inflates to gigabytes is stopped at the cap). Whether the request
may have left is known from our own connections, else judged by the kind of failure; what each
outcome means is the engine's (:mod:`uws_adapter.provisioning.engine`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, ReadTimeoutError

from uws_adapter.errors import TransportError
from uws_adapter.provisioning.options import SendOptions

__all__ = [
    "Answer", "DeadlineAdapter", "LimitExceeded", "NotSent", "OriginSession", "Unsendable", "exchange",
    "with_deadline_adapters",
]  # fmt: skip

_CHUNK = 16 * 1024
#: Raised by requests before any connection is made: the URL or a header cannot be sent at all.
Unsendable = (
    requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader, requests.exceptions.URLRequired,
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """A complete answer, read within the deadline and the size cap."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class LimitExceeded(TransportError):
    """Internal: the deadline (``cap`` False) or the answer cap (``cap`` True) ended the exchange after the
    request may have left."""

    def __init__(self, *, cap: bool) -> None:
        super().__init__("answer cap" if cap else "deadline")
        self.cap = cap


class NotSent(TransportError):
    """Internal: the exchange failed before any byte of the request left (``cause``)."""

    def __init__(self, cause: requests.RequestException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably did not leave: the URL could not be used, or no connection
    was ever made (judged by the failure, where our own connections were not in use)."""
    if isinstance(exc, (*Unsendable, requests.ConnectTimeout)):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)
    return False


# The deadline: a watchdog that shuts the exchange's socket down when time is up ----------------

_current = threading.local()


#: The watchdog's longest wait in one step, in seconds (well under ``threading.TIMEOUT_MAX``).
_LONGEST_WAIT = 3600.0


class _Watchdog:
    """One thread that calls each watched exchange's ``expire`` at its deadline, for every
    exchange of the process: a ``threading.Timer`` per exchange started a thread per request (a
    tenth of a one-device call's CPU, issue 19). An entry dropped before its deadline is only
    marked; the heap is rebuilt without them once they are most of it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._heap: List[List[Any]] = []  # [when, sequence, exchange or None once dropped]
        self._sequence = itertools.count()
        self._dropped = 0
        self._thread: Optional[threading.Thread] = None

    def watch(self, seconds: float, exchange: _Exchange) -> List[Any]:
        entry = [time.monotonic() + seconds, next(self._sequence), exchange]
        with self._changed:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="uws-adapter-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0] is entry:  # sooner than what the thread waits for
                self._changed.notify()
        return entry

    def drop(self, entry: List[Any]) -> None:
        with self._changed:
            if entry[2] is None:
                return
            entry[2] = None
            self._dropped += 1
            if self._dropped > 256 and self._dropped * 2 > len(self._heap):
                self._heap = [kept for kept in self._heap if kept[2] is not None]
                heapq.heapify(self._heap)
                self._dropped = 0

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                        self._dropped -= 1
                    if not self._heap:
                        self._changed.wait()
                        continue
                    left = self._heap[0][0] - time.monotonic()
                    if left <= 0:
                        entry = heapq.heappop(self._heap)
                        break
                    # In steps: a deadline the options accept (any finite seconds) may be longer
                    # than a lock can wait (OverflowError), which would end this thread.
                    self._changed.wait(min(left, _LONGEST_WAIT))
                due: Optional[_Exchange] = entry[2]
                entry[2] = None
            if due is not None:
                due.expire()


_WATCHDOG = _Watchdog()


def _after_fork() -> None:  # a child has none of its parent's threads, and maybe a lock held by one
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork)


class _Exchange:
    """One exchange's deadline; its socket is learnt when the connection is made (or taken from the pool)."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self.expired = False
        self._done = False
        #: True once one of our own connections served this exchange (then ``sending`` is known).
        self.tracked = False
        #: True once a byte of the request may have been handed to a connected socket.
        self.sending = False
        self._watchdog = _WATCHDOG
        self._entry = self._watchdog.watch(seconds, self)

    def attach(self, sock: Optional[socket.socket]) -> None:
        with self._lock:
            self._sock = sock
            if self.expired and sock is not None:
                _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def finish(self) -> bool:
        """Stop the watchdog; True when the deadline had passed."""
        with self._lock:
            if not self._done:
                self._done = True
                self._watchdog.drop(self._entry)
            return self.expired


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to interrupt
        sock.shutdown(socket.SHUT_RDWR)


def _attach(sock: Optional[socket.socket]) -> None:
    exchange: Optional[_Exchange] = getattr(_current, "exchange", None)
    if exchange is not None and sock is not None:
        exchange.attach(sock)


def _mark(*, tracked: bool = False, sending: bool = False) -> None:
    exchange: Optional[_Exchange] = getattr(_current, "exchange", None)
    if exchange is not None:
        exchange.tracked = exchange.tracked or tracked
        exchange.sending = exchange.sending or sending


class _SendTracking:
    """Knows whether a byte of the request may have left: ``send`` on a connected socket, outside
    ``connect`` (a proxy's CONNECT goes through ``send`` too, and is not the request). Everything
    http.client and urllib3 write goes through ``send``."""

    sock: Any
    auto_open: int
    _connecting = False

    def connect(self) -> None:
        self._connecting = True
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self._connecting = False
        _attach(self.sock)

    def send(self, data: Any) -> None:
        if self.sock is None and self.auto_open and not self._connecting:
            self.connect()  # what http.client's send would do first, so that a failure here is "not sent"
        if not self._connecting:
            _mark(sending=True)
        super().send(data)  # type: ignore[misc]


class _TrackedHTTPConnection(_SendTracking, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_SendTracking, HTTPSConnection):
    pass


class _PoolTracking:
    """Marks the exchange served by one of our connections, and attaches the socket of a kept-alive one."""

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        _mark(tracked=isinstance(conn, _SendTracking))
        _attach(getattr(conn, "sock", None))  # a kept-alive connection is already open
        return conn


class _TrackedHTTPPool(_PoolTracking, HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(_PoolTracking, HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """A requests transport adapter whose connections the deadline watchdog can interrupt, headers
    included. Mount it on a session you pass in that has adapters of its own (plain ones are replaced)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


def with_deadline_adapters(session: requests.Session) -> requests.Session:
    for prefix in ("http://", "https://"):
        adapter = session.adapters.get(prefix)
        if type(adapter) is HTTPAdapter:  # the default: same settings, interruptible connections
            session.mount(
                prefix,
                DeadlineAdapter(
                    pool_connections=getattr(adapter, "_pool_connections", 10),
                    pool_maxsize=getattr(adapter, "_pool_maxsize", 10), max_retries=adapter.max_retries,
                    pool_block=getattr(adapter, "_pool_block", False),
                ),
            )  # fmt: skip
    return session


class OriginSession(requests.Session):
    """A :class:`requests.Session` that keeps requests' own reading of the environment's proxy and
    CA settings per origin (scheme, host, port) from the first request there, since requests walks
    the whole environment every time (a tenth of a millisecond a request, issue 19). A change to the
    environment is seen by the next session. Proxies passed with a request, and ``trust_env = False``,
    are left to requests, every time."""

    #: Origins kept per session (a client talks to one or two; the emulator to its listeners).
    MAX_ORIGINS = 256

    def __init__(self) -> None:
        super().__init__()
        self._origins: Dict[Tuple[Any, ...], Dict[str, Any]] = {}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        # requests pickles (and copy.copy copies) only the attributes it names: without this, a
        # copied or unpickled session had no cache, and its first request was an AttributeError.
        super().__setstate__(state)  # type: ignore[misc]  # in requests, not in its stubs
        self._origins = {}

    # Any: requests' stubs name the settings with a TypedDict of their own (private).
    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        if proxies or not self.trust_env:
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        try:
            parts = urlsplit(url)
            # What requests reads of the URL is its host (lower case) and port: the origin, without a
            # user and password in it (neither kept here nor a key of its own). The session's own
            # settings are part of the key: one changed after a request is seen.
            key = (
                parts.scheme, parts.hostname, parts.port, stream, verify, cert,
                None if self.proxies is None else tuple(self.proxies.items()), self.stream, self.verify, self.cert,
            )  # fmt: skip
            settings = self._origins.get(key)
        except (AttributeError, TypeError, ValueError):
            # A setting that cannot be a key (a list for cert=, proxies not a dict) or a port urlsplit
            # refuses: requests reads it all, as it would without us.
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        if settings is None:
            settings = dict(super().merge_environment_settings(url, {}, stream, verify, cert))
            if len(self._origins) >= self.MAX_ORIGINS:
                self._origins.clear()
            self._origins[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}  # requests may change what it is given


def exchange(
    session: requests.Session, options: SendOptions, method: str, url: str, headers: Mapping[str, str],
    data: Optional[bytes], auth: Optional[Tuple[str, str]] = None, verify: bool = True,
) -> Answer:  # fmt: skip
    """One attempt, never following a redirect. Raises :class:`NotSent` when no byte left,
    :class:`LimitExceeded` for the deadline or the cap, or the ``requests`` exception of a failure
    after the request may have left."""
    watch = _Exchange(options.deadline)
    _current.exchange = watch
    response: Optional[requests.Response] = None
    try:
        # Each wait is also capped by the deadline, so that a connect or a read never outlives it.
        timeout = (min(options.timeout[0], options.deadline), min(options.timeout[1], options.deadline))
        try:
            response = session.request(
                method, url, data=data, headers=dict(headers), timeout=timeout, allow_redirects=False, stream=True,
                auth=auth, verify=verify,
            )  # fmt: skip
        except UnicodeEncodeError as exc:
            # http.client writes headers (and requests the Basic keys) in ISO-8859-1, before a byte of
            # the request is sent: a header that cannot be written, named as requests names the others.
            raise requests.exceptions.InvalidHeader(f"a header value {exc.reason} (not ISO-8859-1)") from None
        # A session with adapters of its own: interruptible from here on at least.
        _attach(getattr(getattr(response.raw, "connection", None), "sock", None))
        content = _read(response, options.max_answer_bytes)
        if watch.finish():
            raise LimitExceeded(cap=False)
        return Answer(response.status_code, response.headers, content)
    except requests.RequestException as exc:
        expired = watch.finish()
        sent = watch.sending if watch.tracked else not never_sent(exc)
        if not sent or isinstance(exc, Unsendable):
            raise NotSent(exc) from exc
        if expired:  # the watchdog's shutdown surfaces as a reset or a timeout: say what it was
            raise LimitExceeded(cap=False) from None
        raise
    finally:
        watch.finish()
        _current.exchange = None
        if response is not None:
            response.close()


def _read(response: requests.Response, limit: int) -> bytes:
    parts: List[bytes] = []
    size = 0
    raw = response.raw
    while True:
        try:
            # decode_content: the cap counts decompressed bytes, a chunk at a time.
            chunk = raw.read(_CHUNK, decode_content=True)
        except ReadTimeoutError as exc:
            raise requests.ReadTimeout(exc) from exc
        except (OSError, HTTPError, HTTPException) as exc:  # a reset, or the watchdog's shutdown
            raise requests.ConnectionError(exc) from exc
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise LimitExceeded(cap=True)
        parts.append(chunk)
