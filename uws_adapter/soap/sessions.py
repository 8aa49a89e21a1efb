"""The legacy session and login policy of our SOAP server, decided here once and used by the
bridge (sessions in its store, :mod:`uws_adapter.bridge.sessions`) and by the emulator (in memory,
:class:`IdleSessions`); the stores return rows, never verdicts. The manual states the rules in full
(docs/services.md, "Legacy sessions and the LogIn throttle"): a session expires after ``idle``
seconds unused (UWS: 20 minutes [doc]); an expired token is answered ``SessionToken.Expired`` for a
day ([doc]: the legacy client logs in again once), then ``SessionToken.Invalid`` [inferred code].
Failed LogIns are counted per key (the bridge: the client's address; the emulator: the login name,
as UWS locks an account [doc]); from :data:`FREE_FAILURES` in a row the key waits a doubling delay,
refused unseen meanwhile. Both tables are bounded; no answer depends on whether the name exists.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

from uws_adapter.errors import Code, InputError, Refused, shown

__all__ = [
    "DEFAULT_LOCKOUT", "FREE_FAILURES", "KEEP_EXPIRED", "MAX_FORWARDED", "MAX_SESSIONS", "MAX_THROTTLED",
    "THROTTLED_CODE", "IdleSessions", "LoginThrottle", "LoginVerdict", "SessionVerdict", "check_session",
    "client_address", "client_key", "known_login", "login_refusal", "session_refusal", "session_verdict",
    "trusted_networks",
]  # fmt: skip

#: How long an expired token is still answered ``Expired`` rather than ``Invalid`` (README: a day).
KEEP_EXPIRED = 24 * 3600.0
#: Sessions an in-memory :class:`IdleSessions` keeps at most (the least recently used go first).
MAX_SESSIONS = 100_000
#: The longest a client address that keeps failing LogIns waits between attempts by default.
DEFAULT_LOCKOUT = 30 * 60.0
#: Failures in a row a key makes before it must wait: UWS locks after five [doc].
FREE_FAILURES = 5
#: Keys a :class:`LoginThrottle` remembers at most (about 100 bytes each).
MAX_THROTTLED = 65_536
#: Failures are forgotten a day after a key's last one.
FORGET_FAILURES = 24 * 3600.0
#: The code of a throttled LogIn: the emulator's for UWS's lock [inferred], which legacy systems
#: already treat as "stop logging in and ask someone".
THROTTLED_CODE = Code.ACCOUNT_LOCKED


class SessionVerdict(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"  # idle too long, within a day of expiring
    INVALID = "invalid"  # never issued, logged out, or expired over a day ago


class LoginVerdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"  # counted against the key
    THROTTLED = "throttled"  # refused unseen: the key must wait


def session_verdict(last_used: Optional[float], now: float, idle: float) -> SessionVerdict:
    """The one expiry rule: ``last_used`` is when the session was last used (None: no such session)."""
    if last_used is None:
        return SessionVerdict.INVALID
    quiet = now - last_used
    if quiet <= idle:
        return SessionVerdict.VALID
    return SessionVerdict.EXPIRED if quiet <= idle + KEEP_EXPIRED else SessionVerdict.INVALID


def session_refusal(verdict: SessionVerdict) -> Optional[Refused]:
    """The fault for a session ``verdict`` (None: valid)."""
    if verdict is SessionVerdict.EXPIRED:
        return Refused(Code.SESSION_EXPIRED, "the session token has expired; log in again")  # [doc]
    if verdict is SessionVerdict.INVALID:
        return Refused(Code.SESSION_INVALID, "unknown session token; log in again")  # [inferred]
    return None


def check_session(last_used: Optional[float], now: float, idle: float) -> None:
    """:class:`Refused` with the fault of a session that is not valid (see :func:`session_verdict`)."""
    refused = session_refusal(session_verdict(last_used, now, idle))
    if refused is not None:
        raise refused


def known_login(logins: Mapping[str, str], username: str, password: str) -> bool:
    """Whether ``username`` and ``password`` are one of ``logins`` (name to password), compared with
    every login, always, in constant time: how long a LogIn takes says neither that a name exists
    nor how much of a password was right."""
    # "replace": a lone surrogate (from a JSON escape) is a wrong login, not a crash.
    name, secret = username.encode("utf-8", "replace"), password.encode("utf-8", "replace")
    found = False
    for known_name, known_password in logins.items():
        same_name = hmac.compare_digest(name, known_name.encode("utf-8"))
        found |= same_name & hmac.compare_digest(secret, known_password.encode("utf-8"))
    return found


def login_refusal(verdict: LoginVerdict, wait: float = 0.0) -> Optional[Refused]:
    """The fault for a LogIn ``verdict`` (None: ok); the same bytes whatever name was given."""
    if verdict is LoginVerdict.WRONG:
        return Refused(Code.INVALID_CREDENTIALS, "wrong username or password")  # [inferred] code
    if verdict is LoginVerdict.THROTTLED:
        when = "ask the operator" if math.isinf(wait) else f"try again in {math.ceil(wait)} s"
        return Refused(THROTTLED_CODE, f"too many failed logins; {when}")
    return None


def _ip(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """The address ``text`` names (an IPv6 zone dropped, an IPv4-mapped IPv6 address as IPv4), or
    None when it names none."""
    try:
        ip = ipaddress.ip_address(text.strip().split("%")[0])
    except ValueError:
        return None
    return getattr(ip, "ipv4_mapped", None) or ip


def client_key(address: Optional[str]) -> str:
    """The throttle key of a client address: an IPv4 address, or an IPv6 address's /64 (one
    host gets a whole /64, so single IPv6 addresses would be free to rotate)."""
    ip = _ip(address or "")
    if ip is None:
        return address or "-"  # a unix socket or a test client: one key for what we cannot read
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


#: X-Forwarded-For entries read from the right at most: the nearest proxies' (an attacker can
#: put any number on the left; past this many, the peer itself is the key).
MAX_FORWARDED = 16
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def trusted_networks(values: Sequence[str], origin: str = "trusted proxies") -> Tuple[Network, ...]:
    """The networks of ``values`` (``10.0.0.5``, ``10.0.0.0/8``, ``fd00::/64``), checked."""
    networks = []
    for value in [values] if isinstance(values, str) else values:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise InputError(
                origin, f"{shown(value)} is not an IP address or network", "write e.g. 10.0.0.5 or 10.0.0.0/8"
            ) from None
    return tuple(networks)


def client_address(peer: str, forwarded_for: Optional[str], trusted: Sequence[Network]) -> str:
    """The address a request comes from: ``peer`` (the connection's), unless ``peer`` is a trusted
    proxy; then the rightmost ``X-Forwarded-For`` entry that is not itself a trusted proxy (what
    the nearest proxy saw; entries further left are the client's own word). A malformed entry, or
    none that is untrusted within :data:`MAX_FORWARDED`, leaves ``peer``."""

    def is_trusted(ip: Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]) -> bool:
        return ip is not None and any(ip in network for network in trusted)

    if not trusted or not forwarded_for or not is_trusted(_ip(peer)):
        return peer
    for entry in reversed(forwarded_for.rsplit(",", MAX_FORWARDED)[-MAX_FORWARDED:]):
        ip = _ip(entry)
        if ip is None:
            return peer  # not an address: the proxy did not write it
        if not is_trusted(ip):
            return entry.strip()
    return peer


class LoginThrottle:
    """Failed LogIns counted by key in memory (thread-safe, bounded): see the module's docstring.
    ``max_delay`` None lets the delay grow without bound (in effect until a restart);
    ``first_delay`` infinite locks a key for good after :data:`FREE_FAILURES` (the emulator)."""

    def __init__(
        self,
        *,
        first_delay: float = 1.0,
        max_delay: Optional[float] = 30 * 60.0,
        free_failures: int = FREE_FAILURES,
        capacity: int = MAX_THROTTLED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not first_delay > 0 or (max_delay is not None and not max_delay > 0):
            raise InputError("login delay", "delays must be positive", "give seconds, or None for no upper bound")
        if free_failures < 1 or capacity < 1:
            raise InputError("login throttle", "needs at least one free failure and one key", "give 1 or more")
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.free_failures = free_failures
        self.capacity = capacity
        self._clock = clock
        # key -> (failures in a row, refused until, last failure); oldest last failure first.
        self._keys: OrderedDict[str, Tuple[int, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def attempt(self, key: str, matched: bool) -> Tuple[LoginVerdict, float]:
        """Count one LogIn with ``key`` whose credentials were right or not (``matched``): its
        verdict, and the seconds the key must now wait (infinite: locked for good)."""
        key, now = _held(key), self._clock()
        with self._lock:
            failures, until, last = self._keys.get(key, (0, 0.0, now))
            if now - last > FORGET_FAILURES:
                failures, until = 0, 0.0
            if now < until:
                return LoginVerdict.THROTTLED, until - now
            if matched:
                self._keys.pop(key, None)
                return LoginVerdict.OK, 0.0
            failures += 1
            if failures >= self.free_failures:
                delay = self.first_delay * 2.0 ** min(failures - self.free_failures, 64)
                until = now + (delay if self.max_delay is None else min(delay, self.max_delay))
            self._keys[key] = (failures, until, now)
            self._keys.move_to_end(key)
            while len(self._keys) > self.capacity:
                self._keys.popitem(last=False)
            return LoginVerdict.WRONG, max(until - now, 0.0)

    def waiting(self, key: str) -> bool:
        """Whether ``key`` must wait now (for logs and tests)."""
        with self._lock:
            entry = self._keys.get(_held(key))
        return entry is not None and self._clock() < entry[1]


def _held(key: str) -> str:
    """``key`` as the throttle holds it: a long one (the emulator's keys are usernames, as long as a
    request may be) by its digest, so that the keys held take at most a few MiB, however long."""
    if len(key) <= 64:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class IdleSessions:
    """Session tokens in memory under the rule of :func:`session_verdict` (thread-safe, at most
    ``capacity``, the least recently used forgotten first). The emulator keeps its sessions here.
    ``clock`` measures idle time (tests pass one they move by hand)."""

    def __init__(
        self, idle: float, clock: Callable[[], float] = time.monotonic, *, capacity: int = MAX_SESSIONS
    ) -> None:
        self.idle = idle
        self.capacity = capacity
        self._clock = clock
        self._last_use: OrderedDict[str, float] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def open(self) -> str:
        token = secrets.token_hex(16)
        now = self._clock()
        with self._lock:
            self._last_use[token] = now
            self._forget(now)
        return token

    def touch(self, token: Optional[str]) -> None:
        """Note a use of ``token``; :class:`Refused` when it is unknown or has expired."""
        now, key = self._clock(), token or ""
        with self._lock:
            check_session(self._last_use.get(key), now, self.idle)
            self._last_use[key] = now
            self._last_use.move_to_end(key)

    def close(self, token: Optional[str]) -> None:
        with self._lock:
            self._last_use.pop(token or "", None)

    def __len__(self) -> int:
        """Sessions known: open, or expired and kept to be answered Expired; a logout removes one."""
        with self._lock:
            return len(self._last_use)

    def _forget(self, now: float) -> None:
        """Drop what no verdict needs any more, and the oldest past ``capacity``."""
        sessions = self._last_use
        while sessions and (
            len(sessions) > self.capacity or now - next(iter(sessions.values())) > self.idle + KEEP_EXPIRED
        ):
            sessions.popitem(last=False)
