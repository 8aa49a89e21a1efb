"""The handler and relay queue of the SQL core, written once against the dialect: the runs each
stored callback owes its handlers (the bridge's relay), claimed under a lease so that no two
processes or instances run the same one, retried with a back-off, or given up into the dead letters.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from uws_adapter.store.dead_letters import keep_letter
from uws_adapter.store.sql import Sql, SqlAccess

__all__ = ["HandlerQueueSql", "pg_text"]


def pg_text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it (no NUL, no lone surrogate); SQLite stores it alike,
    so both backends keep the same text."""
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


class HandlerQueueSql(SqlAccess):
    """:class:`~uws_adapter.store.interfaces.HandlerQueue`, mixed into :class:`.core.SqlCore`."""

    def due_handlers(self, limit: int = 500) -> List[Tuple[int, str, int]]:
        """(event id, handler name, attempts so far) of handler runs that are due (a look only)."""
        now = self.clock()
        rows = self._read(
            "read the handler queue",
            lambda db: db.all(
                "SELECT event_id, handler, attempts FROM handler_queue WHERE next_at <= ?"
                " AND coalesce(claimed_until, 0) <= ? ORDER BY event_id LIMIT ?",
                (now, now, limit),
            ),
        )
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    def claim_handlers(
        self, limit: int = 50, *, lease: float = 300.0, names: Optional[Sequence[str]] = None
    ) -> List[Tuple[int, str, int]]:
        """Claim due runs for ``lease`` seconds in one transaction: instances sharing a PostgreSQL
        store claim side by side (SKIP LOCKED), processes sharing a SQLite file take turns on its
        write lock; no two ever claim the same run."""
        if names is not None and not names:
            return []
        now = self.clock()

        def work(db: Sql) -> List[Tuple[int, str, int]]:
            only, chosen = "", ()  # type: Tuple[str, Tuple[object, ...]]
            if names is not None:
                pieces = list(db.lists("handler", list(names)))
                only = " AND (" + " OR ".join(p[0] for p in pieces) + ")"
                chosen = tuple(a for p in pieces for a in p[1])
            rows = db.all(
                "SELECT event_id, handler, attempts FROM handler_queue WHERE next_at <= ?"
                f" AND coalesce(claimed_until, 0) <= ?{only} ORDER BY next_at, event_id LIMIT ?"
                + db.dialect.skip_locked,
                (now, now, *chosen, limit),
            )
            db.many(
                "UPDATE handler_queue SET claimed_until = ? WHERE event_id = ? AND handler = ?",
                [(now + lease, r[0], r[1]) for r in rows],
            )
            return sorted((int(r[0]), str(r[1]), int(r[2])) for r in rows)

        return self._transact("claim handler runs", work)

    def release_handlers(self, runs: Sequence[Tuple[int, str]]) -> None:
        """Give back claimed runs that were not run: due again at once."""
        if runs:
            self._transact(
                "give back handler runs",
                lambda db: db.many(
                    "UPDATE handler_queue SET claimed_until = NULL WHERE event_id = ? AND handler = ?", list(runs)
                ),
            )

    def handler_done(self, event_id: int, handler: str) -> None:
        self._transact(
            "record a handler run",
            lambda db: db.run("DELETE FROM handler_queue WHERE event_id = ? AND handler = ?", (event_id, handler)),
        )

    def handler_failed(self, event_id: int, handler: str, error: str, delay: float) -> None:
        self._transact(
            "record a failed handler run",
            lambda db: db.run(
                "UPDATE handler_queue SET attempts = attempts + 1, next_at = ?, claimed_until = NULL, last_error = ?"
                " WHERE event_id = ? AND handler = ?",
                (self.clock() + delay, pg_text(error)[:500], event_id, handler),
            ),
        )

    def handler_gave_up(self, event_id: int, handler: str, reason: str) -> None:
        """Take a handler run off the queue for good, kept among the dead letters with ``reason``."""
        now = self.clock()

        def work(db: Sql) -> None:
            row = db.one("SELECT callback FROM events WHERE id = ?", (event_id,))
            db.run("DELETE FROM handler_queue WHERE event_id = ? AND handler = ?", (event_id, handler))
            why = pg_text(f"handler {handler!r} gave up on event {event_id}: {reason}")[:500]
            keep_letter(db, (row[0] if row else "").encode("utf-8"), "application/json", why, now)

        self._transact("record a handler that gave up", work)

    def handler_backlog(self) -> Dict[str, Tuple[int, Optional[float]]]:
        """Per handler name: runs queued, and when the oldest of their events was received."""
        rows = self._read(
            "read the handler backlog",
            lambda db: db.all(
                "SELECT q.handler, count(*), min(e.received_at) FROM handler_queue q"
                " LEFT JOIN events e ON e.id = q.event_id GROUP BY q.handler"
            ),
        )
        return {str(r[0]): (int(r[1]), float(r[2]) if r[2] is not None else None) for r in rows}
