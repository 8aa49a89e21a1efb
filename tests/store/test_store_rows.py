"""What the store writes of a callback, made fast: one serialisation for the stored text and the
digest (which must stay the digest of its definition, since stored digests are compared with
re-sends'), a group written without savepoints unless one of its writes fails, and a write alone in
its transaction without one."""

from __future__ import annotations

import datetime
import json
import random
import sqlite3
import threading
from pathlib import Path
from typing import List, Tuple

import pytest

from uws_adapter import CallbackFault, CallbackRequest, NiddResult, ReportedDevice
from uws_adapter.errors import StoreError
from uws_adapter.model.callbacks import SuspendResult
from uws_adapter.store import CallbackWrite
from uws_adapter.store.rows import callback_row, content_digest
from uws_adapter.store.sqlite import Store

IMEI, ICCID = ReportedDevice("IMEI", "350000000000001"), ReportedDevice("ICCID", "89148000000000000001")

CALLBACKS = [
    CallbackRequest("r", (IMEI,), service="CarrierService", action="Suspend", status="Success", callback_count=3),
    CallbackRequest("r", (IMEI,), callback_count=None),  # no action: "action" is null
    CallbackRequest("r", (ICCID, IMEI), action="Restore", callback_count=2),  # devices in order
    CallbackRequest("r", (IMEI, ICCID), action="Restore", callback_count=2),  # out of order
    CallbackRequest("r\u00e9\"\\", (IMEI,), action='Su"sp\\end', callback_count=10**20, password="secret"),
    CallbackRequest(
        "r", (IMEI,), service="CarrierService", action="Suspend", status="Failed", callback_count=1,
        fault=CallbackFault("REQUEST_FAILED", "no", None, "d\u2028"), comment="\u00fc",
        suspend=SuspendResult(datetime.date(2026, 1, 2), 90, 3, 87), unmodeled=("X",),
    ),
    CallbackRequest("r", (), service="NiddService", status="ConfigFailed", nidd=NiddResult("a", "b", (IMEI, ICCID))),
]  # fmt: skip


@pytest.mark.parametrize("callback", CALLBACKS, ids=range(len(CALLBACKS)))
def test_one_serialisation_gives_the_digest_of_its_definition(callback: CallbackRequest) -> None:
    row = callback_row(callback)
    assert row.digest == content_digest(callback.to_dict())
    assert json.loads(row.text) == row.form == callback.to_dict()
    # The text itself, character for character, as the standard encoder writes it (the store's
    # encoder is made once from the same arguments).
    assert row.text == json.dumps(callback.to_dict(), sort_keys=True)
    assert "secret" not in row.text


def test_the_digest_ignores_the_count_and_the_devices_order_only() -> None:
    first, resent = callback_row(CALLBACKS[2]), callback_row(CALLBACKS[3])
    assert first.digest == resent.digest
    assert (
        callback_row(CALLBACKS[0]).digest
        != callback_row(
            CallbackRequest("r", (IMEI,), service="CarrierService", action="Suspend", status="Failed", callback_count=3)
        ).digest
    )


def _statements(store: Store, writes: List[CallbackWrite]) -> List[str]:
    store.commit_group([CallbackWrite(CALLBACKS[1])])  # opens this thread's writer connection
    seen: List[str] = []
    store._local.held.writer.set_trace_callback(seen.append)
    outcomes = store.commit_group(writes)
    store._local.held.writer.set_trace_callback(None)
    assert all(o.error is None for o in outcomes)
    return seen


def test_a_group_is_written_without_savepoints(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        group = [CallbackWrite(CallbackRequest("g", (ReportedDevice("IMEI", f"35{n:013d}"),), callback_count=1))
                 for n in range(16)]  # fmt: skip
        seen = _statements(store, group)
        assert not [s for s in seen if "SAVEPOINT" in s or "RELEASE" in s]
        # An event each, and the group's attempts in one statement at its end (insert_attempts).
        inserts = [s for s in seen if s.startswith("INSERT")]
        assert [s.split(" (")[0] for s in inserts] == ["INSERT OR IGNORE INTO events"] * 16 + ["INSERT INTO attempts"]
        assert inserts[-1].count("), (") == 15


def test_a_group_with_a_poisoned_write_is_written_again_one_savepoint_each(tmp_path: Path) -> None:
    poisoned = CallbackRequest("bad\ud800", (IMEI,), action="Suspend")  # a lone surrogate: no UTF-8
    with Store(tmp_path / "s.db") as store:
        group = [CallbackWrite(CALLBACKS[0]), CallbackWrite(poisoned, document=b"<doc/>"), CallbackWrite(CALLBACKS[2])]
        seen = _statements(store, group)
        assert "ROLLBACK" in seen
        assert any("SAVEPOINT" in s for s in seen)
        counts = store.counts()
    # The first group's one event, and the neighbours of the poisoned callback; it is a dead letter.
    assert (counts["events"], counts["attempts"], counts["dead_letters"]) == (3, 3, 1)


def _tables(store: Store) -> List[List[tuple]]:  # type: ignore[type-arg]
    db = store._reader()
    return [
        db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
        for table in ("events", "attempts", "handler_queue")
    ]


def random_groups(rng: random.Random) -> Tuple[List[CallbackWrite], List[int]]:
    """300 callback writes over few requests and devices (re-sends, re-sends that differ, listed
    and unlisted requests, reservations) and group sizes from 1 to 90 that cover them."""
    writes = [
        CallbackWrite(
            CallbackRequest(
                rng.choice(["listed", "unlisted", "pending:x"]), (ReportedDevice("IMEI", f"35{rng.randrange(60):013d}"),),
                service="CarrierService", action=rng.choice(["Suspend", "Restore"]),
                status=rng.choice(["Success", "Failed"]), callback_count=rng.randrange(1, 5),
            ),
            ("relay", "audit"),
        )
        for _ in range(300)
    ]  # fmt: skip
    sizes: List[int] = []
    while sum(sizes) < len(writes):
        sizes.append(rng.choice([1, 2, 7, 16, 40, 90]))
    return writes, sizes


def test_groups_write_what_one_write_at_a_time_writes(tmp_path: Path) -> None:
    # Random groups (1 to 90 writes: re-sends within a group and across groups, re-sends that
    # differ, requests the log lists devices for and not, handler runs) against the same writes
    # committed one at a time: every row of every table, every outcome. (A group is run without
    # savepoints, one write after the other; a faster run of a group must keep this.)
    import random

    from uws_adapter.model.devices import Device

    rng = random.Random(19)
    writes, sizes = random_groups(rng)
    clock = lambda: 1000.5  # noqa: E731 (one time for both stores: their rows compare equal)
    with Store(tmp_path / "g.db", clock=clock) as grouped, Store(tmp_path / "e.db", clock=clock) as each:
        for store in (grouped, each):
            store.record_request("listed", "Suspend", [Device.parse("IMEI:35" + "0" * 13)])
        grouped_outcomes, each_outcomes, start = [], [], 0
        for size in sizes:
            group = writes[start : start + size]
            start += size
            grouped_outcomes += [(o.result, o.error) for o in grouped.commit_group(group)]
            each_outcomes += [(o.result, o.error) for w in group for o in each.commit_group([w])]
        assert grouped_outcomes == each_outcomes
        assert {new for (_, new), _ in grouped_outcomes} == {True, False}
        tables = _tables(grouped)
        assert tables == _tables(each)
        marks = grouped._reader().execute("SELECT DISTINCT differs, unlisted FROM events").fetchall()
    assert len(tables[1]) == 300
    assert len(tables[2]) == 2 * len(tables[0])
    assert {differs for differs, _ in marks} == {0, 1}
    assert {unlisted for _, unlisted in marks} == {0, 1}


def test_a_write_alone_in_its_transaction_has_no_savepoint_and_a_failure_undoes_all_of_it(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.write(lambda db: db.execute("CREATE TABLE t (x INTEGER UNIQUE)"), durable=False)
        seen: List[str] = []
        store._shared.writer.set_trace_callback(seen.append)  # the connection non-durable writes share

        def half_then_fail(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO t VALUES (1)")
            db.execute("INSERT INTO t VALUES (1)")  # the unique key refuses it

        with pytest.raises(StoreError, match="UNIQUE"):
            store.write(half_then_fail, durable=False)
        assert store.write(lambda db: db.execute("INSERT INTO t VALUES (2)").rowcount, durable=False) == 1
        store._shared.writer.set_trace_callback(None)
        assert not [s for s in seen if "SAVEPOINT" in s or "RELEASE" in s]
        assert "ROLLBACK" in seen
        assert [row[0] for row in store._reader().execute("SELECT x FROM t")] == [2]  # the first write: none of it


def test_non_durable_writes_of_every_thread_share_one_connection(tmp_path: Path) -> None:
    """Each connection reads again every page it uses after another connection's commit, and a
    server's threads take calls in turn: the request log's writes share one warm connection."""
    used: List[int] = []
    with Store(tmp_path / "s.db") as store:
        store.write(lambda db: db.execute("CREATE TABLE t (x INTEGER)"), durable=False)

        together = threading.Barrier(6)  # every thread alive until all wrote: no id is reused

        def write(n: int) -> None:
            store.write(lambda db: (used.append(id(db)), db.execute("INSERT INTO t VALUES (?)", (n,))), durable=False)
            together.wait(timeout=30)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(used) == 6
        assert len(set(used)) == 1
        assert store.write(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0], durable=False) == 6
        shared = store._shared
    assert shared.writer is None  # closed with the store
