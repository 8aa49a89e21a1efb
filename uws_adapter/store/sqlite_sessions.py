"""The bridge's legacy sessions and login lockouts in the SQLite store (the
:class:`~uws_adapter.store.interfaces.SessionStore` role): each operation one transaction of the
store's writer, so that processes sharing the file take turns. The policy (idle expiry, how many
failures lock a login) is the bridge's, in :mod:`uws_adapter.bridge.sessions`."""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


class SqliteSessions:
    """Mixed into :class:`~uws_adapter.store.sqlite.Store`, which provides :meth:`write`."""

    def write(self, work: Callable[[sqlite3.Connection], T], *, timeout: float = 30.0) -> T:
        raise NotImplementedError  # the Store's

    def open_session(self, token_sha256: str, now: float, forget_before: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM bridge_sessions WHERE last_used < ?", (forget_before,))
            db.execute("INSERT INTO bridge_sessions (token_sha256, last_used) VALUES (?, ?)", (token_sha256, now))

        self.write(work)

    def touch_session(self, token_sha256: str, now: float, idle: float) -> str:
        def work(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT last_used FROM bridge_sessions WHERE token_sha256 = ?", (token_sha256,)).fetchone()
            if row is None:
                return "unknown"
            if now - float(row[0]) > idle:
                db.execute("DELETE FROM bridge_sessions WHERE token_sha256 = ?", (token_sha256,))
                return "expired"
            db.execute("UPDATE bridge_sessions SET last_used = ? WHERE token_sha256 = ?", (now, token_sha256))
            return "valid"

        return self.write(work)

    def close_session(self, token_sha256: str) -> None:
        self.write(lambda db: db.execute("DELETE FROM bridge_sessions WHERE token_sha256 = ?", (token_sha256,)))

    def count_login(
        self, username: str, matched: bool, now: float, *, lock_after: Optional[int], lockout: Optional[float]
    ) -> str:
        def work(db: sqlite3.Connection) -> str:
            row = db.execute(
                "SELECT failures, locked_at FROM bridge_login_failures WHERE username = ?", (username,)
            ).fetchone()
            failures = int(row[0]) if row else 0
            if row is not None and row[1] is not None:
                if lockout is None or now - float(row[1]) < lockout:
                    return "locked"
                failures = 0  # the lock has run out: a fresh count
            if matched:
                db.execute("DELETE FROM bridge_login_failures WHERE username = ?", (username,))
                return "ok"
            failures += 1
            locked_at = now if lock_after is not None and failures >= lock_after else None
            db.execute(
                "INSERT OR REPLACE INTO bridge_login_failures (username, failures, locked_at) VALUES (?, ?, ?)",
                (username, failures, locked_at),
            )
            return "locking" if locked_at is not None else "wrong"

        return self.write(work)

    def unlock_login(self, username: str) -> bool:
        cleared: Any = self.write(
            lambda db: db.execute("DELETE FROM bridge_login_failures WHERE username = ?", (username,)).rowcount
        )
        return bool(cleared)
