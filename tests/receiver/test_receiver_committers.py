"""The ASGI receiver's committer threads (uws_adapter.receiver.committers), driven by ASGI messages in
one process on a real SQLite store whose commits wait at a gate the test opens: groups handed over
while a commit runs are taken by the same thread without a wake-up; nothing is answered before its
commit; a failed commit answers each of its callbacks as it should; duplicates stay one event; the
lifespan's shutdown commits and answers everything handed over first. No timing: the tests wait on
the gate's semaphore and on loop iterations."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any, Dict, List, MutableMapping, Optional, Sequence, Set, Tuple

import pytest

from uws_adapter import CallbackRequest, ReportedDevice, render_callback
from uws_adapter.errors import StoreError
from uws_adapter.receiver import committers as committers_module
from uws_adapter.receiver.app import Receiver
from uws_adapter.receiver.asgi import AsyncReceiver
from uws_adapter.receiver.committers import Committers, ShuttingDown
from uws_adapter.store.interfaces import Outcome, Write
from uws_adapter.store.sqlite import Store

#: Loop iterations a condition of the loop's own thread may take to hold (each a sleep(0)).
ITERATIONS = 1000
#: Seconds a test waits for a committer thread before it fails (only a hung committer waits this long).
BOUND = 30.0


class GatedStore(Store):
    """A real store whose commits wait until :attr:`gate` is set, each telling :attr:`entered`
    first; it records each group's committing thread and size, and fails the groups numbered in
    :attr:`fail` (1 is the first) as a full disk would."""

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.groups: List[Tuple[str, int]] = []
        self.fail: Set[int] = set()

    def commit_group(self, writes: Sequence[Write]) -> List[Outcome]:
        self.groups.append((threading.current_thread().name, len(writes)))
        self.entered.release()
        if not self.gate.wait(BOUND):
            raise StoreError("the test's gate never opened")
        if len(self.groups) in self.fail:
            raise StoreError("disk full (injected)")
        return super().commit_group(writes)


def body(n: int, count: int = 1) -> bytes:
    return render_callback(
        CallbackRequest(
            "r-1", (ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService", action="Suspend",
            status="Success", callback_count=count,
        )
    )  # fmt: skip


class Delivery:
    """One callback POST to the app: the answer's status once sent, and whether its event was in the
    store when the answer was sent."""

    def __init__(self, app: AsyncReceiver, document: bytes, store: Store) -> None:
        self.status: Optional[int] = None
        self.stored_when_answered: Optional[bool] = None
        self._app, self._document, self._store = app, document, store
        self._device = _device(document)
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        scope = {
            "type": "http", "method": "POST", "path": "/", "raw_path": b"/", "client": ("127.0.0.1", 50000),
            "headers": [(b"content-type", b"text/xml"), (b"content-length", str(len(self._document)).encode())],
        }  # fmt: skip

        async def receive() -> Dict[str, Any]:
            return {"type": "http.request", "body": self._document, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                if self.status == 200:  # read while the answer is being sent: committed by then?
                    self.stored_when_answered = self._device in stored_devices(self._store)

        await self._app(scope, receive, send)


def _device(document: bytes) -> Optional[str]:
    start = document.find(b"<Identifier>")
    return document[start + 12 : document.find(b"</Identifier>")].decode() if start >= 0 else None


def stored_devices(store: Store) -> Set[str]:
    return {device.identifier for event in store.events(request_id="r-1") for device in event.callback.devices}


async def until(condition: Any) -> None:
    """Yield to the loop until ``condition()`` holds (it is the loop's own doing: a few iterations)."""
    for _ in range(ITERATIONS):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the loop never got there")


async def entered(store: GatedStore) -> None:
    """Until a committer thread is in its commit (waiting at the gate)."""
    got = await asyncio.get_running_loop().run_in_executor(None, store.entered.acquire, True, BOUND)
    assert got, "no commit began"


@pytest.fixture
def store(tmp_path: Path) -> GatedStore:
    return GatedStore(tmp_path / "callbacks.db")


def test_groups_handed_over_during_a_commit_are_taken_by_the_same_thread_without_a_wake_up(store: GatedStore) -> None:
    app = AsyncReceiver(Receiver(store, allow_anonymous=True), committers=1)

    async def run() -> List[Delivery]:
        first = Delivery(app, body(1), store)
        await entered(store)
        second = Delivery(app, body(2), store)
        await until(lambda: app.committers.queued == 1)
        third = Delivery(app, body(3), store)  # another loop iteration: another hand-over
        await until(lambda: app.committers.queued == 2)
        deliveries = [first, second, third]
        assert [d.status for d in deliveries] == [None, None, None]  # nothing answered before its commit
        store.gate.set()
        await asyncio.gather(*(d.task for d in deliveries))
        return deliveries

    try:
        deliveries = asyncio.run(run())
        assert [(d.status, d.stored_when_answered) for d in deliveries] == [(200, True)] * 3
        # One thread, woken once: the two groups queued during its commit became its next group.
        [thread] = {name for name, _ in store.groups}
        assert thread.startswith("uws-commit")
        assert [size for _, size in store.groups] == [1, 2]
        assert (app.committers.woken, app.committers.taken) == (1, 1)
        assert store.counts()["events"] == 3
    finally:
        store.gate.set()
        app.committers.close()
        store.close()


def test_a_taken_group_is_never_larger_than_the_stores_max_batch(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "callbacks.db", max_batch=2)
    app = AsyncReceiver(Receiver(store, allow_anonymous=True), committers=1)

    async def run() -> List[Delivery]:
        deliveries = [Delivery(app, body(0), store)]
        await entered(store)
        for n in range(1, 4):
            deliveries.append(Delivery(app, body(n), store))
            await until(lambda n=n: app.committers.queued == n)  # type: ignore[misc]
        store.gate.set()
        await asyncio.gather(*(d.task for d in deliveries))
        return deliveries

    try:
        deliveries = asyncio.run(run())
        assert [d.status for d in deliveries] == [200] * 4
        assert [size for _, size in store.groups] == [1, 2, 1]
        assert store.counts()["events"] == 4
    finally:
        store.gate.set()
        app.committers.close()
        store.close()


def test_a_failed_commit_of_a_taken_group_answers_each_of_its_callbacks_and_the_next_are_stored(
    store: GatedStore,
) -> None:
    app = AsyncReceiver(Receiver(store, allow_anonymous=True), committers=1)
    store.fail = {2}  # the group the committer takes itself

    async def run() -> Tuple[List[Delivery], List[Delivery]]:
        first = Delivery(app, body(1), store)
        await entered(store)
        taken = [Delivery(app, body(2), store)]
        await until(lambda: app.committers.queued == 1)
        taken += [Delivery(app, b"<not-a-callback/>", store), Delivery(app, body(3), store)]
        await until(lambda: app.committers.queued == 2)
        store.gate.set()
        await asyncio.gather(first.task, *(d.task for d in taken))
        again = [Delivery(app, body(2), store), Delivery(app, body(3), store)]  # the carrier's re-sends
        await asyncio.gather(*(d.task for d in again))
        return [first, *taken], again

    try:
        before, again = asyncio.run(run())
        # The callbacks of the failed group: 503 (sent again); the malformed document: 400 as ever
        # (its dead letter was in the failed group, so not kept); never a 500.
        assert [d.status for d in before] == [200, 503, 400, 503]
        assert [d.status for d in again] == [200, 200]
        assert [size for _, size in store.groups] == [1, 3, 2]
        counts = store.counts()
        assert (counts["events"], counts["attempts"], counts["dead_letters"]) == (3, 3, 0)
    finally:
        store.gate.set()
        app.committers.close()
        store.close()


def test_duplicates_in_one_group_and_in_a_taken_one_stay_one_event(store: GatedStore) -> None:
    app = AsyncReceiver(Receiver(store, allow_anonymous=True), committers=1)

    async def run() -> List[Delivery]:
        deliveries = [Delivery(app, body(7), store)]
        await entered(store)
        deliveries += [Delivery(app, body(7), store), Delivery(app, body(7, count=2), store)]
        await until(lambda: app.committers.queued == 1)
        store.gate.set()
        await asyncio.gather(*(d.task for d in deliveries))
        return deliveries

    try:
        assert [d.status for d in asyncio.run(run())] == [200] * 3
        counts = store.counts()
        assert (counts["events"], counts["attempts"]) == (1, 3)
    finally:
        store.gate.set()
        app.committers.close()
        store.close()


def test_the_lifespans_shutdown_commits_and_answers_everything_handed_over_first(store: GatedStore) -> None:
    app = AsyncReceiver(Receiver(store, allow_anonymous=True), owns_store=True)
    path = store.path

    async def run() -> Tuple[List[Delivery], List[str], Delivery]:
        messages: asyncio.Queue[Dict[str, str]] = asyncio.Queue()
        said: List[str] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            said.append(message["type"])

        lifespan = asyncio.ensure_future(app({"type": "lifespan"}, messages.get, send))
        await messages.put({"type": "lifespan.startup"})
        await until(lambda: said == ["lifespan.startup.complete"])
        deliveries = [Delivery(app, body(1), store)]
        await entered(store)
        deliveries.append(Delivery(app, body(2), store))
        await entered(store)  # the second committer, woken for the second group
        deliveries.append(Delivery(app, body(3), store))
        await until(lambda: app.committers.queued == 1)
        await messages.put({"type": "lifespan.shutdown"})
        closing = app.committers.closing
        assert await asyncio.get_running_loop().run_in_executor(None, closing.wait, BOUND)
        store.gate.set()
        await lifespan
        late = Delivery(app, body(4), store)  # after the shutdown: not stored, and told so
        await late.task
        return deliveries, said, late

    deliveries, said, late = asyncio.run(run())
    assert said == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert [d.status for d in deliveries] == [200, 200, 200]
    assert late.status == 503
    assert not any(thread.is_alive() for thread in app.committers.threads())
    assert len(app.committers.threads()) == 2
    with sqlite3.connect(path) as db:  # the store was closed by the shutdown: read the file itself
        assert db.execute("SELECT count(*) FROM events").fetchone() == (3,)


def test_a_commit_that_raises_answers_its_items_as_failed_and_the_thread_goes_on() -> None:
    answered: List[Tuple[List[int], List[Optional[BaseException]]]] = []

    def commit(items: List[int]) -> List[Outcome]:
        if 13 in items:
            raise RuntimeError("a bug in the commit (injected)")
        return [Outcome(item * 2) for item in items]

    async def run() -> None:
        finished = asyncio.Event()

        def answer(items: List[int], outcomes: Sequence[Outcome]) -> None:
            answered.append((items, [outcome.error for outcome in outcomes]))
            if len(answered) == 2:
                finished.set()

        committers: Committers[int] = Committers(commit, answer, count=1, max_batch=8)
        loop = asyncio.get_running_loop()
        committers.hand_over(loop, [13, 14])
        committers.hand_over(loop, [1, 2])  # queued behind it, or to the thread once it is idle again
        await asyncio.wait_for(finished.wait(), BOUND)
        await loop.run_in_executor(None, committers.close)
        with pytest.raises(ShuttingDown):
            committers.hand_over(loop, [3])

    asyncio.run(run())
    [(first, errors), (second, fine)] = answered
    assert first == [13, 14]
    assert all(isinstance(error, RuntimeError) for error in errors)
    assert second == [1, 2]
    assert fine == [None, None]


def test_when_no_committer_thread_can_start_the_callbacks_are_answered_503_not_stored(
    store: GatedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Refused(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread (injected)")

    monkeypatch.setattr(committers_module.threading, "Thread", Refused)
    app = AsyncReceiver(Receiver(store, allow_anonymous=True))
    store.gate.set()

    async def run() -> List[Delivery]:
        deliveries = [Delivery(app, body(n), store) for n in range(3)]
        await asyncio.gather(*(d.task for d in deliveries))
        return deliveries

    try:
        assert [d.status for d in asyncio.run(run())] == [503] * 3
        assert store.groups == []
        assert store.counts()["events"] == 0
    finally:
        store.close()
