"""Module locks that a forked child gets anew.

A process may fork while one of its threads holds a module's lock (multiprocessing's fork beside
threads that build envelopes or load the zeep bindings). The child has none of the parent's
threads, so nothing would ever release that lock there: its first use would wait forever. Every
:class:`ForkSafeLock` is replaced by a free one in the child (``os.register_at_fork``), one
mechanism for every module lock of the package.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["ForkSafeLock"]


class ForkSafeLock:
    """A ``threading.Lock`` to use with ``with``, free again in a forked child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _LOCKS.add(self)

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


_LOCKS: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


def _after_fork() -> None:
    for lock in list(_LOCKS):
        lock._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork)
