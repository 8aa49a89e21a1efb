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
    │   ├── DeviceFault                      DeviceNotFound, Device.Kind/Identifier, DeviceState.Invalid
    │                                        (codes -> classes: FAULT_CLASSES, below the tree)
    │   ├── AuthenticationFailed             an OAuth2 error (.code: invalid_client, invalid_token, ...)
    │   └── UnknownFault                     any other code
    ├── Refused                              our server (emulator, bridge) answers with a fault .code
    ├── StoreError (also OSError)            the store could not write: nothing was acknowledged
    ├── BatchFailed                          a batched send stopped part way (.sent, .error)
    ├── ResourceError                        the bundled WSDL/XSD files are missing or broken
    └── HandlerGaveUp                        a handler can never handle an event: no more retries

Messages name the offending field and say how to fix it, so that a CLI can print them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Mapping, Optional, Tuple, Type

if TYPE_CHECKING:  # sent imports this module
    from uws_adapter.provisioning.sent import SentRequest


class UwsAdapterError(Exception):
    """Base class of every exception uws-adapter raises on purpose."""


class Code:
    """The carrier's fault codes we raise, send or read, written once ([doc] unless marked). UWS
    writes them after a ``<Service>.`` prefix (``CarrierService.REQUEST_FAILED.DeviceNotFound``),
    REST bare; :func:`fault_for` maps either to its exception class by :data:`FAULT_CLASSES`."""

    REQUEST_UNDEFINED = "INPUT_INVALID.RequestUndefined"
    MAX_REQUESTS_EXCEEDED = "INPUT_INVALID.MaxRequestsExceeded"
    INVALID_CHARACTER = "INPUT_INVALID.Request.InvalidCharacter"
    CUSTOM_FIELD_NAME = "INPUT_INVALID.CustomField.InvalidName"
    CUSTOM_FIELD_TOO_LONG = "INPUT_INVALID.CustomField.TooLong"
    DEVICE_KIND = "INPUT_INVALID.Device.Kind.Invalid"
    DEVICE_IDENTIFIER = "INPUT_INVALID.Device.Identifier.Invalid"
    DEVICE_STATE = "INPUT_INVALID.DeviceState.Invalid"
    DEVICE_NOT_FOUND = "REQUEST_FAILED.DeviceNotFound"
    ACCOUNT_NOT_FOUND = "REQUEST_FAILED.AccountNotFound"
    SESSION_EXPIRED = "REQUEST_FAILED.SessionToken.Expired"
    SESSION_INVALID = "REQUEST_FAILED.SessionToken.Invalid"  # [inferred]
    UNEXPECTED = "REQUEST_FAILED.UnexpectedError"
    PROVISIONING_LIMIT = "REQUEST_FAILED.ProvisioningLimitExceeded"  # [inferred]
    ACCOUNT_LOCKED = "REQUEST_FAILED.AccountLocked"  # [inferred]
    INVALID_CREDENTIALS = "REQUEST_FAILED.InvalidCredentials"  # [inferred]
    CALLBACK_NOT_FOUND = "REQUEST_FAILED.CallbackNotFound"  # [inferred]
    CALLBACK_REGISTERED = "REQUEST_FAILED.CallbackAlreadyRegistered"  # [inferred]
    #: WCF's fault for a body that does not match the contract (no family prefix).
    DESERIALIZATION_FAILED = "DeserializationFailed"
    #: Families: the first dotted part of a code.
    INPUT_INVALID = "INPUT_INVALID"
    REQUEST_FAILED = "REQUEST_FAILED"


#: Said with every refused login: the carrier locks an account after five in a row [doc].
LOCKOUT = "five failed logins in a row lock the account: do not retry in a loop"
#: What to do about a fault the service answered with, where its own text says only what went
#: wrong, in the terms of our command line and environment (the command line adds it to the
#: fault's line); other codes speak for themselves.
FAULT_FIXES: Dict[str, str] = {
    Code.INVALID_CREDENTIALS: f"check --username and --password (UWS_USERNAME, UWS_PASSWORD); {LOCKOUT}",
    # The bridge answers its LogIn throttle with this code too, saying how long to wait: a lock of
    # the carrier's is for good [doc] and needs the carrier.
    Code.ACCOUNT_LOCKED: (
        "failed logins locked this login: wait as long as the service says, if it says; otherwise "
        "ask the carrier to unlock the account, and fix the password before the next try"
    ),
}


def install_hint(extra: str) -> str:
    """How to install an optional part: from a checkout, since the distribution's name is not on
    the package index (a hint naming it there would install whatever someone publishes under it)."""
    return f"install it from a checkout of uws-adapter: pip install '.[{extra}]'"


#: The most of a value given to us that an error quotes: enough to recognise it.
SHOWN_CHARACTERS = 40


def shown(value: object) -> str:
    """``value`` as an error quotes it: text by its first :data:`SHOWN_CHARACTERS` characters,
    another value by its repr cut there, an integer past 128 bits by its size. Python refuses to
    write an integer of over 4,300 digits (a raw ``ValueError`` in place of the error that meant to
    quote it) and writes a long one in quadratic time."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length():,} bits"
    if isinstance(value, str):  # its first characters, quoted whole
        return repr(value[:SHOWN_CHARACTERS]) + ("..." if len(value) > SHOWN_CHARACTERS else "")
    try:
        text = repr(value)
    except ValueError:  # a container holding such an integer
        return f"a {type(value).__name__} holding an integer too long to write"
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."


def kind_of(value: object) -> str:
    """What ``value`` is, in the words of a JSON or SOAP wire (``a string``, ``a number``, ``a
    boolean``, ``null``, ``an object``, ``an array``): the one way an error names the type of a value
    that came from a wire, whose sender knows no Python type ("got int"). A value only a program
    can give (bytes, a set) is named by its type. Never the value itself: it may be a password."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


class InputError(UwsAdapterError, ValueError):
    """Input that cannot become a valid request. ``field`` names where it is, ``fix`` what to do,
    and ``code`` is the fault code the carrier answers the same mistake with (what the emulator and
    the bridge send back), set where the error is raised, never derived from the wording."""

    def __init__(
        self, field: str, problem: str, fix: str, *, code: str = Code.REQUEST_UNDEFINED, wire_fix: Optional[str] = None
    ) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        self.code = code
        #: The fix in the terms of the operation (for a fault sent to a SOAP or REST client), when
        #: ``fix`` speaks of our command line or Python API; None when ``fix`` serves both.
        self.wire_fix = wire_fix
        super().__init__(f"{field}: {problem}; {fix}")

    def fault_text(self) -> str:
        """What a fault sent to a SOAP or REST client says: the problem, and a fix in the
        operation's terms only (never our command line's options or Python arguments)."""
        fix = self.fix if self.wire_fix is None else self.wire_fix
        return f"{self.field}: {self.problem}" + (f"; {fix}" if fix else "")

    def within(self, outer: str) -> InputError:
        """The same error, located inside ``outer`` (e.g. a list index or a file line)."""
        located = type(self)(f"{outer}{self.field}", self.problem, self.fix, code=self.code, wire_fix=self.wire_fix)
        located.__cause__ = self.__cause__
        return located


class UnsupportedByApi(InputError):
    """A valid request that the chosen API (UWS SOAP or REST) has no way to express."""


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
            code=Code.PROVISIONING_LIMIT,
            wire_fix="send those lines again once the time given has passed, or send the other lines alone",
        )

    def within(self, outer: str) -> InputError:
        located = BudgetExceeded(self.lines, self.budget)
        located.field = f"{outer}{self.field}"
        located.wire_fix = self.wire_fix
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
    never re-sent blindly: ``request`` is what was sent (a :class:`~uws_adapter.provisioning.sent.SentRequest`,
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


#: Fault code (without its ``<Service>.`` prefix) -> exception class; a code not listed takes its
#: family's entry (``INPUT_INVALID``), else :class:`UnknownFault`.
FAULT_CLASSES: Dict[str, Type[ServiceFault]] = {
    Code.SESSION_EXPIRED: SessionExpired,
    Code.DEVICE_NOT_FOUND: DeviceFault,
    Code.DEVICE_STATE: DeviceFault,
    Code.DEVICE_KIND: DeviceFault,
    Code.DEVICE_IDENTIFIER: DeviceFault,
    Code.ACCOUNT_NOT_FOUND: InvalidInputFault,
    Code.DESERIALIZATION_FAILED: InvalidInputFault,
    Code.INPUT_INVALID: InvalidInputFault,
}
#: Codes that refuse the session token: one new login and one resend are safe.
SESSION_REFUSALS = frozenset({Code.SESSION_EXPIRED, Code.SESSION_INVALID})


def bare_code(code: str) -> str:
    """``code`` without a QName prefix (``a:``) or a ``<Service>.`` prefix: the key of
    :data:`FAULT_CLASSES`."""
    bare = code.strip().rpartition(":")[2]
    family, dot, rest = bare.partition(".")  # CarrierService.REQUEST_FAILED...: the service dropped
    return rest if dot and family not in (Code.INPUT_INVALID, Code.REQUEST_FAILED) else bare


def fault_class(code: str) -> Type[ServiceFault]:
    """The exception class a fault code means, by :data:`FAULT_CLASSES`."""
    bare = bare_code(code)
    return FAULT_CLASSES.get(bare) or FAULT_CLASSES.get(bare.partition(".")[0]) or UnknownFault


def fault_for(code: str, message: str, http_status: Optional[int] = None) -> ServiceFault:
    """The exception for a fault the service answered with."""
    return fault_class(code)(code, message, http_status=http_status)


def fault_fix(fault: ServiceFault) -> Optional[str]:
    """What to do about ``fault`` (:data:`FAULT_FIXES`), or None when its text is enough."""
    return FAULT_FIXES.get(bare_code(fault.code))


def refuses_session(fault: ServiceFault) -> bool:
    """True for a fault that refuses the session token (expired, or unknown after a restart)."""
    return isinstance(fault, SessionExpired) or bare_code(fault.code) in SESSION_REFUSALS


class RelayRefused(TransportError):
    """The legacy listener did not acknowledge a relayed callback (it will be sent again)."""


class BatchFailed(UwsAdapterError):
    """A batched send stopped part way: ``sent`` lists the batches that went out before it (their
    RequestIds and devices), ``error`` is what stopped it (also the ``__cause__``), and ``unsent``
    counts the devices not sent. The error's own class still says what happened to the failing
    batch (an :class:`OutcomeUnknown` may have been carried out)."""

    def __init__(self, sent: Tuple[object, ...], error: Exception, unsent: int) -> None:
        self.sent = sent
        self.error = error
        self.unsent = unsent
        super().__init__(
            f"{len(sent)} batch(es) sent, then: {error} ({unsent:,} device(s) of that batch and after it not sent"
            + (" or in doubt" if isinstance(error, OutcomeUnknown) else "")
            + ")"
        )


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
