"""The receiver's settings (``[receiver]``, ``UWS_CALLBACK_*``, ``uws-adapter receiver``'s options),
and the private file its uvicorn worker processes read them from.

The workers are separate processes: they are handed the path of a file (mode 0600, in a folder
only this user can read, removed when the receiver stops) in :data:`WORKER_SETTINGS_VARIABLE`,
never the passwords themselves in the environment (which other processes of the user, and
``/proc/PID/environ``, can read for the life of the process).

Standard library only (and the package's errors): the workers import this.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Tuple, Union

from uws_adapter.errors import InputError, UwsAdapterError
from uws_adapter.model.callbacks import OPEN_TO_ANYONE, check_credentials
from uws_adapter.settings.source import Loadable, Option, choice, flag, number, whole
from uws_adapter.xmlsafe import MAX_BYTES

__all__ = [
    "CALLBACK_PASSWORD_VARIABLE",
    "CALLBACK_USERNAME_VARIABLE",
    "CONNECTION_OPTIONS",
    "CREDENTIALS_FIX",
    "DEFAULT_HANDLER_LEASE",
    "HANDLER_LEASE_OPTION",
    "THREADS_OPTION",
    "WORKER_SETTINGS_VARIABLE",
    "ConnectionBounds",
    "ReceiverSettings",
    "callback_login_options",
    "check_credentials",
    "port_option",
    "worker_failure",
]

#: Seconds a claimed handler run (a relay) is its instance's: four times the relay's deadline (30 s;
#: see :mod:`uws_adapter.receiver.handlers`).
DEFAULT_HANDLER_LEASE = 120.0
#: A handler lease, in seconds (``--handler-lease``), the same on the receiver and the bridge.
HANDLER_LEASE_OPTION = Option("handler_lease", None, number(0, 86400, open_low=True))
#: waitress worker threads, for every service that runs on waitress.
THREADS_OPTION = Option("threads", None, whole(1, 1000, "a number of threads"))

#: The environment variable that gives a worker process the path of its settings file.
WORKER_SETTINGS_VARIABLE = "UWS_ADAPTER_WORKER_SETTINGS"
#: Beside that file: why a worker could not start (see :meth:`ReceiverSettings.worker_failed`).
WORKER_FAILURE_FILE = "worker-failed.json"
#: How to give a receiver its callback credentials, wherever the check is made.
CREDENTIALS_FIX = (
    "give --username and --password (or UWS_CALLBACK_USERNAME and UWS_CALLBACK_PASSWORD, or username and "
    "password in [receiver] of the settings file), or --allow-anonymous (UWS_CALLBACK_ALLOW_ANONYMOUS=1) on a "
    "closed network"
)


#: The variables of the callback credentials: the receiver's, and by default what the emulator
#: writes into its callbacks and a listener is registered with, so that the two sides agree.
CALLBACK_USERNAME_VARIABLE = "UWS_CALLBACK_USERNAME"
CALLBACK_PASSWORD_VARIABLE = "UWS_CALLBACK_PASSWORD"


def callback_login_options(prefix: str = "") -> Tuple[Option, Option]:
    """The options of a pair of callback credentials (``username``, ``password``; with ``prefix``,
    e.g. ``listener_username``), read from the receiver's variables."""
    return (
        Option(f"{prefix}username", CALLBACK_USERNAME_VARIABLE),
        Option(f"{prefix}password", CALLBACK_PASSWORD_VARIABLE, secret=True),
    )


def port_option() -> Option:
    return Option("port", None, whole(0, 65535, "a port number", "give 1 to 65535, or 0 to pick a free port"))


#: Connection bounds, the same on every service (see uws_adapter/serving/limits.py).
CONNECTION_OPTIONS = (
    Option("max_connections", None, whole(1, 1_000_000, "a number of connections")),
    Option("idle_timeout", None, number(0, 3600, open_low=True)),
    Option("header_timeout", None, number(0, 3600, open_low=True)),
    Option("body_timeout", None, number(0, 3600, open_low=True)),
)


@dataclass(frozen=True, repr=False)
class ConnectionBounds:
    """The fields of :data:`CONNECTION_OPTIONS` and their defaults, for the services that take them
    (and for :class:`uws_adapter.serving.ConnectionLimits`, which adds the header bounds)."""

    max_connections: int = 1000
    idle_timeout: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0


@dataclass(frozen=True, repr=False)
class ReceiverSettings(Loadable, ConnectionBounds):
    """Everything ``uws-adapter receiver`` (and :func:`uws_adapter.receiver.wsgi.create_app`) needs."""

    SECTION: ClassVar[str] = "receiver"
    OPTIONS: ClassVar[Tuple[Option, ...]] = (
        Option("host"),
        port_option(),
        Option("db", "UWS_CALLBACK_DB"),
        *callback_login_options(),
        Option("previous_password", "UWS_CALLBACK_PREVIOUS_PASSWORD", secret=True),
        Option("allow_anonymous", "UWS_CALLBACK_ALLOW_ANONYMOUS", flag),
        Option("repair", "UWS_CALLBACK_REPAIR", flag),
        HANDLER_LEASE_OPTION,
        Option("dead_letter_rate", "UWS_CALLBACK_DEAD_LETTER_RATE", number(0, math.inf, "a number per second")),
        Option(
            "dead_letter_max_bytes",
            "UWS_CALLBACK_DEAD_LETTER_MAX_BYTES",
            whole(0, 2**50, "a byte count", "give bytes, or 0 to keep none"),
        ),
        Option("server", None, choice("auto", "uvicorn", "waitress")),
        Option("workers", None, whole(1, 64, "a number of processes", "give 1 to 64 (2 on a 2-core machine)")),
        THREADS_OPTION,
        Option("max_body", "UWS_CALLBACK_MAX_BODY", whole(1, 2**31, "a whole number of bytes", "e.g. 1048576")),
        Option("commit", "UWS_CALLBACK_COMMIT", choice("group", "each")),
        *CONNECTION_OPTIONS,
    )

    host: str = "127.0.0.1"
    port: int = 8081
    #: A SQLite path or a postgresql:// URL (whose schema must be current: ``uws-adapter db upgrade``).
    db: str = "callbacks.db"
    username: Optional[str] = None
    password: Optional[str] = None
    #: Also accepted while rotating.
    previous_password: Optional[str] = None
    allow_anonymous: bool = False
    repair: bool = False
    handler_lease: float = DEFAULT_HANDLER_LEASE
    dead_letter_rate: float = 2.0
    dead_letter_max_bytes: int = 256 * 1024 * 1024
    server: str = "auto"
    workers: int = 1
    threads: int = 16
    max_body: int = MAX_BYTES
    commit: str = "group"

    def check(self) -> None:
        if self.host is None or self.db is None:
            raise InputError("host" if self.host is None else "db", "cannot be empty", "give one, or leave it out")
        check_credentials("--username", self.username, self.password, CREDENTIALS_FIX,
                          refuse_none=None if self.allow_anonymous else OPEN_TO_ANYONE)  # fmt: skip

    def announce(self) -> None:
        """What a receiver says once when it starts: that it checks no credentials, if so."""
        if self.allow_anonymous:
            logging.getLogger("uws_adapter.receiver").warning(
                "allow_anonymous (--allow-anonymous, UWS_CALLBACK_ALLOW_ANONYMOUS): callbacks are stored without "
                "checking any credentials; only on a closed network"
            )

    # The private file of the worker processes. -------------------------------------------------

    def write_private(self, folder: Union[str, Path]) -> Path:
        """These settings as a file only this user can read, in ``folder`` (which should be
        private too); the caller removes it."""
        path = Path(folder) / "receiver-settings.json"
        descriptor = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle)
        return path

    @classmethod
    def read_private(cls, path: Union[str, Path]) -> ReceiverSettings:
        """What :meth:`write_private` wrote."""
        try:
            with open(path, encoding="utf-8") as handle:
                values: Mapping[str, Any] = json.load(handle)
        except (OSError, ValueError) as exc:
            raise InputError(
                WORKER_SETTINGS_VARIABLE, f"cannot read the worker settings file ({exc})", "restart"
            ) from None
        return cls(**values)

    @staticmethod
    def handed_over(environ: Optional[Mapping[str, str]] = None) -> bool:
        """Whether this process is a worker the command line started (it read its settings from
        the command line's file, and the command line said what there was to say at start)."""
        return bool((os.environ if environ is None else environ).get(WORKER_SETTINGS_VARIABLE))

    @staticmethod
    def worker_failed(exc: UwsAdapterError, environ: Optional[Mapping[str, str]] = None) -> bool:
        """In a worker process the command line started (:meth:`handed_over`): why it cannot start,
        written beside its settings file for the command line to say once (:func:`worker_failure`),
        where each worker printed a traceback, and uvicorn started it again, and again. False (and
        nothing written) in any other process."""
        path = (os.environ if environ is None else environ).get(WORKER_SETTINGS_VARIABLE)
        if not path:
            return False
        failure = Path(path).parent / WORKER_FAILURE_FILE
        written = failure.with_name(f"{WORKER_FAILURE_FILE}.{os.getpid()}")
        try:
            with open(written, "w", encoding="utf-8") as handle:
                json.dump({"message": str(exc)}, handle)
            os.replace(written, failure)  # whole, whichever worker writes last
        except OSError:  # the run's folder is gone: the error goes up as it is
            return False
        return True

    @classmethod
    def for_worker(cls, environ: Optional[Mapping[str, str]] = None) -> ReceiverSettings:
        """In a worker process: the settings file :data:`WORKER_SETTINGS_VARIABLE` names, else the
        settings file and the environment (a receiver started by another server, e.g. gunicorn)."""
        env = os.environ if environ is None else environ
        path = env.get(WORKER_SETTINGS_VARIABLE)
        return cls.read_private(path) if path else cls.load(environ=env)


def worker_failure(folder: Union[str, Path]) -> Optional[UwsAdapterError]:
    """Why a worker of the run whose private ``folder`` this is could not start, if one could not
    (:meth:`ReceiverSettings.worker_failed`): the error to say, once."""
    try:
        with open(Path(folder) / WORKER_FAILURE_FILE, encoding="utf-8") as handle:
            found: Mapping[str, Any] = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return UwsAdapterError(f"receiver: a worker could not start, and its reason cannot be read ({exc})")
    return UwsAdapterError(f"receiver: a worker could not start: {found.get('message')}")
