"""Dead letters, for both store backends: what one costs, keeping one under the cap, and the
operator's reads and purges (``uws-adapter dead-letters``).

**The cap counts everything stored**: the body, the reason, the media type and an estimate of the
row's own overhead (:data:`ROW_OVERHEAD`: its id, time, size and record header, and its index
entry), as :func:`letter_size`. The total is kept as a running sum in the one row of
``dead_letter_totals``, updated in the transaction that keeps or removes a letter (never a sum over
the table per letter). Past the cap the **oldest letters are rotated out** (deleted, counted in
``rotated`` and logged at most once a minute per process); a letter larger than the cap on its own
is not kept. The cap is the receiver's (``DeadLetterWrite.max_total``, ``--dead-letter-max-bytes``);
the letters kept when a callback's values cannot be stored or a handler gives up count in the same
total under the last cap a receiver wrote (the row's ``max_bytes``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from uws_adapter.logs import Throttled
from uws_adapter.store.sql import Sql

if TYPE_CHECKING:  # interfaces imports this module
    from uws_adapter.store.interfaces import CallbackWrite

__all__ = [
    "LIST", "ONE", "ROW_OVERHEAD", "TOTALS", "DeadLetter", "DeadLetterTotals", "keep_letter", "letter_of",
    "letter_size", "purge",
]  # fmt: skip

_log = logging.getLogger("uws_adapter.store")

#: Bytes one dead letter is reckoned to take beyond its body, reason and media type [estimate:
#: SQLite's record header, id, time and size columns and the rowid index entry come to 30-60 bytes;
#: PostgreSQL's tuple header and item pointer to 28, plus the primary key's index entry].
ROW_OVERHEAD = 64

_LOCK_TOTALS = "UPDATE dead_letter_totals SET rotated = rotated WHERE id = 0"  # PostgreSQL: the row lock
_SET_CAP = "UPDATE dead_letter_totals SET max_bytes = ? WHERE id = 0"
_OLDEST = "SELECT id, size FROM dead_letters WHERE id < ? ORDER BY id LIMIT 32"
_ROTATED = "UPDATE dead_letter_totals SET bytes = ?, rotated = rotated + ? WHERE id = 0"
LIST = "SELECT id, received_at, content_type, reason, size{} FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?"
ONE = "SELECT id, received_at, content_type, reason, size, body FROM dead_letters WHERE id = ?"
TOTALS = "SELECT bytes, rotated, max_bytes FROM dead_letter_totals WHERE id = 0"
_RESUM = "UPDATE dead_letter_totals SET bytes = (SELECT coalesce(sum(size), 0) FROM dead_letters) WHERE id = 0"


def letter_size(body: bytes, content_type: Optional[str], reason: str) -> int:
    """What one letter counts against the cap."""
    text = (content_type or "") + reason
    return len(body) + len(text.encode("utf-8", "replace")) + ROW_OVERHEAD


@dataclass(frozen=True)
class DeadLetter:
    """One stored letter; ``body`` only when one letter was asked for."""

    id: int
    received_at: float
    content_type: Optional[str]
    reason: str
    size: int
    body: Optional[bytes] = None


@dataclass(frozen=True)
class DeadLetterTotals:
    bytes: int  # what the letters held count against the cap
    rotated: int  # letters rotated out past the cap, ever
    max_bytes: Optional[int]  # the cap last written by a receiver (None: none)


_rotation_log = Throttled(_log, "dead letters over their cap of %d bytes: %d oldest rotated out")


def keep_poisoned(db: Sql, write: CallbackWrite, error: BaseException, now: float) -> int:
    """Keep a callback whose values the database refused as a dead letter, in the group's
    transaction, so that it can be acknowledged: it would be refused on every re-send until the
    carrier gives up. The reason names the error's type only: its text may quote the values."""
    reason = f"callback {write.callback.request_id[:80]!r} could not be stored as an event: {type(error).__name__}"
    letter = keep_letter(db, write.dead_letter(), write.media_type, reason, now)
    _log.warning("%s; kept as dead letter %d", reason, letter)
    return letter


def keep_letter(
    db: Sql,
    body: bytes,
    content_type: Optional[str],
    reason: str,
    now: float,
    *,
    cap: Optional[int] = None,
    set_cap: bool = False,
) -> int:
    """Keep one letter inside ``db``'s transaction, rotating the oldest out past the cap: ``cap``
    when ``set_cap`` (a receiver's letter; None: no cap), else the cap last written. The letter's
    id, or 0 when it is larger than the cap on its own."""
    if set_cap:
        db.run(_SET_CAP, (cap,))
    else:
        db.run(_LOCK_TOTALS)
    totals = db.one(TOTALS)
    assert totals is not None  # the schema's one row
    held, limit = int(totals[0]), (cap if set_cap else totals[2])
    size = letter_size(body, content_type, reason)
    if limit is not None and size > limit:
        if not set_cap:  # the receiver counts and logs its own; these would go unseen
            _log.warning("a dead letter of %d bytes is over the cap of %d: not kept (%s)", size, limit, reason[:200])
        return 0
    letter = db.insert(
        "INSERT INTO dead_letters (received_at, content_type, reason, body, size) VALUES (?, ?, ?, ?, ?)",
        (now, content_type, reason, body, size),
    )
    held, rotated = held + size, 0
    while limit is not None and held > limit:
        oldest = db.all(_OLDEST, (letter,))
        if not oldest:
            break
        last = oldest[0][0]
        for row_id, row_size in oldest:
            if held <= limit:
                break
            held, rotated, last = held - int(row_size), rotated + 1, row_id
        db.run("DELETE FROM dead_letters WHERE id <= ?", (last,))
    db.run(_ROTATED, (held, rotated))
    if rotated and limit is not None:
        _rotation_log.note(int(limit), count=rotated)
    return letter


def letter_of(row: Sequence[Any]) -> DeadLetter:
    """A letter from a row of :data:`LIST` or :data:`ONE`."""
    body = bytes(row[5]) if len(row) > 5 else None
    return DeadLetter(int(row[0]), float(row[1]), row[2], row[3], int(row[4]), body)


def purge(db: Sql, ids: Sequence[int], before: Optional[float]) -> int:
    """Delete the letters ``ids``, or those kept before ``before`` (neither: all); the running total
    is summed again from what is left (once per purge, never per letter)."""
    if ids:
        gone = sum(db.run(f"DELETE FROM dead_letters WHERE {where}", listed) for where, listed in db.lists("id", ids))
    elif before is not None:
        gone = db.run("DELETE FROM dead_letters WHERE received_at < ?", (before,))
    else:
        gone = db.run("DELETE FROM dead_letters")
    db.run(_RESUM)
    return gone
