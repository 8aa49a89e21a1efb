"""The bridge's legacy sessions and login lockout, kept in its store so that a restart changes
neither: a legacy system's token stays valid (until 20 minutes idle, as UWS's), and a locked
legacy login stays locked.

Only the SHA-256 of a token is stored, never the token: whoever reads the database cannot use
the sessions in it. Times are wall-clock seconds (``clock``, injectable for tests), because they
must mean the same thing to the next process.

Lockout follows UWS and the emulator: five failed logins in a row lock the login [doc], and
every later LogIn, with the right password or not, gets ``REQUEST_FAILED.AccountLocked``
[inferred, as in the emulator]. UWS documents no duration; the bridge keeps the lock for
``lockout`` seconds (``None``: until an operator unlocks it, see :func:`unlock`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Callable, Optional, TypeVar

from uws_adapter.errors import Code, InputError, Refused, UwsAdapterError
from uws_adapter.store.interfaces import SessionStore

log = logging.getLogger("uws_adapter.bridge")
T = TypeVar("T")

#: Failed logins in a row that lock a legacy login, as UWS [doc] and the emulator.
MAX_FAILED_LOGINS = 5
#: How long a lock lasts by default (UWS documents none; long enough to make guessing useless).
DEFAULT_LOCKOUT = 30 * 60.0
LOCKED_CODE = Code.ACCOUNT_LOCKED  # [inferred], the emulator's code
_INVALID = Code.SESSION_INVALID  # [inferred] code, as IdleSessions
_EXPIRED = Code.SESSION_EXPIRED  # [doc]
_UNEXPECTED = Code.UNEXPECTED  # [doc]
#: Failures for logins that do not exist are counted under this key (no legacy login is empty),
#: so that a wrong name costs the same store write as a wrong password and timing says nothing.
_NO_SUCH_LOGIN = ""

#: How long an expired session's hash is kept, to answer Expired rather than Invalid.
_KEEP_EXPIRED = 24 * 3600.0


def _digest(token: Optional[str]) -> str:
    return hashlib.sha256((token or "").encode("utf-8", "surrogatepass")).hexdigest()


def unlock(store: SessionStore, username: str) -> bool:
    """Clear ``username``'s failed logins and lock (the operator's unlock); True if it had any."""
    cleared = store.unlock_login(username)
    if cleared:
        log.info("legacy login %r unlocked by the operator", username)
    return bool(cleared)


class StoredSessions:
    """Legacy session tokens with idle expiry, and the login lockout, in ``store``."""

    def __init__(
        self,
        store: SessionStore,
        *,
        idle: float = 20 * 60,
        lockout: Optional[float] = DEFAULT_LOCKOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if idle <= 0:
            raise InputError("session idle", f"{idle} is not positive", "give the idle expiry in seconds")
        if lockout is not None and lockout <= 0:
            raise InputError("lockout", f"{lockout} is not positive", "give seconds, or None for until unlocked")
        self.store = store
        self.idle = idle
        self.lockout = lockout
        self.clock = clock

    def _write(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except UwsAdapterError as exc:  # disk full, store closed: a fault the legacy client can retry
            log.warning("bridge sessions: the store refused a write (%s)", type(exc).__name__)
            raise Refused(_UNEXPECTED, "the bridge could not record the session; try again later") from None

    # Sessions ------------------------------------------------------------------------------------

    def open(self) -> str:
        token = secrets.token_hex(16)
        now = self.clock()
        # Sessions nobody closed go when a new one opens, so the table stays small; a day late,
        # so that a legacy system coming back after a while still hears "Expired" [doc].
        self._write(lambda: self.store.open_session(_digest(token), now, now - self.idle - _KEEP_EXPIRED))
        return token

    def touch(self, token: Optional[str]) -> None:
        """Note a use of ``token``; :class:`Refused` when it is unknown or has expired."""
        now, key = self.clock(), _digest(token)
        outcome = self._write(lambda: self.store.touch_session(key, now, self.idle))
        if outcome == "unknown":
            raise Refused(_INVALID, "unknown session token; log in again")
        if outcome == "expired":
            raise Refused(_EXPIRED, "the session token has expired; log in again")

    def close(self, token: Optional[str]) -> None:
        key = _digest(token)
        self._write(lambda: self.store.close_session(key))

    # Lockout -------------------------------------------------------------------------------------

    def check_login(self, login: Optional[str], matched: bool) -> None:
        """Count a LogIn attempt on the legacy ``login`` it named (None: no such login) whose
        password was right or not (``matched``): :class:`Refused` when the login is locked or the
        credentials are wrong."""
        now = self.clock()
        known = login is not None
        key = login if login is not None else _NO_SUCH_LOGIN

        outcome = self._write(
            lambda: self.store.count_login(
                key, matched, now, lock_after=MAX_FAILED_LOGINS if known else None, lockout=self.lockout
            )
        )
        if outcome == "locked":
            raise Refused(LOCKED_CODE, f"login locked after {MAX_FAILED_LOGINS} failed logins; ask the operator")
        if outcome == "locking":  # only configured logins lock: the name is ours, not the client's
            log.warning("legacy login %r locked after %d failed logins in a row", login, MAX_FAILED_LOGINS)
        if outcome != "ok":
            raise Refused(Code.INVALID_CREDENTIALS, "wrong username or password")  # [inferred] code
