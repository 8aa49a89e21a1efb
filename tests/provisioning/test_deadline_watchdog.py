"""The deadline watchdog shared by every exchange of a process (provisioning/transport.py): each
watched exchange is expired at its deadline, in deadline order, by one thread; one dropped before its
deadline never is; dropped entries do not pile up. Waits on events, times nothing."""

from __future__ import annotations

import threading
from typing import Any, List

from uws_adapter.provisioning.transport import _Watchdog


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
