"""The bridge's and the emulator's settings (``[bridge]``, ``[emulator]``; ``uws-adapter bridge``
and ``uws-adapter emulator``'s options), and the one check of a listener URL (whose example is a
listener, not the carrier's endpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Tuple

from uws_adapter.errors import InputError
from uws_adapter.settings.receiver import (
    CONNECTION_OPTIONS,
    DEFAULT_HANDLER_LEASE,
    HANDLER_LEASE_OPTION,
    THREADS_OPTION,
    ConnectionBounds,
    callback_login_options,
    check_credentials,
    port_option,
)
from uws_adapter.settings.source import Loadable, Option, flag, names, number, text, whole
from uws_adapter.soap.sessions import DEFAULT_LOCKOUT, trusted_networks
from uws_adapter.wire import CALLBACK_SERVICES

__all__ = ["DEFAULT_DEVICES", "BridgeSettings", "EmulatorSettings", "check_listener_url", "login_pair"]

#: The emulator's generated lines when neither --devices nor --devices-file is given.
DEFAULT_DEVICES = 100


def check_listener_url(url: Any, origin: str) -> str:
    """``url`` if callbacks can be sent to it; the refusal's example is a listener URL."""
    from uws_adapter.provisioning.urls import LISTENER_URL_FIX, check_url

    return check_url(url, origin, fix=LISTENER_URL_FIX)


def _listener(value: Any, origin: str) -> Optional[str]:
    return None if value in (None, "") else check_listener_url(value, origin)


#: The receiver's advice less --allow-anonymous (the bridge has none), naming the bridge's section. A
#: cut of the receiver's text ended inside its parenthesis and named [receiver].
BRIDGE_CREDENTIALS_FIX = (
    "give --username and --password (or UWS_CALLBACK_USERNAME and UWS_CALLBACK_PASSWORD, or username and "
    "password in [bridge] of the settings file)"
)


def _login(value: Any, origin: str) -> Optional[str]:
    """NAME:PASSWORD, kept whole (a secret: never quoted)."""
    found = text(value, origin)
    if found is not None:
        name, sep, password = found.partition(":")
        if not sep or not name or not password:
            raise InputError(origin, "is not NAME:PASSWORD", "write e.g. legacy-user:secret")
    return found


def _soap_action(value: Any, origin: str) -> Optional[str]:
    """A callback's SOAPAction: None for no header (the default), ``""`` for an empty one."""
    from uws_adapter.callbacks.uws_render import check_soap_action

    return check_soap_action(value, origin)


def _devices(value: Any, origin: str) -> Optional[int]:
    if value is None:  # not given: the lines are generated (DEFAULT_DEVICES) or read from devices_file
        return None
    # The emulator's own bound, read when the option is given: importing the emulator at the top
    # would load it into every service that reads its settings.
    from uws_adapter.emulator.lines import MAX_GENERATED

    count: int = whole(0, MAX_GENERATED, "a number of lines")(value, origin)
    return count


def _networks(value: Any, origin: str) -> Tuple[str, ...]:
    """Addresses or networks (``10.0.0.5``, ``10.0.0.0/8``), checked and kept as written."""
    found = names()(value, origin)
    trusted_networks(found, origin)
    return tuple(found)


def login_pair(value: str) -> Tuple[str, str]:
    """A checked NAME:PASSWORD as (name, password)."""
    name, _, password = value.partition(":")
    return name, password


@dataclass(frozen=True, repr=False)
class BridgeSettings(Loadable, ConnectionBounds):
    """Everything ``uws-adapter bridge`` needs but its REST login, which is the client's
    (:class:`uws_adapter.config.Settings`, ``[uws-adapter]``)."""

    SECTION: ClassVar[str] = "bridge"
    OPTIONS: ClassVar[Tuple[Option, ...]] = (
        Option("host"),
        port_option(),
        Option("db", "UWS_BRIDGE_DB"),
        Option("legacy_login", "UWS_BRIDGE_LEGACY_LOGIN", _login, secret=True),
        Option("legacy_listener", None, _listener),
        Option("legacy_listener_login", "UWS_BRIDGE_LISTENER_LOGIN", _login, secret=True),
        Option("listener_soap_action", None, _soap_action),
        *callback_login_options(),
        Option("register", None, names()),
        Option("replace", None, flag),
        Option("service", None, names(CALLBACK_SERVICES)),
        Option("public_url", None, _listener),
        Option("allowed_host", None, names()),
        Option("lockout_seconds", None, number(0)),
        Option("trusted_proxy", None, _networks),
        Option("unlock"),
        THREADS_OPTION,
        Option("repair", None, flag),
        HANDLER_LEASE_OPTION,
        *CONNECTION_OPTIONS,
    )

    host: str = "127.0.0.1"
    port: int = 8082
    #: The bridge's store and relay outbox: a SQLite path or a postgresql:// URL.
    db: str = "bridge.db"
    #: The UWS login legacy systems use with the bridge, NAME:PASSWORD.
    legacy_login: Optional[str] = None
    legacy_listener: Optional[str] = None
    legacy_listener_login: Optional[str] = None
    #: The SOAPAction header of each relayed callback (None: none; the trade-off: docs/interop.md).
    listener_soap_action: Optional[str] = None
    #: The credentials the carrier's REST callbacks carry to the bridge.
    username: Optional[str] = None
    password: Optional[str] = None
    #: Accounts to register the bridge with as REST listener at start.
    register: Tuple[str, ...] = ()
    #: Replace another REST listener of a --register account (refused otherwise).
    replace: bool = False
    service: Tuple[str, ...] = ()
    public_url: Optional[str] = None
    allowed_host: Tuple[str, ...] = ()
    #: The longest a client address that keeps failing legacy LogIns waits before its next; 0: no bound.
    lockout_seconds: float = DEFAULT_LOCKOUT
    #: Reverse proxies whose X-Forwarded-For names the client a LogIn throttle is keyed by.
    trusted_proxy: Tuple[str, ...] = ()
    #: Kept for old command lines: refused with the reason (nothing is locked in the store any more).
    unlock: Optional[str] = None
    threads: int = 16
    repair: bool = False
    handler_lease: float = DEFAULT_HANDLER_LEASE

    def check(self) -> None:
        if self.unlock:
            return  # the command refuses it with its reason: nothing is locked in the store any more
        if not self.legacy_login:
            raise InputError(
                "--legacy-login", "no legacy login",
                "pass NAME:PASSWORD, set UWS_BRIDGE_LEGACY_LOGIN or legacy_login in [bridge]",
            )  # fmt: skip
        if not (self.username and self.password):
            raise InputError("--username", "the bridge needs callback credentials", BRIDGE_CREDENTIALS_FIX)
        if self.register and not self.public_url:
            raise InputError("--public-url", "--register needs the address the carrier calls back", "pass --public-url")
        if self.listener_soap_action is not None and not self.legacy_listener:
            raise InputError(
                "--listener-soap-action", "is for callbacks to --legacy-listener", "give --legacy-listener too"
            )


@dataclass(frozen=True, repr=False)
class EmulatorSettings(Loadable):
    """Everything ``uws-adapter emulator`` needs."""

    SECTION: ClassVar[str] = "emulator"
    OPTIONS: ClassVar[Tuple[Option, ...]] = (
        Option("host"),
        port_option(),
        Option("devices", None, _devices),
        Option("devices_file"),
        Option("listener", None, _listener),
        *callback_login_options("listener_"),
        Option("listener_soap_action", None, _soap_action),
        Option("user", None, _login, secret=True),
        Option("client", None, _login, secret=True),
        Option("callback_spacing", None, number(0, open_low=True)),
        Option("session_idle", None, number(0, open_low=True)),
        Option(
            "daily_budget",
            None,
            whole(1, 1_000_000, "a number of actions per line per day", "give 1 to 1,000,000 (the carrier: 5)"),
        ),
        THREADS_OPTION,
        Option("group", None, names()),
        Option("service_plan", None, names()),
        Option("custom_field", None, names()),
    )

    host: str = "127.0.0.1"
    port: int = 8080
    #: Generated lines; None: :data:`DEFAULT_DEVICES`, unless ``devices_file`` gives the lines.
    devices: Optional[int] = None
    devices_file: Optional[str] = None
    listener: Optional[str] = None
    listener_username: Optional[str] = None
    listener_password: Optional[str] = None
    #: The SOAPAction header of each callback to ``listener`` (None: none).
    listener_soap_action: Optional[str] = None
    #: The login the emulator accepts, NAME:PASSWORD (a test login, not a secret of anyone's).
    user: str = "uws-user:uws-password"
    #: The REST OAuth2 keys it accepts, ID:SECRET.
    client: str = "ts-client:ts-secret"
    callback_spacing: float = 300.0
    session_idle: float = 1200.0
    daily_budget: int = 5
    threads: int = 8
    group: Tuple[str, ...] = ()
    service_plan: Tuple[str, ...] = ()
    custom_field: Tuple[str, ...] = ()

    def check(self) -> None:
        if self.devices is not None and self.devices_file:  # one says how many, the other which: not both
            raise InputError(
                "--devices", "is for generated lines, and --devices-file gives the lines", "give one of the two"
            )
        if self.listener_soap_action is not None and not self.listener:
            raise InputError("--listener-soap-action", "is for callbacks to --listener", "give --listener too")
        if self.listener:
            login = (self.listener_username, self.listener_password)
            check_credentials("--listener-username", *login, "set both, or neither")
