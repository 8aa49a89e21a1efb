"""Dead letters on both backends (the ``location`` fixture: SQLite and PostgreSQL): the cap counts
everything a letter stores, as a running total; the oldest are rotated out past it; what a handler
gives up counts too; the operator's reads and purges keep the total right."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import logging
from pathlib import Path
from typing import List

import pytest
from older_stores import sqlite_at_version
from pgserver import location  # noqa: F401 (a fixture)
from test_store import _cb

from uws_adapter.logs import Throttled
from uws_adapter.store import CallbackWrite, DeadLetterWrite, dead_letters, open_store
from uws_adapter.store.dead_letters import ROW_OVERHEAD, DeadLetterTotals, letter_size
from uws_adapter.store.sqlite import Store


def _sizes_stored(store: object) -> List[int]:
    """Each stored letter's size reckoned again from what is stored."""
    letters = store.dead_letters(limit=100_000, bodies=True)  # type: ignore[attr-defined]
    return [letter_size(letter.body, letter.content_type, letter.reason) for letter in letters]


def test_four_thousand_one_byte_letters_stay_under_the_cap(location: str) -> None:
    # Eight groups, each past the cap many times over (the running total is what is tested, not the
    # count: twenty thousand letters took half a minute on PostgreSQL for the same check).
    cap = 16 * 1024
    with open_store(location) as store:
        for start in range(0, 4_000, 500):  # groups, as the receiver commits them
            outcomes = store.commit_group(
                [DeadLetterWrite(b"x", "text/xml", f"refused {n}", max_total=cap) for n in range(start, start + 500)]
            )
            assert all(o.error is None and o.result > 0 for o in outcomes)
        totals = store.dead_letter_totals()
        sizes = _sizes_stored(store)
        # Everything a letter stores counts: one body byte is ~80 bytes with its reason and row.
        assert sum(sizes) == totals.bytes <= cap
        assert totals.bytes > cap - max(sizes)  # full, not emptied
        assert len(sizes) + totals.rotated == 4_000
        assert store.counts()["dead_letters"] == len(sizes) < cap // ROW_OVERHEAD
        newest = store.dead_letters(after_id=0, limit=100_000)[-1]
        assert newest.reason == "refused 3999"  # the newest kept, the oldest rotated out


def test_the_oldest_are_rotated_out_and_a_letter_over_the_cap_alone_is_not_kept(
    location: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = Throttled(dead_letters._log, dead_letters._rotation_log.text)
    monkeypatch.setattr(dead_letters, "_rotation_log", fresh)  # this test's minute
    size = letter_size(b"x" * 400, "text/xml", "bad")
    with open_store(location) as store, caplog.at_level(logging.WARNING, "uws_adapter.store"):
        kept = [store.apply(DeadLetterWrite(b"x" * 400, "text/xml", "bad", max_total=2 * size)) for _ in range(4)]
        assert all(k > 0 for k in kept)
        assert [letter.id for letter in store.dead_letters()] == kept[2:]
        assert store.dead_letter_totals().bytes == 2 * size
        assert store.dead_letter_totals().rotated == 2
        assert store.apply(DeadLetterWrite(b"x" * 4000, "text/xml", "big", max_total=2 * size)) == 0
        assert [letter.id for letter in store.dead_letters()] == kept[2:]  # nothing rotated for it
    rotations = [r for r in caplog.records if "rotated out" in r.getMessage()]
    assert len(rotations) == 1  # at most one line a minute


def test_what_a_handler_gives_up_counts_under_the_last_cap(location: str) -> None:
    size = letter_size(b"y" * 1000, "text/xml", "bad")
    with open_store(location) as store:
        _first, second = (
            store.apply(DeadLetterWrite(b"y" * 1000, "text/xml", "bad", max_total=2 * size)) for _ in "12"
        )
        [(event_id, _new)] = [o.result for o in store.commit_group([CallbackWrite(_cb(1), ("relay",))])]
        store.handler_gave_up(event_id, "relay", "no such listener")
        totals = store.dead_letter_totals()
        assert totals.max_bytes == 2 * size
        assert sum(_sizes_stored(store)) == totals.bytes <= 2 * size
        letters = store.dead_letters()
        assert next(letter.id for letter in letters) == second  # the first was rotated out for it
        assert letters[1].reason.startswith("handler 'relay' gave up")


def test_purges_keep_the_total_right(location: str) -> None:
    with open_store(location) as store:
        ids = [store.apply(DeadLetterWrite(b"z" * 10, None, f"r{n}", max_total=None)) for n in range(5)]
        assert store.dead_letter_totals().max_bytes is None
        assert store.purge_dead_letters(ids=ids[:2]) == 2
        assert sum(_sizes_stored(store)) == store.dead_letter_totals().bytes
        assert store.purge_dead_letters(before=0.0) == 0
        assert store.purge_dead_letters() == 3
        assert store.dead_letter_totals().bytes == 0
        assert store.dead_letter(ids[4]) is None


def test_letters_of_a_schema_4_file_are_sized_and_summed_once_on_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    old = sqlite_at_version(path, 4)
    insert = "INSERT INTO dead_letters (received_at, content_type, reason, body) VALUES (?, ?, ?, ?)"
    old.execute(insert, (1, "text/xml", "bad", b"<a"))
    old.execute(insert, (2, None, "é", b""))
    old.close()
    with Store(path) as store:
        expected = [letter_size(b"<a", "text/xml", "bad"), letter_size(b"", None, "é")]
        assert [letter.size for letter in store.dead_letters()] == expected
        assert store.dead_letter_totals() == DeadLetterTotals(sum(expected), 0, None)
        tables = {row[0] for row in store._reader().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "bridge_login_failures" not in tables  # the LogIn throttle is in memory now
