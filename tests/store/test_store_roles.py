"""The roles every backend plays alike (the ``location`` fixture runs each on SQLite and on
PostgreSQL): commit groups with poisoned callbacks, re-sends racing across two
instances, the shared handler queue and its leases, and the bridge's sessions."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import threading
from typing import List, Tuple

from pgserver import location  # noqa: F401 (a fixture)
from test_store import _cb

from uws_adapter import CallbackRequest, ReportedDevice
from uws_adapter.store import POISONED, CallbackWrite, open_store


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _poisoned() -> CallbackRequest:
    # A NUL in a value: PostgreSQL text cannot hold one; SQLite can, so a lone surrogate too.
    return CallbackRequest(
        "bad\x00\ud800", (ReportedDevice("IMEI", "350000000000009"),), service="CarrierService", action="Suspend",
        status="Success",
    )  # fmt: skip


def test_a_poisoned_callback_is_a_dead_letter_and_its_group_is_stored(location: str) -> None:
    with open_store(location) as store:
        outcomes = store.commit_group(
            [CallbackWrite(_cb(1)), CallbackWrite(_poisoned(), document=b"<doc/>", media_type="text/xml"),
             CallbackWrite(_cb(2))]
        )  # fmt: skip
        assert [o.error for o in outcomes] == [None, None, None]
        assert [o.result[1] for o in outcomes] == [True, False, True]
        assert outcomes[1].result == (POISONED, False)
        counts = store.counts()
        assert (counts["events"], counts["attempts"], counts["dead_letters"]) == (2, 2, 1)


def test_a_callback_whose_key_is_too_long_for_an_index_is_never_a_database_failure(location: str) -> None:
    # A RequestId of 3,000 characters that do not compress: PostgreSQL's b-tree refuses the key
    # (ProgramLimitExceeded, an OperationalError), which was taken for a failure of the database:
    # the whole group answered 503 on every re-send, for ever, and /readyz said "not ready".
    # SQLite stores it; PostgreSQL keeps it as a dead letter, as it does a NUL. Either way the
    # group is stored and nothing is an error.
    import random

    rng = random.Random(7)
    long_id = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000))
    long = CallbackRequest(
        long_id, (ReportedDevice("IMEI", "350000000000009"),), service="CarrierService", action="Suspend",
        status="Success",
    )  # fmt: skip
    with open_store(location) as store:
        outcomes = store.commit_group(
            [CallbackWrite(_cb(1)), CallbackWrite(long, document=b"<doc/>", media_type="text/xml"),
             CallbackWrite(_cb(2))]
        )  # fmt: skip
        assert [o.error for o in outcomes] == [None, None, None]
        assert outcomes[0].result[1]
        assert outcomes[2].result[1]
        counts = store.counts()
        assert counts["events"] + counts["dead_letters"] == 3
        assert store.ready()


def test_a_group_with_one_event_twice_stores_it_once_with_two_attempts(location: str) -> None:
    with open_store(location) as store:
        outcomes = store.commit_group([CallbackWrite(_cb(1)), CallbackWrite(_cb(1, count=2))])
        assert [o.result[1] for o in outcomes] == [True, False]
        assert outcomes[0].result[0] == outcomes[1].result[0]
        [event] = store.events()
        assert event.attempts == 2


def test_resends_racing_on_two_instances_are_stored_once_and_all_counted(location: str) -> None:
    # Two store objects on one database stand for two instances: each commits groups in its own
    # thread, every group holding the same events in another order.
    stores = [open_store(location), open_store(location)]
    new: List[bool] = []
    lock = threading.Lock()

    def deliver(store_index: int, rounds: int) -> None:
        store = stores[store_index]
        for round_ in range(rounds):
            group = [CallbackWrite(_cb(n, count=round_ + 1)) for n in range(20)]
            if (store_index + round_) % 2:
                group.reverse()
            outcomes = store.commit_group(group)
            assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
            with lock:
                new.extend(o.result[1] for o in outcomes)

    try:
        threads = [threading.Thread(target=deliver, args=(i % 2, 5)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = stores[0].counts()
        assert (counts["events"], counts["attempts"]) == (20, 400)
        assert new.count(True) == 20
    finally:
        for store in stores:
            store.close()


def test_handler_runs_are_claimed_by_one_runner_only(location: str) -> None:
    stores = [open_store(location), open_store(location)]
    try:
        for n in range(200):
            stores[0].add_callback(_cb(n), ("a", "b"))
        claimed: List[Tuple[int, str, int]] = []
        lock = threading.Lock()

        def claim(store_index: int) -> None:
            while True:
                got = stores[store_index].claim_handlers(7, lease=60.0)
                if not got:
                    return
                with lock:
                    claimed.extend(got)

        threads = [threading.Thread(target=claim, args=(i % 2,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(claimed) == 400
        assert len({(e, h) for e, h, _ in claimed}) == 400  # none twice
        assert stores[0].due_handlers() == []
    finally:
        for store in stores:
            store.close()


def test_a_claim_runs_out_and_a_failed_or_released_run_is_due_again(location: str) -> None:
    clock = Clock()
    with open_store(location, clock=clock) as store:
        event_id, _ = store.add_callback(_cb(1), ("relay", "other"))
        assert store.claim_handlers(10, lease=30.0, names=["relay"]) == [(event_id, "relay", 0)]
        assert store.claim_handlers(10, lease=30.0, names=["relay"]) == []
        clock.now += 31  # the claimer died: its lease is out
        assert store.claim_handlers(10, lease=30.0, names=["relay"]) == [(event_id, "relay", 0)]
        store.handler_failed(event_id, "relay", "refused", delay=5.0)
        assert store.claim_handlers(10, lease=30.0, names=["relay"]) == []
        clock.now += 5
        assert store.claim_handlers(10, lease=30.0, names=["relay"]) == [(event_id, "relay", 1)]
        store.release_handlers([(event_id, "relay")])
        assert store.claim_handlers(10, lease=30.0) == [(event_id, "other", 0), (event_id, "relay", 1)]
        store.handler_done(event_id, "relay")
        store.handler_gave_up(event_id, "other", "no such target")
        counts = store.counts()
        assert (counts["handler_queue"], counts["dead_letters"]) == (0, 1)


def test_sessions_are_rows_and_the_store_decides_nothing(location: str) -> None:
    with open_store(location) as store:
        store.open_session("t1", 100.0, None)
        assert store.session_last_used("t1") == 100.0
        store.touch_session("t1", 150.0)
        store.touch_session("t1", 120.0)  # a late writer never moves a use back
        assert store.session_last_used("t1") == 150.0
        assert store.session_last_used("nobody") is None
        store.open_session("t2", 100.0, None)
        store.close_session("t2")
        assert store.session_last_used("t2") is None
        store.open_session("t3", 200.0, 151.0)  # forgets what was last used before 151
        assert (store.session_last_used("t1"), store.session_last_used("t3")) == (None, 200.0)


def test_sessions_opened_on_two_instances_are_seen_by_both(location: str) -> None:
    with open_store(location) as one, open_store(location) as two:
        one.open_session("shared", 100.0, None)
        assert two.session_last_used("shared") == 100.0
        two.touch_session("shared", 110.0)
        assert one.session_last_used("shared") == 110.0


def test_recent_actions_count_a_line_by_any_of_its_identifiers(location: str) -> None:
    from uws_adapter import Device
    from uws_adapter.model.devices import identity

    clock = Clock(2_000_000.0)
    imei, iccid = "350000000000000", "89148000000000000000"
    wanted = identity("IMEI", imei)
    with open_store(location, clock=clock) as store:
        store.record_request("old", "Suspend", [Device.parse(f"IMEI:{imei}")])
        clock.now += 100
        store.record_request("both", "Restore", [Device.parse(f"IMEI:{imei}+ICCID:{iccid}")], forced=True)
        clock.now += 100
        store.record_request("by-iccid", "Suspend", [Device.parse(f"ICCID:{iccid}")])
        clock.now += 100
        store.add_callback(_cb(0, "query-1"))  # a query's callback: its line counts from it
        store.add_callback(_cb(5, "query-1"))  # another line
        store.add_callback(_cb(0, "query-2", failed=True))  # a failed callback is no action
        found = store.recent_actions([wanted], since=2_000_050.0)
        assert found == {wanted: [("both", 2_000_100.0), ("by-iccid", 2_000_200.0), ("query-1", 2_000_300.0)]}
        assert store.recent_actions([identity("IMEI", "1")], since=0.0) == {}
        assert store.recent_actions([], since=0.0) == {}


def test_readiness_and_the_handler_backlog(location: str) -> None:
    clock = Clock()
    with open_store(location, clock=clock) as store:
        assert store.ready()
        assert store.handler_backlog() == {}
        store.add_callback(_cb(1), ("relay",))
        clock.now += 10
        store.add_callback(_cb(2), ("relay", "audit"))
        assert store.handler_backlog() == {"relay": (2, 1_000_000.0), "audit": (1, 1_000_010.0)}
        before = store.counts()
        assert store.ready()
        assert store.counts() == before  # the probe keeps nothing
    assert not store.ready()  # closed
