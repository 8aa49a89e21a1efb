"""The budget check's summary (store/line_counts.py), on SQLite and PostgreSQL: whatever the history
(lines named by one identifier or several, requests reserved, confirmed on a later day, released,
recorded again under one id, days apart), the check finds exactly the lines over the budget that
reading every row finds; and a store of the previous schema with history is upgraded to a summary
that counts that history."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import random
from pathlib import Path
from typing import List

import pytest
from conftest import ManualClock
from older_stores import sqlite_at_version
from pgserver import location, postgres_url, upgraded  # noqa: F401 (fixtures)

from uws_adapter.model.devices import Device
from uws_adapter.provisioning.budget import BUDGET_WINDOW, lines_over, wanted_identities
from uws_adapter.store import Backend, line_counts, open_store, upgrade_store
from uws_adapter.store.sqlite import Store
from uws_adapter.store.sqlite_schema import SCHEMA_VERSION

DAY = 24 * 60 * 60
START = 20834 * 24 * 60 * 60 - 3600.0  # an hour before a UTC midnight: requests fall on both days
IMEIS = [f"IMEI:{350000000000000 + n}" for n in range(8)]
ICCIDS = [f"ICCID:{89148000000000000000 + n}" for n in range(8)]
MDNS = [f"MDN:{5550000000 + n}" for n in range(8)]


def _devices() -> List[Device]:
    """Every way the test names its lines, and lines never named."""
    both = [Device.parse(f"{IMEIS[n]}+{ICCIDS[n]}") for n in range(7)]
    return both + [Device.parse(s[n]) for s in (IMEIS, ICCIDS, MDNS) for n in range(7)] + [
        Device.parse(f"{IMEIS[n]}+{ICCIDS[n]}+{MDNS[n]}") for n in range(7)
    ] + [Device.parse("IMEI:359999999999999")]  # fmt: skip


def _named(rng: random.Random) -> Device:
    """Lines 3-5 are always named by both identifiers (the summary's fast case: their counts
    decide), line 6 by both or its ICCID alone, lines 0-2 in every way."""
    n = rng.randrange(7)
    if 3 <= n <= 5:
        return Device.parse(f"{IMEIS[n]}+{ICCIDS[n]}")
    ways = [[IMEIS[n], ICCIDS[n]]] * 2 + [[ICCIDS[n]]]
    if n < 3:
        ways += [[IMEIS[n]], [IMEIS[n], ICCIDS[n], MDNS[n]], [MDNS[n]]]
    return Device.parse("+".join(rng.choice(ways)))


def _assert_exact(store: Backend, now: float) -> int:
    """For windows ending now and earlier, and every budget, the check equals reading every row;
    how many (window, budget) pairs found some line over and some not."""
    devices = _devices()
    telling = 0
    midnight = now // DAY * DAY  # windows from a midnight: the summary's days are whole, its bound tight
    for since in (now - BUDGET_WINDOW, midnight, midnight - DAY, midnight - 2 * DAY, now - 3 * DAY, now - 600, 0.0):
        everything = store.recent_actions(wanted_identities(devices), since)
        for budget in range(1, 12):
            expected = lines_over(devices, everything, budget)
            assert lines_over(devices, store.device_actions(devices, since, at_least=budget), budget) == expected, (
                since,
                budget,
            )
            telling += 0 < len(expected) < len(devices)
    return telling


def test_the_summary_never_clears_a_line_the_rows_count_over(location: str) -> None:
    rng = random.Random(19)
    clock = ManualClock(START)
    telling = 0
    open_ones: List[str] = []  # reservations not yet confirmed or released
    with open_store(location, clock=clock) as store:
        for step in range(150):
            clock.advance(rng.choice([60.0, 600.0, 3600.0, 5 * 3600.0]))
            devices = [_named(rng) for _ in range(rng.randrange(1, 3))]
            choice = rng.random()
            if choice < 0.3 or not open_ones:
                reservation = store.reserve_request("Suspend", devices)
                assert reservation is not None
                open_ones.append(reservation)
            elif choice < 0.5:  # confirmed some time later (perhaps another day)
                store.confirm_request(open_ones.pop(rng.randrange(len(open_ones))), f"r{step}")
            elif choice < 0.6:  # confirmed under the id of an earlier request: that one is replaced
                store.confirm_request(open_ones.pop(rng.randrange(len(open_ones))), f"r{rng.randrange(step)}")
            elif choice < 0.75:  # released: it never left
                store.release_request(open_ones.pop(rng.randrange(len(open_ones))))
            elif choice < 0.85:  # recorded again under one id, with other devices
                store.record_request(f"r{rng.randrange(step)}", "Restore", devices)
            else:
                store.record_request(f"r{step}", "Suspend", devices)
            if step % 6 == 5:
                telling += _assert_exact(store, clock())
        clock.advance(2 * DAY)  # whole days later: the counts of the days before must not count
        store.record_request("late", "Suspend", [Device.parse(f"{IMEIS[0]}+{ICCIDS[0]}")])
        telling += _assert_exact(store, clock())
    assert telling > 10  # a history with lines over and under the budget


def test_looked_up_by_key_the_summary_decides_as_when_hashed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL looks each identity up by its key once the summary is many times the identities
    wanted (line_counts.PROBE_RATIO; a fleet's history): the same history, always looked up so."""
    monkeypatch.setattr(line_counts, "PROBE_RATIO", float("-inf"))
    test_the_summary_never_clears_a_line_the_rows_count_over(upgraded(postgres_url))


def test_a_device_list_sent_again_and_again_counts_each_send(location: str) -> None:
    """The fast case alone: one list named the same way every time, at and past the budget."""
    clock = ManualClock(START)
    devices = [Device.parse(f"{IMEIS[n]}+{ICCIDS[n]}") for n in range(8)]
    with open_store(location, clock=clock) as store:
        for send in range(1, 7):
            assert store.reserve_request("Suspend", devices) is not None
            clock.advance(1800.0)
            since = clock() - BUDGET_WINDOW
            for budget in (send, send + 1):
                found = store.device_actions(devices, since, at_least=budget)
                assert len(lines_over(devices, found, budget)) == (8 if send >= budget else 0)
        clock.advance(BUDGET_WINDOW)  # all six age out
        assert store.device_actions(devices, clock() - BUDGET_WINDOW, at_least=1) == {}


def test_a_schema_6_file_with_history_is_upgraded_to_a_summary_of_it(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    old = sqlite_at_version(path, 6)
    for n, when in enumerate((START - 2 * DAY, START - 600, START - 300, START - 60)):  # one is 2 days old
        old.execute("INSERT INTO requests (request_id, action, api, sent_at, devices) VALUES (?, 'Suspend', 'soap', ?, '[]')",
                    (f"old-{n}", when))  # fmt: skip
        old.execute("INSERT INTO request_identifiers VALUES (?, ?, 0)", (f"old-{n}", IMEIS[0]))
        old.execute("INSERT INTO request_identifiers VALUES (?, ?, 0)", (f"old-{n}", ICCIDS[0]))
    old.execute("INSERT INTO requests (request_id, action, api, sent_at, devices) VALUES ('alone', 'Suspend', 'soap', ?, '[]')",
                (START - 60,))  # fmt: skip
    old.execute("INSERT INTO request_identifiers VALUES ('alone', ?, 0)", (IMEIS[1],))
    old.close()
    assert SCHEMA_VERSION >= 7
    with Store(path, clock=ManualClock(START)) as store:
        summary = dict((r[0], tuple(r[1:])) for r in store._reader().execute(
            "SELECT identifier, device_key, members, several, day, actions, prior FROM budget_identities"))  # fmt: skip
        day = int(START // DAY)
        key = "|".join(sorted([IMEIS[0], ICCIDS[0]]))
        assert summary[IMEIS[0]] == summary[ICCIDS[0]] == (key, 2, 0, day, 3, 0)
        assert summary[IMEIS[1]] == (IMEIS[1], 1, 0, day, 1, 0)
        assert _assert_exact(store, START) > 0


def test_a_schema_3_postgresql_database_with_history_is_upgraded_to_a_summary_of_it(postgres_url: str) -> None:
    import psycopg

    from uws_adapter.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE

    with psycopg.connect(postgres_url, autocommit=True) as old:
        old.execute(VERSION_TABLE)
        for version in (1, 2, 3):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    old.execute(statement)
        old.execute("INSERT INTO uws_schema_version (version) VALUES (3)")
        for n, when in enumerate((START - 2 * DAY, START - 600, START - 300, START - 60)):
            old.execute("INSERT INTO requests VALUES (%s, 'Suspend', 'soap', %s, '[]', FALSE)", (f"old-{n}", when))
            old.execute("INSERT INTO request_identifiers VALUES (%s, %s, 0), (%s, %s, 0)",
                        (f"old-{n}", IMEIS[0], f"old-{n}", ICCIDS[0]))  # fmt: skip
        # Named two ways: its line is read from the rows, never from the summary.
        old.execute("INSERT INTO requests VALUES ('other', 'Suspend', 'soap', %s, '[]', FALSE)", (START - 30,))
        old.execute("INSERT INTO request_identifiers VALUES ('other', %s, 0)", (IMEIS[0],))
    assert upgrade_store(postgres_url).endswith(f"store schema 3 -> {SCHEMA_VERSION}")
    with open_store(postgres_url, clock=ManualClock(START)) as store:
        rows = store._read("read the summary", lambda db: db.all(
            "SELECT identifier, members, several, actions FROM budget_identities ORDER BY identifier"))  # fmt: skip
        assert [tuple(r) for r in rows] == [(ICCIDS[0], 2, False, 3), (IMEIS[0], 1, True, 4)]
        assert _assert_exact(store, START) > 0


def _same_as_rows(store: Backend, devices: List[Device], since: float) -> List[int]:
    """The check equals reading every row for each budget from 1 to 6; per budget, the lines over."""
    everything = store.recent_actions(wanted_identities(devices), since)
    over = []
    for budget in range(1, 7):
        expected = lines_over(devices, everything, budget)
        assert lines_over(devices, store.device_actions(devices, since, at_least=budget), budget) == expected, budget
        over.append(len(expected))
    return over


MIDNIGHT = START + 3600  # START's next UTC midnight
L = Device.parse(f"{IMEIS[7]}+{ICCIDS[7]}")


def test_a_released_request_leaves_the_others_counted(location: str) -> None:
    clock = ManualClock(MIDNIGHT + 60)
    with open_store(location, clock=clock) as store:
        for n in range(3):
            store.record_request(f"r{n}", "Suspend", [L])
        reservation = store.reserve_request("Suspend", [L])
        assert reservation is not None
        store.release_request(reservation)
        assert _same_as_rows(store, [L], MIDNIGHT) == [1, 1, 1, 0, 0, 0]


def test_a_request_of_the_day_before_released_after_midnight(location: str) -> None:
    clock = ManualClock(MIDNIGHT - 600)
    with open_store(location, clock=clock) as store:
        store.record_request("r1", "Suspend", [L])
        reservation = store.reserve_request("Suspend", [L])  # still open at midnight
        assert reservation is not None
        clock.advance(1200)
        store.record_request("r3", "Suspend", [L])
        store.release_request(reservation)
        assert _same_as_rows(store, [L], MIDNIGHT - DAY) == [1, 1, 0, 0, 0, 0]


def test_a_request_confirmed_after_midnight_counts_on_its_new_day(location: str) -> None:
    clock = ManualClock(MIDNIGHT - 600)
    with open_store(location, clock=clock) as store:
        reservation = store.reserve_request("Suspend", [L])
        assert reservation is not None
        clock.advance(1200)
        store.confirm_request(reservation, "r1")  # sent at MIDNIGHT + 600 from now on
        store.record_request("r2", "Suspend", [L])
        assert _same_as_rows(store, [L], MIDNIGHT) == [1, 1, 0, 0, 0, 0]


def test_a_window_reaching_past_the_days_kept_is_read_from_the_rows(location: str) -> None:
    clock = ManualClock(MIDNIGHT + 60)
    with open_store(location, clock=clock) as store:
        for day in range(4):
            store.record_request(f"r{day}", "Suspend", [L])
            clock.advance(DAY)
        assert _same_as_rows(store, [L], MIDNIGHT) == [1, 1, 1, 1, 0, 0]


def test_a_line_named_otherwise_by_another_of_its_identifiers_is_read_from_the_rows(location: str) -> None:
    clock = ManualClock(MIDNIGHT + 60)
    with open_store(location, clock=clock) as store:
        store.record_request("both", "Suspend", [L])
        store.record_request("iccid", "Suspend", [Device.parse(ICCIDS[7])])
        store.record_request("imei", "Suspend", [Device.parse(IMEIS[7])])
        store.record_request("imei-again", "Suspend", [Device.parse(IMEIS[7])])
        # the pair: 4 requests on its line, each identity also named alone; the IMEI alone: 4 too
        assert _same_as_rows(store, [L], MIDNIGHT) == [1, 1, 1, 1, 0, 0]
        assert _same_as_rows(store, [Device.parse(IMEIS[7])], MIDNIGHT) == [1, 1, 1, 1, 0, 0]
        store.record_request("iccid-again", "Suspend", [Device.parse(ICCIDS[6])])
        store.record_request("pair", "Suspend", [Device.parse(f"{IMEIS[6]}+{ICCIDS[6]}")])
        store.record_request("iccid-thrice", "Suspend", [Device.parse(ICCIDS[6])])
        # the IMEI only ever named with its ICCID, the ICCID also alone: 3 requests on the IMEI's line
        assert _same_as_rows(store, [Device.parse(IMEIS[6])], MIDNIGHT) == [1, 1, 1, 0, 0, 0]
