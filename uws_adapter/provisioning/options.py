"""How one kind of outbound HTTP request is bounded: one frozen, validated value.

Every request we send (the clients' calls, the bridge's relays, the emulator's callbacks) goes
through :class:`~uws_adapter.provisioning.engine.Engine` with a :class:`SendOptions`: per-wait
timeouts, a **deadline** for the whole exchange (connect, send, and the complete answer: a server
that trickles one byte a second under the read timeout still runs into it), a **cap on the
answer's size** after decompression, and how often a request that provably never left is tried
again (capped, jittered backoff). Redirects are never followed: a provisioning request or a
callback is sent where it was configured to go, or not at all. Like httpx's ``Timeout`` and
urllib3's ``Retry``, the value is checked once, when it is made, and then passed around.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Tuple

from uws_adapter.errors import InputError, shown
from uws_adapter.waits import LONGEST_WAIT, check_seconds

__all__ = [
    "CALLBACK_OPTIONS", "CLIENT_OPTIONS", "DEFAULT_DEADLINE", "DEFAULT_MAX_ANSWER_BYTES", "DEFAULT_TIMEOUT",
    "LONGEST_WAIT", "RELAY_OPTIONS", "SendOptions", "check_deadline", "check_max_answer_bytes", "check_seconds",
    "check_timeout",
]  # fmt: skip

#: (connect, read) seconds. The carrier can take a while to accept a 10,000-device request.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 120.0)
#: Seconds for a whole exchange: connect, send, and read the complete answer.
DEFAULT_DEADLINE = 180.0
#: Bytes of an answer, after decompression. A RequestId answer is a few hundred bytes.
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024


def check_timeout(timeout: object) -> Tuple[float, float]:
    """``timeout`` as (connect, read) seconds, both waits :func:`~uws_adapter.waits.check_seconds`
    takes; never None (requests would wait forever)."""
    why = ""
    if isinstance(timeout, tuple) and len(timeout) == 2:
        try:
            return check_seconds("connect", timeout[0], "10"), check_seconds("read", timeout[1], "120")
        except InputError as exc:
            why = f" ({exc.field} {exc.problem})"  # refused as a pair, the way it is given, saying which
    raise InputError("timeout", f"{shown(timeout)} is not (connect, read) seconds{why}", "pass e.g. (10, 120)")


def check_deadline(deadline: object) -> float:
    """``deadline`` as positive seconds."""
    return check_seconds("deadline", deadline, "180")


def check_max_answer_bytes(limit: object) -> int:
    """``limit`` as a positive byte count."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError("max_answer_bytes", f"{shown(limit)} is not a byte count", "pass e.g. 1048576")
    return limit


@dataclass(frozen=True)
class SendOptions:
    """The bounds of one kind of request (see the module); :meth:`with_` gives a checked copy."""

    #: (connect, read) seconds: each wait for a connection, and for each piece of the answer.
    timeout: Tuple[float, float] = DEFAULT_TIMEOUT
    #: Seconds for the whole exchange; also caps each wait.
    deadline: float = DEFAULT_DEADLINE
    #: The largest answer accepted, counted after decompression, enforced while reading.
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    #: Further attempts for a request that provably never left (refused, DNS, connect timeout).
    connect_retries: int = 3
    #: First backoff before such a retry, in seconds; doubled each time, jittered, capped by ``max_backoff``.
    backoff: float = 0.5
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", check_timeout(self.timeout))
        object.__setattr__(self, "deadline", check_deadline(self.deadline))
        object.__setattr__(self, "max_answer_bytes", check_max_answer_bytes(self.max_answer_bytes))
        retries = self.connect_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InputError("connect_retries", f"{shown(retries)} is not a count", "pass 0 to 100")
        object.__setattr__(self, "backoff", check_seconds("backoff", self.backoff, "0.5", zero=True))
        object.__setattr__(self, "max_backoff", check_seconds("max_backoff", self.max_backoff, "8", zero=True))

    def with_(self, **changes: Any) -> SendOptions:
        """A copy with ``changes`` (the old constructor keywords: ``timeout=``, ``deadline=``, ...);
        an unknown name is a :class:`TypeError`, as for any keyword argument."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r} (options are: {', '.join(sorted(known))})")
        given: Dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given) if given else self


#: The clients' calls to the carrier (and the bridge's to the REST API).
CLIENT_OPTIONS = SendOptions()
#: The bridge's relay of a callback to the legacy listener: short, so that it ends well inside its
#: handler lease; a listener's acknowledgement is a few hundred bytes. Retries are the handler
#: queue's (with backoff, kept in the store), not the engine's.
RELAY_OPTIONS = SendOptions(timeout=(5.0, 30.0), deadline=30.0, max_answer_bytes=64 * 1024, connect_retries=0)
#: The emulator's callbacks to registered listeners: re-sent by its own queue.
CALLBACK_OPTIONS = SendOptions(timeout=(2.0, 10.0), deadline=15.0, max_answer_bytes=64 * 1024, connect_retries=0)
