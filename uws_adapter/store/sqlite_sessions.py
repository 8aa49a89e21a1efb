"""The bridge's legacy sessions in the SQLite store (the
:class:`~uws_adapter.store.interfaces.SessionStore` role): rows only, each write one transaction of
the store's writer, so that processes sharing the file take turns; all but LogOut's committed
without an fsync of their own (a power loss may undo the last ones: a legacy client then logs in
again). The policy (idle expiry, when a use is written) is the bridge's, in
:mod:`uws_adapter.bridge.sessions`."""

from __future__ import annotations

import sqlite3
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class SqliteSessions:
    """Mixed into :class:`~uws_adapter.store.sqlite.Store`, which provides :meth:`write`."""

    def write(self, work: Callable[[sqlite3.Connection], T], *, timeout: float = 30.0, durable: bool = True) -> T:
        raise NotImplementedError  # the Store's

    def _reader(self) -> sqlite3.Connection:
        raise NotImplementedError  # the Store's

    def open_session(self, token_sha256: str, now: float, forget_before: Optional[float]) -> None:
        def work(db: sqlite3.Connection) -> None:
            if forget_before is not None:
                db.execute("DELETE FROM bridge_sessions WHERE last_used < ?", (forget_before,))
            db.execute("INSERT INTO bridge_sessions (token_sha256, last_used) VALUES (?, ?)", (token_sha256, now))

        self.write(work, durable=False)

    def session_last_used(self, token_sha256: str) -> Optional[float]:
        row = (
            self._reader()
            .execute("SELECT last_used FROM bridge_sessions WHERE token_sha256 = ?", (token_sha256,))
            .fetchone()
        )
        return None if row is None else float(row[0])

    def touch_session(self, token_sha256: str, now: float) -> None:
        self.write(
            lambda db: db.execute(
                "UPDATE bridge_sessions SET last_used = max(last_used, ?) WHERE token_sha256 = ?", (now, token_sha256)
            ),
            durable=False,
        )

    def close_session(self, token_sha256: str) -> None:
        self.write(
            lambda db: db.execute("DELETE FROM bridge_sessions WHERE token_sha256 = ?", (token_sha256,)), durable=False
        )
