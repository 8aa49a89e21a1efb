"""Readiness says whether a callback can be committed now: on SQLite a full disk shows (the probe
must reach the WAL), a failed commit is remembered for a few seconds; on PostgreSQL a row another
session holds does not make the probe wait, and a dropped connection is opened again once."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from pgserver import location  # noqa: F401 (a fixture)
from test_store import _cb

from uws_adapter.store import CallbackWrite, open_store
from uws_adapter.store.core import READY_MEMORY

# A full disk, as the process sees it: the WAL, the file a commit grows, may not grow (RLIMIT_FSIZE
# at its size; SIGXFSZ ignored, so that a write past it fails with EFBIG instead of killing the
# process). Nothing checkpoints in between, so the database file is not written.
_FULL_DISK = textwrap.dedent(
    """
    import os, resource, signal, sys
    from uws_adapter import CallbackRequest, ReportedDevice
    from uws_adapter.store import Store, StoreError

    def _cb(n):
        device = (ReportedDevice("IMEI", str(350000000000000 + n)),)
        return CallbackRequest("r", device, service="CarrierService", action="Suspend", status="Success")

    class Clock:
        now = 1_000_000.0
        def __call__(self):
            return self.now

    clock = Clock()
    path = sys.argv[1]
    store = Store(path, clock=clock)
    store.add_callback(_cb(1))
    assert store.ready()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path + "-wal"), unlimited[1]))
    print("probe on a full disk:", store.ready())
    try:
        store.add_callback(_cb(2))
        print("callback on a full disk: stored")
    except StoreError:
        print("callback on a full disk: refused")
    resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)  # room again
    print("right after the failed commit:", store.ready())
    clock.now += READY_MEMORY
    print("a few seconds later:", store.ready())
    store.add_callback(_cb(3))
    print("events:", store.counts()["events"])
    store.close()
    """
).replace("READY_MEMORY", repr(READY_MEMORY))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_makes_a_sqlite_store_not_ready(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path / "callbacks.db")], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "probe on a full disk: False",  # the probe had to grow the WAL, as the callback does
        "callback on a full disk: refused",
        "right after the failed commit: False",  # the failure is remembered, whatever the probe gets
        "a few seconds later: True",
        "events: 2",
    ]


def test_a_failed_commit_is_remembered_for_a_few_seconds_on_postgres(location: str) -> None:
    if not location.startswith("postgresql://"):
        pytest.skip("the SQLite case is the full disk above")
    import psycopg

    class Clock:
        now = 1_000_000.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    with open_store(location, clock=clock) as store:
        assert store.commit_group([CallbackWrite(_cb(1))])[0].error is None
        pid = store._read("find the session", lambda db: db.one("SELECT pg_backend_pid()"))
        with psycopg.connect(location, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", pid)
        assert store.commit_group([CallbackWrite(_cb(2))])[0].error is not None  # a 503
        assert not store.ready()
        clock.now += READY_MEMORY
        assert store.ready()


def test_a_row_another_session_holds_does_not_hold_the_probe_up(location: str) -> None:
    if not location.startswith("postgresql://"):
        pytest.skip("PostgreSQL's row locks")
    import psycopg

    with open_store(location, lock_timeout=30.0) as store, psycopg.connect(location) as other:
        # An unrelated session holds every row the old probe updated, for longer than a probe waits.
        other.execute("SELECT version FROM uws_schema_version FOR UPDATE")
        done = threading.Event()
        answers = []

        def probe() -> None:
            answers.append(store.ready())
            done.set()

        threading.Thread(target=probe, daemon=True).start()
        assert done.wait(10), "the probe waited on another session's row lock"
        assert answers == [True]
        other.rollback()


def test_a_dropped_connection_is_opened_again_once(location: str) -> None:
    if not location.startswith("postgresql://"):
        pytest.skip("PostgreSQL's connections")
    import psycopg

    with open_store(location) as store:
        assert store.ready()  # this thread's connection
        pid = store._read("find the session", lambda db: db.one("SELECT pg_backend_pid()"))
        with psycopg.connect(location, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", pid)
        assert store.ready()  # the first try meets the dropped connection, the second a new one
        assert store.ready()
