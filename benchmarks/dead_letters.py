"""What keeping one dead letter costs when the table already holds many, at the cap (so that each
new letter rotates the oldest out), against the same on an empty table (its floor), in one run:
SQLite, full synchronous commits, through the store's writer as the receiver keeps them. Prints
both p50s and their ratio (a running total keeps it near 1; a sum over the table grew with it).

    python benchmarks/dead_letters.py [--letters 1000000] [--keeps 200]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from uws_adapter.store import DeadLetterWrite
from uws_adapter.store.dead_letters import letter_size
from uws_adapter.store.sqlite import Store

BODY, MEDIA, REASON = b"<x", "text/xml", "not well-formed (line 1)"


def _held(path: Path, letters: int) -> int:
    """Fill the store at ``path`` with ``letters`` letters (bulk SQL, not timed); their total."""
    Store(path).close()  # the schema
    size = letter_size(BODY, MEDIA, REASON)
    db = sqlite3.connect(str(path))
    try:
        db.executemany(
            "INSERT INTO dead_letters (received_at, content_type, reason, body, size) VALUES (?, ?, ?, ?, ?)",
            ((float(n), MEDIA, REASON, BODY, size) for n in range(letters)),
        )
        db.execute("UPDATE dead_letter_totals SET bytes = ? WHERE id = 0", (size * letters,))
        db.commit()
    finally:
        db.close()
    return size * letters


def _keep(path: Path, cap: int, keeps: int) -> List[float]:
    timings = []
    with Store(path) as store:
        for _ in range(keeps):
            start = time.perf_counter()
            store.apply(DeadLetterWrite(BODY, MEDIA, REASON, max_total=cap))
            timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--letters", type=int, default=1_000_000, help="letters already held (default 1,000,000)")
    parser.add_argument("--keeps", type=int, default=200, help="letters kept and timed (default 200)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dead-letters-"))
    full_cap = _held(folder / "full.db", args.letters)
    _held(folder / "empty.db", 0)
    size = letter_size(BODY, MEDIA, REASON)
    full = _keep(folder / "full.db", full_cap, args.keeps)  # at the cap: each one rotates one out
    empty = _keep(folder / "empty.db", size * (args.keeps + 1), args.keeps)
    with Store(folder / "full.db") as store:
        totals = store.dead_letter_totals()
    full_p50, empty_p50 = statistics.median(full), statistics.median(empty)
    print(f"keeping one dead letter, {args.keeps} times, SQLite FULL (Python {sys.version.split()[0]})")
    print(f"{args.letters:>12,} letters held, at the cap: p50 {full_p50:.2f} ms")
    print(f"{0:>12,} letters held (floor):   p50 {empty_p50:.2f} ms")
    held = f"{totals.bytes:,} of {full_cap:,} bytes held"
    print(f"ratio {full_p50 / empty_p50:.2f}x; {totals.rotated} rotated out, {held}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
