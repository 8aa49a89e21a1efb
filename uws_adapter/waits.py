"""How long we may be asked to wait: the one check for every wait given to us (a timeout, a
deadline, a back-off, the spacing of callbacks, a store's patience for its write lock).

Python's own waits (a lock, an event, a socket, a sleep) raise a raw ``OverflowError`` in the thread
that waits for anything much over 292 years, which ends that thread; NaN and infinity never end
at all. So every wait is refused when it is given, naming its field, past a year: far beyond any
exchange or lock we make.
"""

from __future__ import annotations

from uws_adapter.errors import InputError, shown

__all__ = ["LONGEST_WAIT", "check_seconds"]

#: The longest wait of any kind accepted, in seconds: a year.
LONGEST_WAIT = 365 * 24 * 60 * 60.0


def check_seconds(field: str, value: object, example: str, *, zero: bool = False) -> float:
    """``value`` as seconds a wait can take: positive (or zero with ``zero``), finite, at most
    :data:`LONGEST_WAIT`; else the :class:`InputError` naming ``field`` (``example``: a value to give)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN is no number
        raise InputError(field, f"{shown(value)} is not a number of seconds", f"pass e.g. {example}")
    if not (value >= 0 if zero else value > 0):
        wrong = "is below 0 seconds" if zero else "is not a positive number of seconds"
        raise InputError(field, f"{shown(value)} {wrong}", f"pass e.g. {example}")
    if value == float("inf"):
        raise InputError(field, f"{shown(value)} is not a finite number of seconds", f"pass e.g. {example}")
    if value > LONGEST_WAIT:
        raise InputError(field, f"{shown(value)} seconds is longer than a year", f"pass e.g. {example}")
    return float(value)
