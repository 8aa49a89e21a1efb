"""The client's settings (``[uws-adapter]``: which backend to use, and how to reach it) and
:func:`connect`, which builds the client they describe. Environment variables win over the file,
so that secrets can stay out of it; arguments win over both (see :mod:`uws_adapter.settings`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, List, Mapping, Optional, Sequence, Tuple, Union

from uws_adapter.errors import InputError, shown
from uws_adapter.provisioning.base import DEFAULT_DAILY_BUDGET, MAX_DAILY_BUDGET, Provisioner
from uws_adapter.provisioning.options import (
    CLIENT_OPTIONS,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_TIMEOUT,
    SendOptions,
    check_deadline,
    check_max_answer_bytes,
    check_timeout,
)
from uws_adapter.provisioning.urls import check_service_base, check_url
from uws_adapter.settings.source import CONFIG_VARIABLE, Convert, Loadable, Option, relocated, whole
from uws_adapter.store.interfaces import RequestLog
from uws_adapter.wire import REST_BASE_URL, UWS_BASE_URL

if TYPE_CHECKING:
    from uws_adapter.rest.client import RestClient

__all__ = [
    "BACKENDS",
    "CONFIG_VARIABLE",
    "ENVIRONMENT",
    "MAX_DAILY_BUDGET",
    "OPTIONS",
    "SECTION",
    "Settings",
    "check_login",
    "connect",
    "load_settings",
    "rest_client",
    "timeout_seconds",
    "unset",
]

SECTION = "uws-adapter"
BACKENDS = ("soap", "rest")


def _backend(value: Any, origin: str) -> str:
    backend = value.strip().lower() if isinstance(value, str) else value
    if backend not in BACKENDS:
        raise InputError(origin, f"{shown(value)} is not a backend", "use soap or rest")
    return str(backend)


def _checked(check: Callable[[Any], Any], parse: Callable[[str], Any], what: str, example: str) -> Convert:
    """A converter from a check of the transport's (which names the setting) and a text parser."""

    def convert(value: Any, origin: str) -> Any:
        written = isinstance(value, str)  # in a file, a variable or an option: the fix is written so too
        if written:
            try:
                value = parse(value)
            except ValueError:
                raise InputError(origin, f"{value[:40]!r} is not {what}", f"write e.g. {example}") from None
        try:
            return check(value)
        except InputError as exc:
            raise relocated(exc, origin, f"write e.g. {example}" if written else None) from None

    return convert


def _pair_of_seconds(text: str) -> Tuple[float, float]:
    parts = [float(part) for part in text.split(",")]
    if len(parts) == 1:  # one number for both waits, as requests takes one
        return parts[0], parts[0]
    connect, read = parts
    return connect, read


def _whole(text: str) -> int:
    return int(text.strip().replace("_", ""))


#: ``CONNECT,READ`` seconds (text, or a pair; one number sets both), both positive; an error names where
#: it was written.
timeout_seconds = _checked(check_timeout, _pair_of_seconds, "CONNECT,READ seconds", "10,120")

#: The budget guard's range: 0 turns it off (deliberately, logged when a client starts), else
#: 1 to 1,000 actions per line in 24 hours (5 for most accounts [doc], 25 with the upgrade).
_budget = whole(
    0, MAX_DAILY_BUDGET, "a whole number of actions per line per day",
    f"give 1 to {MAX_DAILY_BUDGET:,} (5 for most accounts, 25 with the upgrade), or 0 to turn the guard off",
)  # fmt: skip


def _uws_base(value: Any, field: str) -> str:
    # Checked where the setting is read, so that a service's address names where it came from.
    return check_service_base(check_url(value, field), UWS_BASE_URL, field)


#: Setting -> environment variable, converter, secret (the one table for file, environment and arguments).
OPTIONS = (
    Option("backend", "UWS_ADAPTER_BACKEND", _backend),
    Option("soap_url", "UWS_ENDPOINT", _uws_base),
    Option("rest_url", "UWS_ADAPTER_REST_URL", check_url),
    Option("username", "UWS_USERNAME"),
    Option("password", "UWS_PASSWORD", secret=True),
    Option("client_id", "THINGSPACE_CLIENT_ID"),
    Option("client_secret", "THINGSPACE_CLIENT_SECRET", secret=True),
    Option("timeout", "UWS_ADAPTER_TIMEOUT", timeout_seconds),
    Option("deadline", "UWS_ADAPTER_DEADLINE", _checked(check_deadline, float, "a number of seconds", "180")),
    Option(
        "max_answer_bytes", "UWS_ADAPTER_MAX_ANSWER_BYTES",
        _checked(check_max_answer_bytes, _whole, "a byte count", "1048576"),
    ),
    Option("daily_budget", "UWS_ADAPTER_DAILY_BUDGET", _budget),
    Option("db", "UWS_CALLBACK_DB", secret=False),
    Option("token", "UWS_TOKEN", secret=True),
)  # fmt: skip
#: Setting name -> environment variable.
ENVIRONMENT = {option.name: option.variable for option in OPTIONS if option.variable}


@dataclass(frozen=True, repr=False)
class Settings(Loadable):
    """Everything :func:`connect` needs. ``username`` / ``password`` are the UWS login, which the
    REST API's session login also takes; ``client_id`` / ``client_secret`` are the ThingSpace
    OAuth2 application keys (REST only); ``token`` a UWS session token used instead of a login
    when no login is configured."""

    SECTION: ClassVar[str] = SECTION
    OPTIONS: ClassVar[Tuple[Option, ...]] = OPTIONS

    backend: str = "soap"
    soap_url: str = UWS_BASE_URL
    rest_url: str = REST_BASE_URL
    username: Optional[str] = None
    password: Optional[str] = None
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    timeout: Tuple[float, float] = DEFAULT_TIMEOUT
    deadline: float = DEFAULT_DEADLINE
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    #: Provisioning actions per line in 24 hours the client's budget guard allows (5 for most
    #: accounts [doc], 25 with the upgrade); counted from the request log of the client's store.
    #: 0 turns the guard off.
    daily_budget: int = DEFAULT_DAILY_BUDGET
    #: The store requests are recorded in (a SQLite path or a postgresql:// URL); None: none.
    db: Optional[str] = None
    #: A UWS session token ($UWS_TOKEN): used by :func:`connect` only when no login is configured.
    token: Optional[str] = None

    @property
    def budget_guard(self) -> Optional[int]:
        """The client's ``daily_budget``: None when the guard is off (``daily_budget`` 0)."""
        return self.daily_budget or None

    @property
    def send_options(self) -> SendOptions:
        """How each call of a client is bounded: the clients' defaults with this timeout, deadline
        and answer cap."""
        return CLIENT_OPTIONS.with_(
            timeout=self.timeout, deadline=self.deadline, max_answer_bytes=self.max_answer_bytes
        )


def load_settings(
    path: Union[str, Path, None] = None,
    *,
    environ: Optional[Mapping[str, str]] = None,
    origins: Optional[Mapping[str, str]] = None,
    **overrides: Any,
) -> Settings:
    """Settings from the ``[uws-adapter]`` section of ``path`` (default ``$UWS_ADAPTER_CONFIG``,
    if set), then the environment, then ``overrides``. No error shows the value of a secret key,
    or the text of a line: errors name the file and line, the variable or the option."""
    return Settings.load(path, environ=environ, origins=origins, **overrides)


def connect(settings: Optional[Settings] = None, *, store: Optional[RequestLog] = None) -> Provisioner:
    """A client for the configured backend (:class:`UwsClient` or :class:`RestClient`); a UWS
    client with ``settings.token`` when no login is configured."""
    settings = settings if settings is not None else load_settings()
    if not isinstance(settings, Settings):
        raise InputError("settings", f"a {type(settings).__name__} is not Settings", "pass load_settings(...)")
    use_token = settings.backend == "soap" and settings.token and not (settings.username or settings.password)
    if not use_token:
        check_login(settings)
    if settings.backend == "rest":
        if not (settings.client_id and settings.client_secret):
            raise InputError(
                "client_id" if not settings.client_id else "client_secret",
                "the REST backend needs OAuth2 keys",
                f"set {' and '.join(unset(settings, _OAUTH_KEYS))} (or client_id / client_secret in [{SECTION}] of "
                "the settings file)",
            )
        client: Provisioner = rest_client(settings, store=store)
    else:  # with a token, the login is empty (use_token): the client uses the token as it is
        # Imported for the UWS backend only: the REST one (the bridge's) runs without uws/ and zeep.
        from uws_adapter.uws.client import UwsClient

        client = UwsClient(
            base_url=settings.soap_url, username=settings.username, password=settings.password,
            token=settings.token if use_token else None, store=store, options=settings.send_options,
        )  # fmt: skip
    client.daily_budget = settings.budget_guard
    if settings.budget_guard is None:
        logging.getLogger("uws_adapter.cli").warning(
            "the daily budget guard is off (daily_budget 0): device lists are sent without counting actions"
        )
    return client


def rest_client(
    settings: Settings, *, store: Optional[RequestLog] = None, options: Optional[SendOptions] = None
) -> RestClient:
    """A REST client with the settings' URL, OAuth2 keys and login, bounded by ``options`` (default:
    :attr:`Settings.send_options`); the keys are not checked here (see :func:`connect`)."""
    from uws_adapter.rest.client import RestClient

    return RestClient(
        base_url=settings.rest_url, client_id=settings.client_id, client_secret=settings.client_secret,
        username=settings.username, password=settings.password, store=store,
        options=settings.send_options if options is None else options,
    )  # fmt: skip


#: What a REST client is made of: the OAuth2 application keys, then the login of its M2M session.
_OAUTH_KEYS = ("client_id", "client_secret")
_REST_CREDENTIALS = (*_OAUTH_KEYS, "username", "password")


def unset(settings: Settings, names: Sequence[str] = _REST_CREDENTIALS) -> List[str]:
    """The environment variables of the settings among ``names`` that ``settings`` leaves empty."""
    return [ENVIRONMENT[name] for name in names if not getattr(settings, name)]


def check_login(settings: Settings) -> None:
    """The UWS login is complete: what is missing is named (a username without a password is
    not "no login")."""
    if settings.username and settings.password:
        return
    if settings.username or settings.password:
        given, missing = ("username", "password") if settings.username else ("password", "username")
        raise InputError(
            missing, f"the UWS login has a {given} but no {missing}",
            f"set {ENVIRONMENT[missing]} (or {missing} in [{SECTION}] of the settings file)",
        )  # fmt: skip
    raise InputError(
        "username", "no UWS login configured",
        f"set {ENVIRONMENT['username']} and {ENVIRONMENT['password']} (or username and password in [{SECTION}])",
    )  # fmt: skip
