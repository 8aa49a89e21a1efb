"""A child forked while a thread of the parent holds a lock: what it reports, or that it hung.

multiprocessing (and uvicorn's workers, on some platforms) fork beside running threads. A module
lock held by one of them at that instant stays held in the child forever, where no thread will
release it; code that must work in the child makes its locks anew after a fork. This runs
``work`` in such a child and returns the bytes it reports (at most 300)."""

from __future__ import annotations

import os
import select
import signal
import threading
import warnings
from typing import Callable, ContextManager

import pytest

__all__ = ["forked_while_held"]

#: How long the child may take before it counts as hung.
PATIENCE = 30.0


def forked_while_held(lock: ContextManager[object], work: Callable[[], bytes]) -> bytes:
    """``work()``'s report from a child forked while another thread holds ``lock``, or
    ``b"the child hung"``."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(PATIENCE)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    read, write = os.pipe()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: forking beside threads, on purpose
            pid = os.fork()
        if pid == 0:  # the child: report, and leave without pytest's teardown
            try:
                os.write(write, work()[:300])
            finally:
                os._exit(0)
        os.close(write)
        ready, _, _ = select.select([read], [], [], PATIENCE)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return os.read(read, 300) if ready else b"the child hung"
    finally:
        release.set()
        holder.join()
        os.close(read)
