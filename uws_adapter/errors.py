"""The exception hierarchy of uws-adapter.

Every error the package raises on purpose derives from :class:`UwsAdapterError`::

    UwsAdapterError
    ├── InputError (also ValueError)         bad input to a public entry point
    │   ├── UnsupportedByApi                 valid input the chosen API cannot carry
    │   └── BudgetExceeded                   lines would exceed their daily provisioning budget
    │                                        (.lines: identity, actions in 24 h, when one frees up)
    ├── DocumentError (also ValueError)      an untrusted document (XML or JSON) was refused
    │   └── CallbackParseError               ... and it was meant to be a callback
    ├── TransportError (also ConnectionError) no usable answer from the service
    │   ├── ConnectionFailed                 the request never reached it (safe to send again)
    │   ├── OutcomeUnknown                   it may have been received: reconcile from callbacks
    │   │                                    (.request: what was sent, secrets redacted)
    │   └── RelayRefused                     the legacy listener did not take a relayed callback
    ├── ServiceFault                         the service refused: .code, .message, .http_status
    │   ├── SessionExpired                   ...SessionToken.Expired
    │   ├── InvalidInputFault                INPUT_INVALID..., DeserializationFailed, AccountNotFound
    │   ├── DeviceFault                      DeviceNotFound, Device.*, DeviceState.Invalid
    │   ├── AuthenticationFailed             an OAuth2 error (.code: invalid_client, invalid_token, ...)
    │   └── UnknownFault                     any other code
    ├── Refused                              our server (emulator, bridge) answers with a fault .code
    ├── StoreError (also OSError)            the store could not write: nothing was acknowledged
    ├── ResourceError                        the bundled WSDL/XSD files are missing or broken
    └── HandlerGaveUp                        a handler can never handle an event: no more retries

Messages name the offending field and say how to fix it, so that a CLI can print them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:  # transport imports this module
    from uws_adapter.provisioning.transport import SentRequest


class UwsAdapterError(Exception):
    """Base class of every exception uws-adapter raises on purpose."""


#: The carrier's code for a request it cannot make sense of, when no more precise code applies.
REQUEST_UNDEFINED = "INPUT_INVALID.RequestUndefined"


def install_hint(extra: str) -> str:
    """How to install an optional part: from a checkout, since the distribution's name is not on
    the package index (a hint naming it there would install whatever someone publishes under it)."""
    return f"install it from a checkout of uws-adapter: pip install '.[{extra}]'"


class InputError(UwsAdapterError, ValueError):
    """Input that cannot become a valid request. ``field`` names where it is, ``fix`` what to do,
    and ``code`` is the fault code the carrier answers the same mistake with (what the emulator and
    the bridge send back), set where the error is raised, never derived from the wording."""

    def __init__(self, field: str, problem: str, fix: str, *, code: str = REQUEST_UNDEFINED) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        self.code = code
        super().__init__(f"{field}: {problem}; {fix}")

    def within(self, outer: str) -> InputError:
        """The same error, located inside ``outer`` (e.g. a list index or a file line)."""
        located = type(self)(f"{outer}{self.field}", self.problem, self.fix, code=self.code)
        located.__cause__ = self.__cause__
        return located


class UnsupportedByApi(InputError):
    """A valid request that the chosen API (UWS SOAP or REST) has no way to express."""


#: The fault code for a line over its daily budget: what the emulator's per-device callbacks carry.
PROVISIONING_LIMIT = "REQUEST_FAILED.ProvisioningLimitExceeded"


class BudgetExceeded(InputError):
    """A device-list request would take lines over their daily budget of provisioning actions
    (counted from the request log and stored callbacks of the last 24 hours). Nothing was sent.
    ``lines`` holds, per line over budget, (its identity, its actions in the last 24 hours, the
    time (clock seconds) when one of them is 24 hours old and the line can take this request);
    ``budget`` is the setting it was checked against."""

    def __init__(self, lines: Tuple[Tuple[str, int, float], ...], budget: int) -> None:
        self.lines = lines
        self.budget = budget
        shown = "; ".join(
            f"{line}: {count} in the last 24 h, free from {_utc(frees)}" for line, count, frees in lines[:20]
        )
        more = f"; and {len(lines) - 20} more" if len(lines) > 20 else ""
        super().__init__(
            "daily_budget",
            f"{len(lines)} line(s) at or over the daily budget of {budget} provisioning action(s) ({shown}{more})",
            "wait until then, send the other lines alone, raise daily_budget (--daily-budget, "
            "UWS_ADAPTER_DAILY_BUDGET; 25 with the upgrade), or send anyway with --force (force=True; recorded)",
            code=PROVISIONING_LIMIT,
        )

    def within(self, outer: str) -> InputError:
        located = BudgetExceeded(self.lines, self.budget)
        located.field = f"{outer}{self.field}"
        located.args = (f"{located.field}: {self.problem}; {self.fix}",)
        return located


def _utc(seconds: float) -> str:
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} s"


class DocumentError(UwsAdapterError, ValueError):
    """An untrusted XML or JSON document that is malformed, hostile, too large or of the wrong shape.

    ``line`` is the line of the problem in an XML document, when known.
    """

    def __init__(self, message: str, *, line: Optional[int] = None) -> None:
        self.line = line
        super().__init__(message)


class CallbackParseError(DocumentError):
    """A document that is not a valid carrier callback (UWS SOAP or REST JSON)."""


class TransportError(UwsAdapterError, ConnectionError):
    """No usable answer: an HTML error page, a non-SOAP body, an HTTP error without a fault."""

    def __init__(self, message: str, *, http_status: Optional[int] = None) -> None:
        self.http_status = http_status
        super().__init__(message)


class ConnectionFailed(TransportError):
    """The request never left (DNS, refused connection, connect timeout), even after retries."""


class OutcomeUnknown(TransportError):
    """The request may have been received and acted on (read timeout, reset, HTTP 5xx without a
    fault, an answer over the deadline or the size cap). Provisioning is not idempotent, so it is
    never re-sent blindly: ``request`` is what was sent (a :class:`~uws_adapter.provisioning.transport.SentRequest`,
    secrets redacted), to reconcile from callbacks."""

    #: The id a device-list request was recorded under in the client's store (``outcome-unknown:...``,
    #: which ``uws-adapter status`` accepts), or None when nothing was recorded.
    recorded_as: Optional[str] = None

    def __init__(self, message: str, *, request: SentRequest, http_status: Optional[int] = None) -> None:
        self.request = request
        super().__init__(message, http_status=http_status)


class ServiceFault(UwsAdapterError):
    """The service refused the request: a SOAP fault (or a REST error) with its ``code``."""

    def __init__(self, code: str, message: str, *, http_status: Optional[int] = None) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        super().__init__(f"{code}: {message}" if message else code)


class SessionExpired(ServiceFault):
    """The session token expired (20 minutes idle): log in again."""


class InvalidInputFault(ServiceFault):
    """The service found the request invalid; sending it again will not help."""


class DeviceFault(ServiceFault):
    """A device is unknown, or in a state that does not allow the change."""


class AuthenticationFailed(ServiceFault):
    """The REST API's OAuth2 side refused the credentials or the bearer token: an RFC 6749 / 6750
    error body (``{"error": "invalid_client", "error_description": ...}``); ``code`` is that error.
    Sending again with the same credentials will not help."""


class UnknownFault(ServiceFault):
    """A fault code this package does not classify."""


class RelayRefused(TransportError):
    """The legacy listener did not acknowledge a relayed callback (it will be sent again)."""


class Refused(UwsAdapterError):
    """Raised inside our SOAP and REST servers (the emulator, the bridge): the request is answered
    with the carrier fault ``code`` (without the ``<Service>.`` prefix) and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StoreError(UwsAdapterError, OSError):
    """The store could not write (disk full, locked, closed): nothing was acknowledged."""


class ResourceError(UwsAdapterError):
    """The WSDL or schema files shipped with the package cannot be found or loaded."""


class HandlerGaveUp(UwsAdapterError):
    """Raised by a receiver handler for an event it can never handle (a callback that cannot be
    written in the form it relays, say): the run is not retried but kept, with ``reason``, among the
    dead letters."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
