"""How the PostgreSQL store writes a group of callbacks: one statement for the group, the re-sends
it cannot see or must flag after it (store/postgres_writes.py), and the same rows as one write at a
time, whatever the groups."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import random
import threading
from typing import Any, Dict, List, Tuple

from pgserver import (
    fresh_schema,
    postgres_url,  # noqa: F401 (a fixture)
    upgraded,
)
from test_store_rows import random_groups

from uws_adapter import CallbackRequest, ReportedDevice
from uws_adapter.model.devices import Device
from uws_adapter.store import CallbackWrite, open_store, upgrade_store
from uws_adapter.store.postgres import PostgresStore


def _callback(n: int, count: int = 1, request_id: str = "r1", status: str = "Success") -> CallbackRequest:
    return CallbackRequest(
        request_id, (ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService", action="Suspend",
        status=status, callback_count=count,
    )  # fmt: skip


def _store(url: str, clock: Any = None) -> PostgresStore:
    store = open_store(url, clock=clock) if clock is not None else open_store(url)
    assert isinstance(store, PostgresStore)
    return store


def test_a_group_of_callbacks_is_one_statement(postgres_url: str) -> None:
    # One statement: every row it wrote has the same transaction (xmin) and command (cmin), where a
    # statement per callback gave each event a command of its own.
    import psycopg

    upgrade_store(postgres_url)
    with _store(postgres_url) as store:
        store.commit_group([CallbackWrite(_callback(n)) for n in range(3)])
        outcomes = store.commit_group(
            [CallbackWrite(_callback(n, count=2)) for n in range(3)]  # re-sends of events it sees
            + [CallbackWrite(_callback(n), ("relay",)) for n in range(3, 8)]  # new events, a handler each
        )
        assert [o.result[1] for o in outcomes] == [False] * 3 + [True] * 5
        marks = store._run(
            "read the marks",
            lambda db: db.execute(
                "SELECT DISTINCT xmin::text, cmin::text FROM events WHERE id > 3 UNION"
                " SELECT DISTINCT xmin::text, cmin::text FROM attempts WHERE id > 3 UNION"
                " SELECT DISTINCT xmin::text, cmin::text FROM handler_queue"
            ).fetchall(),
        )
        assert len(marks) == 1
        assert store.counts()["attempts"] == 11
        # Committed when commit_group returned: no transaction left open, every row seen by others.
        assert store._run("look", lambda db: db.info.transaction_status) == psycopg.pq.TransactionStatus.IDLE
        with psycopg.connect(postgres_url) as other:
            assert other.execute("SELECT count(*) FROM attempts").fetchone() == (11,)


def test_a_resend_the_group_finds_goes_to_its_attempt_not_to_the_insert(postgres_url: str) -> None:
    # The group's statement looks each callback's event up first and inserts only those it does not
    # find: a re-send takes no event id (an insert that meets the constraint takes one from the
    # sequence before it finds the conflict, as main's statement did for every re-send), and a group
    # without handlers writes no handler run while one with them writes them.
    upgrade_store(postgres_url)
    with _store(postgres_url) as store:
        first = store.commit_group([CallbackWrite(_callback(n)) for n in range(3)])
        assert [o.result for o in first] == [(1, True), (2, True), (3, True)]
        again = store.commit_group(
            [CallbackWrite(_callback(n, count=2)) for n in range(3)]  # re-sends of the same content
            + [CallbackWrite(_callback(1, count=3, status="Failed"))]  # a group's duplicate, which differs
            + [CallbackWrite(_callback(3))]  # a new event
        )
        assert [o.error for o in again] == [None] * 5
        assert [o.result for o in again] == [(1, False), (2, False), (3, False), (2, False), (4, True)]
        assert store.counts()["handler_queue"] == 0
        differs = store._run("read the flags", lambda db: db.execute("SELECT id FROM events WHERE differs").fetchall())
        assert differs == [(2,)]
        last = store.commit_group(
            [CallbackWrite(_callback(4), ("relay",)), CallbackWrite(_callback(5)), CallbackWrite(_callback(0, count=4))]
        )
        assert [o.result for o in last] == [(5, True), (6, True), (1, False)]
        runs = store._run(
            "read the runs", lambda db: db.execute("SELECT event_id, handler FROM handler_queue").fetchall()
        )
        assert runs == [(5, "relay")]
        assert store.counts()["attempts"] == 11
        assert [e.attempts for e in store.events()] == [3, 3, 2, 1, 1, 1]


def test_a_resend_of_an_event_another_instance_is_committing_waits_and_is_its_attempt(postgres_url: str) -> None:
    # The other instance's group has inserted device 1's event and not committed: this group's
    # insert waits on the constraint, and its snapshot, older than the other's commit, cannot see
    # the event: the callback is left to the re-sends' statement, which finds it.
    import psycopg

    from uws_adapter.store.postgres_writes import _NEW_EVENT, _new_event_args
    from uws_adapter.store.rows import callback_row

    upgrade_store(postgres_url)
    theirs = CallbackWrite(_callback(1))
    with (
        _store(postgres_url) as store,
        psycopg.connect(postgres_url) as other,
        psycopg.connect(postgres_url, autocommit=True) as admin,
    ):
        row = other.execute(_NEW_EVENT, _new_event_args(callback_row(theirs.callback), theirs, 1.0)).fetchone()
        assert row is not None
        outcome: List[Any] = []
        group = threading.Thread(
            target=lambda: outcome.extend(
                store.commit_group([CallbackWrite(_callback(1, 2)), CallbackWrite(_callback(2))])
            )
        )
        group.start()
        for _ in range(100_000):  # polled on the server, bounded
            waiting = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (other.info.backend_pid,)
            ).fetchone()
            if waiting and waiting[0]:
                break
        else:
            raise AssertionError("the group never waited on the other's insert")
        other.commit()
        group.join()
        assert [o.error for o in outcome] == [None, None]
        assert outcome[0].result == (row[0], False)
        assert outcome[1].result[1] is True
        [first, _] = store.events()
        assert (first.id, first.attempts) == (row[0], 2)


def test_groups_write_what_one_write_at_a_time_writes() -> None:
    # Random groups (1 to 90 writes: re-sends within a group and across groups, re-sends that
    # differ, requests the log lists devices for and not, reservations, handler runs) against the
    # same writes committed one at a time on another schema: every row but the ids, every outcome.
    rng = random.Random(19)
    writes, sizes = random_groups(rng)
    clock = lambda: 1000.5  # noqa: E731 (one time for both stores: their rows compare equal)
    schemas = [fresh_schema(), fresh_schema()]
    try:
        urls = [upgraded(next(schema)) for schema in schemas]
        with _store(urls[0], clock) as grouped, _store(urls[1], clock) as each:
            for store in (grouped, each):
                store.record_request("listed", "Suspend", [Device.parse("IMEI:35" + "0" * 13)])
            outcomes: Tuple[List[Any], List[Any]] = ([], [])
            start = 0
            for size in sizes:
                group = writes[start : start + size]
                start += size
                outcomes[0].extend(grouped.commit_group(group))
                outcomes[1].extend(o for w in group for o in each.commit_group([w]))
            for found in outcomes:
                assert all(o.error is None for o in found)
            assert [o.result[1] for o in outcomes[0]] == [o.result[1] for o in outcomes[1]]
            assert {o.result[1] for o in outcomes[0]} == {True, False}
            tables = [_tables(grouped), _tables(each)]
            # The same event for the same writes: ids map one to one.
            assert len({(a.result[0], b.result[0]) for a, b in zip(*outcomes)}) == len(tables[0]["events"])
        assert tables[0] == tables[1]
        assert len(tables[0]["attempts"]) == 300
        assert {row[-3] for row in tables[0]["events"]} == {True, False}  # some re-sends differed
        assert {row[-1] for row in tables[0]["events"]} == {True, False}  # listed and not
    finally:
        for schema in schemas:
            for _ in schema:  # drops it
                pass


def _tables(store: PostgresStore) -> Dict[str, List[Tuple[Any, ...]]]:
    """Every row of the group's tables, each event by its key rather than its id, sorted."""
    key = "e.service, e.request_id, e.device, e.action"
    queries = {
        "events": "SELECT service, request_id, device, action, status, succeeded, fault_code, callback, content_hash,"
        " received_at, differs, callback IS NOT NULL, unlisted FROM events e",
        "attempts": f"SELECT {key}, a.callback_count, a.content_hash, a.received_at FROM attempts a"
        " JOIN events e ON e.id = a.event_id",
        "handler_queue": f"SELECT {key}, q.handler, q.attempts, q.next_at FROM handler_queue q"
        " JOIN events e ON e.id = q.event_id",
    }
    return {
        name: sorted(store._run("read the rows", lambda db, q=query: db.execute(q).fetchall()))  # type: ignore[misc]
        for name, query in queries.items()
    }


def test_the_group_statement_keeps_one_plan_whatever_the_groups_sizes(postgres_url: str) -> None:
    # Planning it took longer than running it (0.5 ms): groups of every size run on the plan made
    # once, not on one made for each group's arrays.
    upgrade_store(postgres_url)
    with _store(postgres_url) as store:
        n = 0
        for size in [1, 9, 2, 16, 3, 1, 7, 12, 1, 4, 15, 2, 6, 1, 11] * 2:
            store.commit_group([CallbackWrite(_callback(n + k, count=1 + n % 3)) for k in range(size)])
            n += size // 2 + 1  # half of them again: re-sends
        generic, custom = store._run(
            "read the plans",
            lambda db: db.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%%WITH input%%'"
            ).fetchone(),
        )
        # psycopg prepares it at its sixth run; PostgreSQL tries five plans of its own, then keeps one.
        assert custom <= 5, (generic, custom)
        assert generic >= 20, (generic, custom)
