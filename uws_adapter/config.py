"""Which backend to use, and how to reach it: an INI file and/or environment variables.

The same code then runs on either API::

    client = uws_adapter.connect()          # reads $UWS_ADAPTER_CONFIG and the environment
    request_id = client.suspend(select(devices))

Environment variables win over the file, so that secrets can stay out of it.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from uws_adapter.errors import InputError
from uws_adapter.provisioning.base import DEFAULT_DAILY_BUDGET, Provisioner, check_daily_budget
from uws_adapter.provisioning.transport import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_TIMEOUT,
    check_base_url,
    check_deadline,
    check_max_answer_bytes,
    check_timeout,
)
from uws_adapter.store.interfaces import RequestLog
from uws_adapter.wire import REST_BASE_URL, UWS_BASE_URL

SECTION = "uws-adapter"
BACKENDS = ("soap", "rest")
#: Setting name -> environment variable.
ENVIRONMENT = {
    "backend": "UWS_ADAPTER_BACKEND",
    "soap_url": "UWS_ENDPOINT",
    "rest_url": "UWS_ADAPTER_REST_URL",
    "username": "UWS_USERNAME",
    "password": "UWS_PASSWORD",
    "client_id": "THINGSPACE_CLIENT_ID",
    "client_secret": "THINGSPACE_CLIENT_SECRET",
    "timeout": "UWS_ADAPTER_TIMEOUT",
    "deadline": "UWS_ADAPTER_DEADLINE",
    "max_answer_bytes": "UWS_ADAPTER_MAX_ANSWER_BYTES",
    "daily_budget": "UWS_ADAPTER_DAILY_BUDGET",
    "db": "UWS_CALLBACK_DB",
}
#: Settings shown as *** in a repr. No error shows the value of any setting read from a file
#: (only those that are not secret are checked, and only they are quoted), nor the text of a line
#: that does not parse, nor a key that is not a plain name (a mangled line may hold a password).
SECRET_KEYS = frozenset({"password", "client_secret"})
CONFIG_VARIABLE = "UWS_ADAPTER_CONFIG"
#: What starts an inline comment in the settings file, after whitespace: a value cannot hold
#: " ;" or " #" (put such a password in the environment instead).
INLINE_COMMENTS = (";", "#")


@dataclass(frozen=True)
class Settings:
    """Everything :func:`connect` needs. ``username`` / ``password`` are the UWS login, which the
    REST API's session login also takes; ``client_id`` / ``client_secret`` are the ThingSpace
    OAuth2 application keys (REST only)."""

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
    daily_budget: int = DEFAULT_DAILY_BUDGET
    #: The store requests are recorded in (a SQLite path or a postgresql:// URL); None: none.
    db: Optional[str] = None

    def __post_init__(self) -> None:
        backend = self.backend.strip().lower() if isinstance(self.backend, str) else self.backend
        if backend not in BACKENDS:
            raise InputError(
                "backend", f"{self.backend!r} is not a backend", f"use soap or rest ({ENVIRONMENT['backend']})"
            )
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "soap_url", check_base_url(self.soap_url, "soap_url"))
        object.__setattr__(self, "rest_url", check_base_url(self.rest_url, "rest_url"))
        object.__setattr__(self, "timeout", check_timeout(self.timeout))
        object.__setattr__(self, "deadline", check_deadline(self.deadline))
        object.__setattr__(self, "max_answer_bytes", check_max_answer_bytes(self.max_answer_bytes))
        object.__setattr__(self, "daily_budget", check_daily_budget(self.daily_budget))

    def __repr__(self) -> str:  # secrets are shown as *** so that settings can be logged
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in SECRET_KEYS:
            if shown[secret] is not None:
                shown[secret] = "***"
        if self.db is not None:  # a database URL may hold a password
            from uws_adapter.store import describe_store

            shown["db"] = describe_store(self.db)
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    __str__ = __repr__


def _timeout(text: str, origin: str) -> Tuple[float, float]:
    try:
        connect, read = (float(part) for part in text.split(","))
    except ValueError:
        raise InputError(origin, f"{text!r} is not CONNECT,READ seconds", "write e.g. 10,120") from None
    return connect, read


def _deadline(text: str, origin: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(origin, f"{text!r} is not a number of seconds", "write e.g. 180") from None


def _byte_count(text: str, origin: str) -> int:
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        raise InputError(origin, f"{text!r} is not a byte count", "write e.g. 1048576") from None


def _action_count(text: str, origin: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(
            origin, f"{text!r} is not a whole number of actions", "write e.g. 5 (25 with the upgrade)"
        ) from None


_CONVERT: Dict[str, Callable[[str, str], Any]] = {
    "timeout": _timeout, "deadline": _deadline, "max_answer_bytes": _byte_count, "daily_budget": _action_count,
    # A URL nothing can be sent to is refused here, naming where it was written.
    "soap_url": check_base_url, "rest_url": check_base_url,
}  # fmt: skip


def _value(key: str, text: str, origin: str) -> Any:
    convert = _CONVERT.get(key)
    return convert(text, origin) if convert is not None else text


def _plain_name(key: str) -> bool:
    return bool(key) and all(c.isascii() and (c.isalnum() or c in "_-.") for c in key)


def _key_lines(lines: List[str], parser: configparser.ConfigParser) -> Dict[str, int]:
    """Line numbers of the keys of [uws-adapter], as configparser reads them (the last wins)."""
    found: Dict[str, int] = {}
    section = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or line[0] in " \t":
            continue  # blank, a comment, or a continuation of the value above
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            continue
        if section == SECTION:
            cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
            if cut > 0:
                found[parser.optionxform(line[:cut].strip())] = number
    return found


def _syntax_error(path: Union[str, Path], exc: configparser.Error) -> InputError:
    """The parser's complaint without the offending line's text, which may hold a password."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        problem = f"line {exc.lineno} comes before any [section] header"
    elif isinstance(exc, configparser.ParsingError):
        numbers = [str(error[0]) for error in getattr(exc, "errors", ())] or [str(getattr(exc, "lineno", "?"))]
        problem = f"line {', '.join(numbers)} is not KEY = VALUE"
    elif isinstance(exc, configparser.DuplicateOptionError):
        problem = f"line {exc.lineno}: [{exc.section}] {exc.option} is set twice"
    elif isinstance(exc, configparser.DuplicateSectionError):
        problem = f"line {exc.lineno}: [{exc.section}] appears twice"
    else:
        problem = type(exc).__name__
    fix = f"write [{SECTION}] then KEY = VALUE lines (see the configuration guide)"
    return InputError(f"config file {path}", problem, fix)


def load_settings(
    path: Union[str, Path, None] = None, *, environ: Optional[Mapping[str, str]] = None, **overrides: Any
) -> Settings:
    """Settings from the ``[uws-adapter]`` section of ``path`` (default ``$UWS_ADAPTER_CONFIG``,
    if set), then the environment, then ``overrides``. No error shows the value of a secret key,
    or the text of a line: errors name the key and the line number."""
    env = os.environ if environ is None else environ
    values: Dict[str, Any] = {}
    path = path if path is not None else env.get(CONFIG_VARIABLE) or None
    if path is not None:
        # Inline comments (" ; ..." or " # ...", after whitespace) are stripped, as the configuration guide's
        # example writes them: kept, they would become part of a login and fail it.
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=INLINE_COMMENTS)
        # Refusals are raised outside the except blocks, so that not even their context (a
        # UnicodeDecodeError holds the whole file, a ParsingError the line) can show a secret.
        refusal: Optional[InputError] = None
        lines: List[str] = []
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.readlines()
        except OSError as exc:
            refusal = InputError("config file", f"cannot read {path}: {exc.strerror}", "check the path")
        except UnicodeDecodeError as exc:
            refusal = InputError("config file", f"{path} is not UTF-8 (byte {exc.start})", "save it as UTF-8")
        if refusal is None:
            try:
                parser.read_file(lines, source=str(path))
            except configparser.Error as exc:
                refusal = _syntax_error(path, exc)
        if refusal is not None:
            raise refusal
        if parser.has_section(SECTION):
            where = _key_lines(lines, parser)
            for key, text in parser.items(SECTION):
                line = f"config file {path} line {where.get(key, '?')}: [{SECTION}]"
                if key not in ENVIRONMENT:
                    # A mangled line ("password hunter2 = x") makes a key of a secret: name only plain keys.
                    shown = key if _plain_name(key) and len(key) <= 40 else "this key"
                    raise InputError(f"{line} {shown}", "unknown setting", "use " + ", ".join(ENVIRONMENT))
                origin = f"{line} {key}"
                values[key] = _value(key, text, origin)
    for key, variable in ENVIRONMENT.items():
        if env.get(variable):
            values[key] = _value(key, env[variable], variable)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(Settings(), **values)


def connect(settings: Optional[Settings] = None, *, store: Optional[RequestLog] = None) -> Provisioner:
    """A client for the configured backend (:class:`UwsClient` or :class:`RestClient`)."""
    from uws_adapter.rest.client import RestClient
    from uws_adapter.uws.client import UwsClient

    settings = settings if settings is not None else load_settings()
    if not (settings.username and settings.password):
        raise InputError("username", "no UWS login configured", f"set {ENVIRONMENT['username']} and UWS_PASSWORD")
    if settings.backend == "rest":
        if not (settings.client_id and settings.client_secret):
            raise InputError(
                "client_id",
                "the REST backend needs OAuth2 keys",
                "set THINGSPACE_CLIENT_ID and THINGSPACE_CLIENT_SECRET",
            )
        client: Provisioner = RestClient(
            base_url=settings.rest_url, client_id=settings.client_id, client_secret=settings.client_secret,
            username=settings.username, password=settings.password, timeout=settings.timeout,
            deadline=settings.deadline, max_answer_bytes=settings.max_answer_bytes, store=store,
        )  # fmt: skip
    else:
        client = UwsClient(
            base_url=settings.soap_url, username=settings.username, password=settings.password,
            timeout=settings.timeout, deadline=settings.deadline, max_answer_bytes=settings.max_answer_bytes,
            store=store,
        )  # fmt: skip
    client.daily_budget = settings.daily_budget
    return client
