"""SQLite files as an earlier release left them, for the upgrade tests: the first schema and the
migrations up to ``version``, as they were applied then (each migration is kept as it shipped)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from uws_adapter.store.sqlite_schema import MIGRATIONS, SCHEMA

__all__ = ["sqlite_at_version"]


def sqlite_at_version(path: Path, version: int) -> sqlite3.Connection:
    """A new SQLite file at ``path`` with the schema of ``version`` (autocommit): the caller adds
    the rows an older release would have written, then closes it."""
    old = sqlite3.connect(str(path), isolation_level=None)
    for script in (SCHEMA, *(MIGRATIONS[n] for n in range(1, version + 1))):
        old.executescript(script)
    old.execute(f"PRAGMA user_version = {int(version)}")
    return old
