"""Every module lock of the package is free in a child forked while a parent thread holds it
(tests/forking.py): the envelope frames', the zeep bindings' and the metrics'."""

from __future__ import annotations

import pytest
from forking import forked_while_held

from uws_adapter import metrics
from uws_adapter.forksafe import ForkSafeLock
from uws_adapter.uws import bindings, envelope


def _taken(lock: ForkSafeLock) -> bytes:
    with lock:
        return b"free"


@pytest.mark.parametrize(
    "lock",
    [envelope._FRAMES_LOCK, bindings._lock, metrics._lock, ForkSafeLock()],
    ids=["envelope-frames", "zeep-bindings", "metrics", "a-new-one"],
)
def test_a_module_lock_held_at_a_fork_is_free_in_the_child(lock: ForkSafeLock) -> None:
    assert forked_while_held(lock, lambda: _taken(lock)) == b"free"
