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
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .errors import InputError
from .provisioning import Provisioner
from .store import Store
from .transport import DEFAULT_TIMEOUT, check_timeout
from .wire import REST_BASE_URL, UWS_BASE_URL

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
}
CONFIG_VARIABLE = "UWS_ADAPTER_CONFIG"


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

    def __post_init__(self) -> None:
        backend = self.backend.strip().lower() if isinstance(self.backend, str) else self.backend
        if backend not in BACKENDS:
            raise InputError(
                "backend", f"{self.backend!r} is not a backend", f"use soap or rest ({ENVIRONMENT['backend']})"
            )
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "timeout", check_timeout(self.timeout))

    def __repr__(self) -> str:  # secrets are shown as *** so that settings can be logged
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("password", "client_secret"):
            if shown[secret] is not None:
                shown[secret] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def _timeout(text: str, origin: str) -> Tuple[float, float]:
    try:
        connect, read = (float(part) for part in text.split(","))
    except ValueError:
        raise InputError(origin, f"{text!r} is not CONNECT,READ seconds", "write e.g. 10,120") from None
    return connect, read


def load_settings(
    path: Union[str, Path, None] = None, *, environ: Optional[Mapping[str, str]] = None, **overrides: Any
) -> Settings:
    """Settings from the ``[uws-adapter]`` section of ``path`` (default ``$UWS_ADAPTER_CONFIG``,
    if set), then the environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    values: Dict[str, Any] = {}
    path = path if path is not None else env.get(CONFIG_VARIABLE) or None
    if path is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as exc:
            raise InputError("config file", f"cannot read {path}: {exc.strerror}", "check the path") from None
        except configparser.Error as exc:
            raise InputError("config file", f"{path} is not an INI file: {exc.message}", "see the README") from None
        if parser.has_section(SECTION):
            for key, value in parser.items(SECTION):
                if key not in ENVIRONMENT:
                    raise InputError(
                        f"config file [{SECTION}] {key}", "unknown setting", "use " + ", ".join(ENVIRONMENT)
                    )
                values[key] = _timeout(value, f"{path} timeout") if key == "timeout" else value
    for key, variable in ENVIRONMENT.items():
        if env.get(variable):
            values[key] = _timeout(env[variable], variable) if key == "timeout" else env[variable]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(Settings(), **values)


def connect(settings: Optional[Settings] = None, *, store: Optional[Store] = None) -> Provisioner:
    """A client for the configured backend (:class:`UwsClient` or :class:`RestClient`)."""
    from .client import UwsClient
    from .rest_client import RestClient

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
        return RestClient(
            base_url=settings.rest_url, client_id=settings.client_id, client_secret=settings.client_secret,
            username=settings.username, password=settings.password, timeout=settings.timeout, store=store,
        )  # fmt: skip
    return UwsClient(
        base_url=settings.soap_url, username=settings.username, password=settings.password,
        timeout=settings.timeout, store=store,
    )  # fmt: skip
