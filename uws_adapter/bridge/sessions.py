"""The bridge's legacy sessions, kept in its store so that a restart does not end them (a legacy
system's token stays valid until 20 minutes idle, as UWS's), and its failed-LogIn throttle. The
rules (expiry, how long an expired token is recognised, the throttle's delays and answers) are
:mod:`uws_adapter.soap.sessions`; the store returns rows.

Only the SHA-256 of a token is stored, never the token: whoever reads the database cannot use
the sessions in it. Times are wall-clock seconds (``clock``, injectable for tests), because they
must mean the same thing to the next process.

A session's use is written to the store at most every ``touch_every`` seconds (a minute, at most a
tenth of the idle time), not on every call: what is written is only what must survive a crash, and
losing up to a minute of idle time in a crash costs a legacy client at worst one ``Expired`` and
one new LogIn, which UWS clients do anyway. This process answers by what it saw itself, so without a
crash a session expires to the second.

Failed LogIns are throttled by **client address** (an IPv6 /64), in this process's memory: no
store write per failure, nothing locked by name, so that guesses from one address never lock out the
legacy system calling from another. A restart clears the throttle; instances sharing a store each
keep their own.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable, Optional, Tuple, TypeVar

from uws_adapter.errors import Code, Refused, UwsAdapterError
from uws_adapter.soap.sessions import (
    DEFAULT_LOCKOUT,
    KEEP_EXPIRED,
    MAX_SESSIONS,
    LoginThrottle,
    LoginVerdict,
    check_session,
    client_key,
    login_refusal,
)
from uws_adapter.store.interfaces import SessionStore
from uws_adapter.waits import check_seconds

__all__ = ["DEFAULT_LOCKOUT", "StoredSessions"]

log = logging.getLogger("uws_adapter.bridge")
T = TypeVar("T")

#: How often, at most, a process purges sessions expired over a day ago (when one opens).
PURGE_EVERY = 60.0
_UNEXPECTED = Code.UNEXPECTED  # [doc]


def _digest(token: Optional[str]) -> str:
    return hashlib.sha256((token or "").encode("utf-8", "surrogatepass")).hexdigest()


class StoredSessions:
    """Legacy session tokens with idle expiry in ``store``, and the LogIn throttle. ``lockout``:
    the longest delay a failing address waits (None: no bound)."""

    def __init__(
        self,
        store: SessionStore,
        *,
        idle: float = 20 * 60,
        lockout: Optional[float] = DEFAULT_LOCKOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        idle = check_seconds("session idle", idle, "1200")
        if lockout is not None:
            lockout = check_seconds("lockout", lockout, "1800, or None for no bound")
        self.store = store
        self.idle = idle
        self.clock = clock
        self.touch_every = min(60.0, idle / 10)
        self.throttle = LoginThrottle(max_delay=lockout, clock=clock)
        # digest -> (last use seen here, last use written): the least recently used first.
        self._seen: OrderedDict[str, Tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._purged_at = float("-inf")

    def _store(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except UwsAdapterError as exc:  # disk full, store closed: a fault the legacy client can retry
            log.warning("bridge sessions: the store failed (%s)", type(exc).__name__)
            raise Refused(_UNEXPECTED, "the bridge could not read or record the session; try again later") from None

    def _remember(self, key: str, used: float, written: float) -> None:
        with self._lock:
            self._seen[key] = (used, written)
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_SESSIONS:
                self._seen.popitem(last=False)

    # Sessions ------------------------------------------------------------------------------------

    def open(self) -> str:
        token = secrets.token_hex(16)
        key, now = _digest(token), self.clock()
        forget_before: Optional[float] = None
        if now - self._purged_at >= PURGE_EVERY:  # sessions nobody closed go, a day after expiring
            self._purged_at, forget_before = now, now - self.idle - KEEP_EXPIRED
        self._store(lambda: self.store.open_session(key, now, forget_before))
        self._remember(key, now, now)
        return token

    def touch(self, token: Optional[str]) -> None:
        """Note a use of ``token``; :class:`Refused` when it is unknown or has expired."""
        key, now = _digest(token), self.clock()
        stored = self._store(lambda: self.store.session_last_used(key))
        with self._lock:
            if stored is None:  # never issued, logged out (here or on another instance), or purged
                self._seen.pop(key, None)
            used, written = self._seen.get(key, (stored, stored))
        check_session(None if stored is None or used is None else max(stored, used), now, self.idle)
        assert stored is not None  # check_session refused a missing row
        assert written is not None
        if now - max(stored, written) >= self.touch_every:
            self._store(lambda: self.store.touch_session(key, now))
            written = now
        self._remember(key, now, written)

    def close(self, token: Optional[str]) -> None:
        key = _digest(token)
        with self._lock:
            self._seen.pop(key, None)
        self._store(lambda: self.store.close_session(key))

    # LogIn throttle ------------------------------------------------------------------------------

    def check_login(self, client: Optional[str], matched: bool) -> None:
        """Count a LogIn from ``client`` (its address) whose credentials were right or not
        (``matched``): :class:`Refused` when they were wrong or the address must wait."""
        address = client_key(client)
        verdict, wait = self.throttle.attempt(address, matched)
        if verdict is LoginVerdict.WRONG and wait > 0:  # once per doubling: a few lines per address a day
            log.warning("failed legacy LogIns from %s: refused for %.0f s", address, wait)
        refused = login_refusal(verdict, wait if verdict is LoginVerdict.THROTTLED else 0.0)
        if refused is not None:
            raise refused
