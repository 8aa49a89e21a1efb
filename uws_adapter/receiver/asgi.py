"""The receiver as an ASGI application, for uvicorn: the same protocol as the WSGI
:class:`~uws_adapter.receiver.Receiver` (it delegates every decision to it), with group commits.

Why: under WSGI each callback holds a worker thread while it waits for the writer thread, and the
two trade the GIL for every callback. Here a request parks on a future, and what is parked at the
end of a loop iteration is handed to a committer thread as one group: written in one transaction
and committed durably (one fsync, during which the GIL is free and the loop goes on parsing what
becomes the next group). Only then are the group's acknowledgements sent. Two groups may be
committing at once (:data:`COMMITTERS`): the next is written while the last one's fsync runs. A
committer whose commit ends takes what was handed over meanwhile itself, so that a group handed
over while both commit costs no thread a wake-up (see :mod:`uws_adapter.receiver.committers`).

The loop itself never waits for the database: a commit stuck behind another process's write lock
costs its group a 503 after ``commit_timeout`` seconds (the store's lock wait is bounded too), while
``/health`` and the parsing of other requests go on.

    uvicorn --factory uws_adapter.receiver.asgi:create_app --port 8081

(configured by the same environment variables as :mod:`uws_adapter.receiver.wsgi`), or
``uws-adapter receiver --server uvicorn``. Only the latter bounds connections (a limit, and
deadlines for idle, slow-header and slow-body clients, which plain uvicorn lacks): in a program,
merge :func:`uws_adapter.serving.uvicorn_options` over :func:`server_config`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, cast

from uws_adapter import metrics
from uws_adapter.edge import Answer, Message, Receive, Scope, Send, over_the_cap
from uws_adapter.errors import StoreError
from uws_adapter.receiver.app import _JSON_ACK, _XML_ACK, Intake, Probe, Receiver
from uws_adapter.receiver.committers import Committers
from uws_adapter.store.interfaces import Outcome, ReceiverStore, Write
from uws_adapter.waits import check_seconds

#: Bodies up to this size are read in the loop's thread (a carrier callback is about 1.5 KiB and
#: reads in a fraction of a millisecond); larger ones in a reader thread, so that a flood of large
#: bodies, even bounded ones, never holds the loop that answers everyone else.
INLINE_BODY = 16 * 1024
#: Reader threads: bodies read at once off the loop (the rest wait their turn, not the loop).
READERS = 2

#: Groups committed at once by one process. Two: while one group waits for its fsync (which the
#: SQLite store makes after letting the write lock go, and PostgreSQL makes on its own) the next
#: group is written, instead of waiting its turn behind that fsync.
COMMITTERS = 2

#: A callback waiting for its group's commit: what it stores, and the future its answer waits on.
Parked = Tuple[Intake, "asyncio.Future[Any]"]


class AsyncReceiver:
    """ASGI application over a :class:`Receiver` (its store, credentials, limits and handlers).
    With ``owns_store`` (as :func:`create_app` makes it), the server's lifespan shutdown closes the
    receiver's handlers and then its store, once the last group is committed: a SQLite store is
    left without its ``-wal``/``-shm`` files, a PostgreSQL pool is closed."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        commit_timeout: Optional[float] = None,
        committers: int = COMMITTERS,
        owns_store: bool = False,
    ) -> None:
        self.receiver = receiver
        self.owns_store = owns_store
        self.store: ReceiverStore = receiver.store
        #: How long a callback waits for its group's commit before it is answered 503.
        # A timer of the event loop's: NaN or infinity would be put in its queue of timers as they are.
        self.commit_timeout = (
            check_seconds("commit_timeout", commit_timeout, "15") if commit_timeout is not None
            else self.store.lock_timeout + 5.0
        )  # fmt: skip
        self._parked: List[Parked] = []
        # Every waiting callback's deadline, in arrival order (so in deadline order), and the one
        # timer that expires them: the head's (see _watch).
        self._deadlines: Deque[Tuple[float, asyncio.Future[Any]]] = collections.deque()
        self._watchdog: Optional[asyncio.TimerHandle] = None
        self._scheduled = False
        # max_batch 1 is the one-commit-per-callback baseline.
        self.committers: Committers[Parked] = Committers(
            self._commit_items, self._answer, count=committers, max_batch=max(1, self.store.max_batch)
        )
        self._readers = concurrent.futures.ThreadPoolExecutor(READERS, thread_name_prefix="uws-read")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        # Only the four headers the screen reads are decoded; the last of each counts, as ever.
        length = encoding = content_type = coding = None
        for name, value in scope["headers"]:
            lowered = name.lower()
            if lowered == b"content-length":
                length = value.decode("latin-1")
            elif lowered == b"content-type":
                content_type = value.decode("latin-1")
            elif lowered == b"content-encoding":
                encoding = value.decode("latin-1")
            elif lowered == b"transfer-encoding":
                coding = value.decode("latin-1")
        raw_path = scope.get("raw_path")  # as sent; uvicorn's "path" is decoded
        target = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else scope["path"]
        screened = self.receiver.screen(scope["method"], target, length, encoding, content_type, coding=coding)
        if isinstance(screened, Answer):
            await _send(send, screened)
            return
        if isinstance(screened, Probe):  # it reads the store: never in the loop's thread
            await _send(send, await asyncio.get_running_loop().run_in_executor(None, screened.answer))
            return
        length, media_type = screened
        # A callback's body comes in one message (uvicorn hands over what it has read of a small
        # body at once): taken as it is, without the general reader's list and join.
        message = await receive()
        if length < 0:  # chunked: read as it comes, within the cap, as waitress reads it
            body = await _read_body(receive, self.receiver.max_body, message, exact=False)
            if body is _OVER:
                await _send(send, self.receiver.refuse(over_the_cap(self.receiver.max_body)))
                return
        elif message["type"] == "http.request" and not message.get("more_body", False):
            body = message.get("body", b"")
            if len(body) != length:
                body = None
        else:
            body = await _read_body(receive, length, message)
        if body is None:
            mismatch = self.receiver.refuse(Answer.text(400, "the body does not match its Content-Length", close=True))
            await _send(send, mismatch)
            return
        loop = asyncio.get_running_loop()
        if len(body) <= INLINE_BODY:
            decided = self.receiver.intake(body, media_type)
        else:
            decided = await loop.run_in_executor(self._readers, self.receiver.intake, body, media_type)
        if isinstance(decided, Answer):
            await _send(send, decided)
            return
        committed: asyncio.Future[Any] = loop.create_future()
        self._parked.append((decided, committed))
        if not self._scheduled:
            self._scheduled = True
            # call_soon runs after the requests already scheduled in this loop iteration, so
            # everything that arrived together is committed together.
            loop.call_soon(self._start_groups)
        # A timeout answers 503 and leaves the group's outcome to the committer (which skips a
        # future already done). One timer for every waiting callback (_watch), where a timer per
        # callback cost its making and cancelling (3 us), and wait_for and shield a task's worth
        # of futures and callbacks.
        self._deadlines.append((loop.time() + self.commit_timeout, committed))
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._deadlines[0][0], self._watch)
        try:
            await committed
        except Exception as exc:
            self.receiver.not_stored(decided, exc)
            if decided.is_callback:
                metrics.callback_refused(decided.unstored.status)
            await _send(send, decided.unstored)
            return
        await _send(send, decided.stored)  # counted by _commit_chunk (Receiver.committed_group)

    def _watch(self) -> None:
        """Answer 503 to every callback whose deadline has passed (its future fails), forget those
        already answered, and wait for the next deadline."""
        self._watchdog = None
        self._forget_answered()
        deadlines = self._deadlines
        if not deadlines:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        while deadlines and (deadlines[0][0] <= now or deadlines[0][1].done()):
            _expire(deadlines.popleft()[1], self.commit_timeout)
        if deadlines:
            self._watchdog = loop.call_at(deadlines[0][0], self._watch)

    def _forget_answered(self) -> None:
        # Callbacks are answered about in arrival order: the head's are popped as their groups end,
        # so that the deadlines held are those of the callbacks still waiting (and a few behind them).
        deadlines = self._deadlines
        while deadlines and deadlines[0][1].done():
            deadlines.popleft()

    def _start_groups(self) -> None:
        """Hand what is parked to the committers as one group (queued when both are committing:
        the first whose commit ends takes it, with whatever else is queued by then)."""
        self._scheduled = False
        parked, self._parked = self._parked, []
        try:
            self.committers.hand_over(asyncio.get_running_loop(), parked)
        except StoreError as exc:  # after the lifespan's shutdown (ShuttingDown), or no thread at all
            self._answer(parked, [Outcome(error=exc)] * len(parked))

    def _commit_items(self, parked: List[Parked]) -> Sequence[Outcome]:
        # In a committer thread. Looked up on every group (not bound once) for the benchmarks,
        # which time _commit by wrapping it.
        return self._commit([intake.write for intake, _ in parked])

    def _answer(self, parked: List[Parked], outcomes: Sequence[Outcome]) -> None:
        """Answer a group's callbacks' futures with its outcomes (in the loop's thread, once a
        committer is done with the group)."""
        committed: List[Tuple[Intake, Any]] = []
        for (intake, future), outcome in zip(parked, outcomes):
            if future.done():  # the client went away, or its wait ran out (answered 503)
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.result)
                committed.append((intake, outcome.result))
        # Counted here for the group at once (as Receiver.committed counts one), before any of
        # its answers is sent: each answer is sent after this callback returns.
        self.receiver.committed_group(committed)
        self._forget_answered()

    def _commit(self, writes: List[Write]) -> Sequence[Outcome]:
        started = time.perf_counter()
        try:
            return self.store.commit_group(writes)
        except Exception as exc:  # no connection, or the store refused: nothing of this group is stored
            return [Outcome(error=exc)] * len(writes)
        finally:
            metrics.commit_group(len(writes), time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Everything handed over is committed and answered first: the loop goes on (it
                # sends those answers) while another thread waits for the committers.
                await asyncio.get_running_loop().run_in_executor(None, self.committers.close)
                self._readers.shutdown(wait=False)
                if self.owns_store:
                    self.receiver.close()
                    cast(Any, self.store).close()  # every store has close(); the protocol names what intake uses
                await send({"type": "lifespan.shutdown.complete"})
                return


#: What :func:`_read_body` returns for a chunked body over the cap.
_OVER = b"\x00over"


async def _read_body(receive: Receive, length: int, message: Message, *, exact: bool = True) -> Optional[bytes]:
    """The body of ``length`` bytes (not ``exact``: at most ``length``, else :data:`_OVER`) whose
    first message is ``message``; None when the client went away or sent more or fewer bytes."""
    parts: List[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":
            return None  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > length:
            return None if exact else _OVER
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts) if size == length or not exact else None
        message = await receive()


def _expire(committed: asyncio.Future[Any], timeout: float) -> None:
    if not committed.done():
        committed.set_exception(asyncio.TimeoutError(f"no commit within {timeout} s"))


# The encoded headers of the answers sent to every stored callback, made once.
_HEADERS: Dict[int, List[Tuple[bytes, bytes]]] = {}


def _encoded(answer: Answer) -> List[Tuple[bytes, bytes]]:
    # Connection: close when the answer says so: an unread body must not be taken for the next request.
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.header_list()]


for _constant in (_XML_ACK, _JSON_ACK):
    _HEADERS[id(_constant)] = _encoded(_constant)


async def _send(send: Send, answer: Answer) -> None:
    headers = _HEADERS.get(id(answer)) or _encoded(answer)
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def create_app() -> AsyncReceiver:
    """An AsyncReceiver configured from the environment, as :func:`uws_adapter.receiver.wsgi.create_app`;
    it owns its store (closed at the server's shutdown)."""
    from uws_adapter.receiver.wsgi import create_app as create_wsgi_app

    return AsyncReceiver(create_wsgi_app(), owns_store=True)


def server_config(app: Optional[AsyncReceiver] = None, **options: Any) -> Dict[str, Any]:
    """uvicorn options for the receiver: its fastest HTTP parser and loop when installed, no access
    log, no proxy-header rewriting (the receiver does not use client addresses)."""
    chosen: Dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "on", "proxy_headers": False}
    try:
        import httptools  # noqa: F401

        chosen["http"] = "httptools"
    except ImportError:
        chosen["http"] = "h11"
    try:
        import uvloop  # noqa: F401

        chosen["loop"] = "uvloop"
    except ImportError:
        chosen["loop"] = "asyncio"
    return {**chosen, **options}
