"""HTTP sending shared by the UWS and REST clients: timeouts that are never None, and the
no-blind-retry rule.

Provisioning is not idempotent (each line has a small daily budget of actions), so only a request
that provably never left is sent again, with capped, jittered backoff. Anything that may have
reached the service raises :class:`OutcomeUnknown` carrying the request, to be reconciled from
callbacks.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Mapping, Optional, Tuple

import requests
from urllib3.exceptions import NewConnectionError

from .errors import ConnectionFailed, InputError, OutcomeUnknown

#: (connect, read) seconds. The carrier can take a while to accept a 10,000-device request.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 120.0)


def check_timeout(timeout: object) -> Tuple[float, float]:
    """``timeout`` as (connect, read) seconds, both positive; never None (requests would wait forever)."""
    if not (
        isinstance(timeout, tuple)
        and len(timeout) == 2
        and all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in timeout)
    ):
        raise InputError("timeout", f"{timeout!r} is not (connect, read) seconds", "pass e.g. (10, 120)")
    return float(timeout[0]), float(timeout[1])


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably did not leave: no connection was ever made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)
    return False


class HttpSender:
    """POSTs (and other methods) through a :class:`requests.Session` under the rule above."""

    def __init__(
        self,
        *,
        session: Optional[requests.Session] = None,
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        connect_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(connect_retries, bool) or not isinstance(connect_retries, int) or connect_retries < 0:
            raise InputError("connect_retries", f"{connect_retries!r} is not a count", "pass 0 or more")
        self.session = session if session is not None else requests.Session()
        self.timeout = check_timeout(timeout)
        self.connect_retries = connect_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    def send(
        self,
        method: str,
        url: str,
        *,
        request: object,
        headers: Mapping[str, str],
        data: Optional[bytes] = None,
        **options: Any,
    ) -> requests.Response:
        """One HTTP exchange. ``request`` is what an :class:`OutcomeUnknown` carries."""
        attempt = 0
        while True:
            try:
                return self.session.request(
                    method, url, data=data, headers=dict(headers), timeout=self.timeout, allow_redirects=False,
                    **options,
                )  # fmt: skip
            except requests.RequestException as exc:
                if not never_sent(exc):
                    raise OutcomeUnknown(
                        f"{type(exc).__name__} after the request was sent to {url}; it may have been "
                        "carried out: check its callbacks before sending it again",
                        request=request,
                    ) from exc
                if attempt >= self.connect_retries:
                    raise ConnectionFailed(f"could not connect to {url} ({attempt + 1} attempts): {exc}") from exc
                # Capped exponential backoff with full jitter, so many clients do not retry in step.
                self._sleep(random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt)))
                attempt += 1
