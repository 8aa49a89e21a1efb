"""The threads that commit the ASGI receiver's groups, and the hand-over between them and the loop.

Why not an executor: a ``run_in_executor`` per group woke a committer thread for every group and the
loop again for its answer, through two futures chained across the threads; each wake-up is a trade
of the GIL between the two threads (a futex wake and a context switch, 136-180 µs of CPU a group on
the 2-core machine of docs/performance.md, seventh round). Here the loop appends each group to a
queue and wakes a committer only when one is idle; a committer whose commit ends takes what was
queued meanwhile itself (all of it, up to ``max_batch`` callbacks: one group), so that a group
handed over while every committer commits needs no wake-up (under wrk, with two committers, a third
to a half of the groups). Each group's answers go back to the loop in one ``call_soon_threadsafe``,
the committer's last step before it commits the next group or sleeps.

The loop's side (:meth:`Committers.hand_over`) and a committer's (:meth:`Committers._take`) decide
under one lock, held for a few list operations, so that a group is never left queued while every
committer sleeps. Committers are started with the first groups (never before a server forks its
workers) and stopped by :meth:`Committers.close`, which lets them commit everything queued first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Any, Callable, Deque, Generic, List, Optional, Sequence, Tuple, TypeVar

from uws_adapter.errors import StoreError
from uws_adapter.store.interfaces import Outcome

_log = logging.getLogger("uws_adapter.receiver")

#: One parked item: what to commit, and the loop's future its answer waits on.
Item = TypeVar("Item")
#: A group: the loop that answers it, and its items in arrival order.
Group = Tuple[asyncio.AbstractEventLoop, List[Item]]


class ShuttingDown(StoreError):
    """A group handed over after :meth:`Committers.close`: nothing of it is committed."""


class _Sleeper:
    """One committer thread's wake-up: a lock it blocks on while idle (released by whoever hands
    it a group), and the group handed to it."""

    __slots__ = ("group", "lock", "thread")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()  # held: the thread's next acquire sleeps until it is released
        self.group: Optional[Any] = None
        self.thread: Optional[threading.Thread] = None


class Committers(Generic[Item]):
    """``count`` threads committing groups of items handed over by an event loop.

    ``commit(items)`` runs in a committer thread and returns one outcome per item (it must not
    raise: what it cannot commit it answers as failed); ``answer(items, outcomes)`` then runs in
    the loop's thread, once per group."""

    def __init__(
        self,
        commit: Callable[[List[Item]], Sequence[Outcome]],
        answer: Callable[[List[Item], Sequence[Outcome]], None],
        *,
        count: int,
        max_batch: int,
        name: str = "uws-commit",
    ) -> None:
        self._commit = commit
        self._answer = answer
        self.count = max(1, count)
        self.max_batch = max(1, max_batch)
        self.name = name
        self._mutex = threading.Lock()
        self._queue: Deque[Group[Item]] = collections.deque()
        self._idle: List[_Sleeper] = []
        self._sleepers: List[_Sleeper] = []
        self._stopping = False
        #: Set by :meth:`close` once nothing more is taken (it then waits for what was).
        self.closing = threading.Event()
        #: Groups a committer took from the queue itself (no wake-up), and groups handed to a
        #: sleeping or new committer: how the hand-over went, for tests and benchmarks.
        self.taken = 0
        self.woken = 0

    @property
    def queued(self) -> int:
        """Groups handed over and waiting for a committer."""
        return len(self._queue)

    def threads(self) -> List[threading.Thread]:
        """The committer threads started so far."""
        return [sleeper.thread for sleeper in self._sleepers if sleeper.thread is not None]

    def hand_over(self, loop: asyncio.AbstractEventLoop, items: List[Item]) -> None:
        """Commit ``items`` (in the loop's thread; the list becomes the committers'): to an idle
        committer, else queued for the next committer whose commit ends."""
        if not items:
            return
        chunks = [items] if len(items) <= self.max_batch else [
            items[start : start + self.max_batch] for start in range(0, len(items), self.max_batch)
        ]  # fmt: skip
        wake: List[_Sleeper] = []
        with self._mutex:
            if self._stopping:
                raise ShuttingDown("the receiver is shutting down")
            for chunk in chunks:
                sleeper = self._idle.pop() if self._idle else self._start()
                if sleeper is None:
                    self._queue.append((loop, chunk))
                else:
                    sleeper.group = (loop, chunk)
                    wake.append(sleeper)
            if not self._sleepers:  # not one thread could be started: none of these will be committed
                self._queue.clear()
                raise StoreError("no committer thread could be started (see the log)")
        self.woken += len(wake)
        for sleeper in wake:
            sleeper.lock.release()

    def close(self) -> None:
        """Commit what is queued, then stop the threads (blocking: call it off the loop, whose
        thread answers the last groups)."""
        with self._mutex:
            self._stopping = True
            idle, self._idle = self._idle, []
            sleepers = list(self._sleepers)
        self.closing.set()
        for sleeper in idle:  # group None: woken to see that it is to stop
            sleeper.lock.release()
        for sleeper in sleepers:
            if sleeper.thread is not None and sleeper.thread is not threading.current_thread():
                sleeper.thread.join()

    def _start(self) -> Optional[_Sleeper]:
        """Another committer thread (under the mutex), or None when there are ``count`` already or
        the system would not start one (then those started go on alone)."""
        if len(self._sleepers) >= self.count:
            return None
        sleeper = _Sleeper()
        thread = threading.Thread(
            target=self._run, args=(sleeper,), name=f"{self.name}_{len(self._sleepers)}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": out of threads or memory
            _log.error("a committer thread could not be started: %s", exc)
            return None
        sleeper.thread = thread
        self._sleepers.append(sleeper)
        return sleeper

    def _run(self, me: _Sleeper) -> None:
        while True:
            me.lock.acquire()  # asleep until handed a group, or told to stop (no group)
            group, me.group = me.group, None
            if group is None:
                return
            while group is not None:
                loop, items = group
                try:
                    outcomes = self._commit(items)
                except Exception as exc:  # commit answers its own failures: a bug, but answered
                    _log.exception("a committer thread failed on a group of %d", len(items))
                    outcomes = [Outcome(error=exc)] * len(items)
                group, idle = self._take(me)
                try:  # noqa: SIM105 (a try costs nothing until it raises; suppress() is a call)
                    # The last step before the next commit or the sleep: the loop, woken by it,
                    # finds the GIL free the sooner.
                    loop.call_soon_threadsafe(self._answer, items, outcomes)
                except RuntimeError:  # the loop is closed: nobody waits for these answers
                    pass
            if not idle:  # stopping, and nothing is queued
                return

    def _take(self, me: _Sleeper) -> Tuple[Optional[Group[Item]], bool]:
        """The next group: everything queued, up to ``max_batch`` items (of one loop). Else None,
        and whether ``me`` is now idle (False: stopped by :meth:`close`)."""
        with self._mutex:
            queue = self._queue
            if not queue:
                if self._stopping:
                    return None, False
                self._idle.append(me)
                return None, True
            loop, items = queue.popleft()
            while queue and queue[0][0] is loop and len(items) + len(queue[0][1]) <= self.max_batch:
                items.extend(queue.popleft()[1])
            self.taken += 1
            return (loop, items), False


__all__ = ["Committers", "ShuttingDown"]
