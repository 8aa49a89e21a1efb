"""The deadline watchdog shared by every exchange of a process (provisioning/transport.py): each
watched exchange is expired at its deadline, in deadline order, by one thread; one dropped before its
deadline never is; dropped entries do not pile up. Waits on events, times nothing."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List, Set

import pytest
import requests
from forking import forked_while_held
from test_client_limits import HostileServer, trickled_body

from uws_adapter.provisioning import transport
from uws_adapter.provisioning.options import SendOptions
from uws_adapter.provisioning.transport import LimitExceeded, _Watchdog, with_deadline_adapters


class _Exchange:
    def __init__(self, name: str, order: List[str]) -> None:
        self.name, self.order = name, order
        self.expired = threading.Event()

    def expire(self) -> None:
        self.order.append(self.name)
        self.expired.set()


def _watch(watchdog: _Watchdog, seconds: float, exchange: _Exchange) -> List[Any]:
    return watchdog.watch(seconds, exchange)  # type: ignore[arg-type]


def test_each_exchange_expires_at_its_deadline_in_order_and_a_dropped_one_never() -> None:
    watchdog, order = _Watchdog(), []  # type: _Watchdog, List[str]
    late, soon, dropped, later = (_Exchange(name, order) for name in ("late", "soon", "dropped", "later"))
    _watch(watchdog, 0.6, late)
    _watch(watchdog, 0.0, soon)  # sooner than what the thread already waits for: it is woken
    watchdog.drop(_watch(watchdog, 0.05, dropped))
    _watch(watchdog, 0.8, later)
    assert later.expired.wait(10)
    assert order == ["soon", "late", "later"]  # the dropped one's deadline came and went unheard
    assert not dropped.expired.is_set()


def test_one_thread_for_every_exchange_and_dropped_entries_do_not_pile_up() -> None:
    watchdog, order = _Watchdog(), []  # type: _Watchdog, List[str]
    kept = _Exchange("kept", order)
    _watch(watchdog, 3600.0, kept)
    for n in range(1000):
        watchdog.drop(_watch(watchdog, 3600.0 + n, _Exchange(str(n), order)))
    threads = [t for t in threading.enumerate() if t.name == "uws-adapter-deadlines" and t is watchdog._thread]
    assert len(threads) == 1
    assert len(watchdog._heap) <= 600  # rebuilt without the dropped ones as they became most of it
    assert [entry[2] for entry in watchdog._heap if entry[2] is not None] == [kept]
    assert order == []


def test_a_deadline_of_centuries_does_not_end_the_thread_that_serves_every_other() -> None:
    """A deadline the options accept (any finite number of seconds) but longer than a lock can
    wait (threading.TIMEOUT_MAX) once ended the watchdog's thread with an OverflowError, and every
    other exchange's deadline with it. The thread must wait for it in steps, and stay the one."""
    watchdog, order = _Watchdog(), []  # type: _Watchdog, List[str]
    soon, later = _Exchange("soon", order), _Exchange("later", order)
    with watchdog._changed:  # both queued before the thread looks: it serves "soon", then waits on centuries
        _watch(watchdog, 1e10, _Exchange("centuries", order))
        _watch(watchdog, 0.0, soon)
    assert soon.expired.wait(10)
    serving = watchdog._thread
    with watchdog._changed:  # the thread is waiting on the centuries-long deadline now (or has died)
        _watch(watchdog, 0.0, later)
    assert later.expired.wait(10)
    assert watchdog._thread is serving  # the same thread, never started again
    assert order == ["soon", "later"]


# The watchdog of the process, serving real exchanges -----------------------------------------------

CONCURRENT = 24


@pytest.fixture
def trickling() -> Iterator[HostileServer]:
    server = HostileServer(trickled_body)
    yield server
    server.close()


def _options() -> SendOptions:
    # Each read well inside its timeout (a byte every 50 ms): only the watchdog can end the exchange.
    return SendOptions(timeout=(2.0, 2.0), deadline=0.3, connect_retries=0)


def _deadline_exchange(url: str) -> object:
    """One real exchange against the trickling server: what it raised (or returned)."""
    session = with_deadline_adapters(requests.Session())
    try:
        return transport.exchange(session, _options(), "POST", url, {"Content-Type": "text/xml"}, b"<a/>")
    except Exception as exc:
        return exc
    finally:
        session.close()


def test_every_concurrent_exchange_ends_at_its_deadline_served_by_one_thread(trickling: HostileServer) -> None:
    start = threading.Barrier(CONCURRENT)
    results: List[object] = [None] * CONCURRENT

    def send(n: int) -> None:
        start.wait()
        results[n] = _deadline_exchange(trickling.url)

    def deadline_threads() -> Set[threading.Thread]:  # the tests' own watchdogs above have theirs
        return {t for t in threading.enumerate() if t.name == "uws-adapter-deadlines"}

    before = deadline_threads()
    threads = [threading.Thread(target=send, args=(n,)) for n in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, LimitExceeded) and not r.cap for r in results), results
    watchdog = transport._WATCHDOG
    assert deadline_threads() - before <= {watchdog._thread}  # one thread for the process, whatever the exchanges
    assert watchdog._thread is not None
    assert watchdog._thread.is_alive()
    assert [entry for entry in watchdog._heap if entry[2] is not None] == []  # no exchange kept


def test_a_forked_child_has_a_working_watchdog_even_if_a_parent_thread_held_it(trickling: HostileServer) -> None:
    """A thread of the parent holds the watchdog's lock when the process forks (as uvicorn's or
    multiprocessing's fork may happen at any moment): the child has no such thread, and must still
    end its own exchanges at their deadline."""
    transport._WATCHDOG.watch(3600.0, _Exchange("started", []))  # the parent's thread is running

    def exchange() -> bytes:
        result = _deadline_exchange(trickling.url)
        ok = isinstance(result, LimitExceeded) and not result.cap
        return b"deadline" if ok else repr(result).encode()

    assert forked_while_held(transport._WATCHDOG._changed, exchange) == b"deadline"
