"""The receiver for any WSGI server, configured from the environment:

    gunicorn --workers 1 --threads 16 --bind 127.0.0.1:8081 'uws_adapter.receiver.wsgi:create_app()'

UWS_CALLBACK_DB (default callbacks.db; a SQLite path or a postgresql:// URL), UWS_CALLBACK_USERNAME,
UWS_CALLBACK_PASSWORD, UWS_CALLBACK_PREVIOUS_PASSWORD, UWS_CALLBACK_MAX_BODY (bytes),
UWS_CALLBACK_COMMIT (group, or each for the one-commit-per-callback baseline),
UWS_CALLBACK_ALLOW_ANONYMOUS (1 to store callbacks without credentials; refused to start otherwise),
UWS_CALLBACK_DEAD_LETTER_RATE (refused documents kept per second, default 2),
UWS_CALLBACK_DEAD_LETTER_MAX_BYTES (default 256 MiB) and UWS_CALLBACK_REPAIR (1 to
mend the </Name/> end-tag defect). Several worker
processes may share one store file: their commits take turns on a file lock beside it; several
instances (on several hosts) may share one PostgreSQL database.

Connections are then bounded only as far as that server bounds them (its connection limit, its
keep-alive timeout, its deadlines for slow headers and bodies), or by a reverse proxy in front.
``uws-adapter receiver`` bounds them itself (see :mod:`uws_adapter.serving`); in a program:

    serving.waitress_server(app, serving.ConnectionLimits(), **server_options(app, host=..., port=...))
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from uws_adapter.errors import InputError
from uws_adapter.receiver.app import DeadLetterBudget, Receiver
from uws_adapter.store import open_store
from uws_adapter.xmlsafe import MAX_BYTES


def create_app() -> Receiver:
    """A Receiver over the store and credentials the environment names."""
    username = os.environ.get("UWS_CALLBACK_USERNAME") or None
    password = os.environ.get("UWS_CALLBACK_PASSWORD") or None
    if bool(username) != bool(password):
        raise InputError("UWS_CALLBACK_USERNAME", "set both a username and a password, or neither", "set both")
    try:
        max_body = int(os.environ.get("UWS_CALLBACK_MAX_BODY") or MAX_BYTES)
    except ValueError:
        raise InputError("UWS_CALLBACK_MAX_BODY", "is not a whole number of bytes", "e.g. 1048576") from None
    commit = (os.environ.get("UWS_CALLBACK_COMMIT") or "group").strip().lower()
    if commit not in ("group", "each"):
        raise InputError("UWS_CALLBACK_COMMIT", f"{commit!r} is not group or each", "use group (each is a baseline)")
    allow_anonymous = _flag("UWS_CALLBACK_ALLOW_ANONYMOUS")
    if not username and not allow_anonymous:
        raise InputError(
            "UWS_CALLBACK_USERNAME",
            "a receiver without callback credentials would store callbacks from anyone",
            "set UWS_CALLBACK_USERNAME and UWS_CALLBACK_PASSWORD, or UWS_CALLBACK_ALLOW_ANONYMOUS=1",
        )
    budget = DeadLetterBudget(
        per_second=_number("UWS_CALLBACK_DEAD_LETTER_RATE", 2.0, float),
        max_total=int(_number("UWS_CALLBACK_DEAD_LETTER_MAX_BYTES", 256 * 1024 * 1024, int)),
    )
    # A SQLite path or a postgresql:// URL (whose schema must be current: `uws-adapter db upgrade`).
    store = open_store(os.environ.get("UWS_CALLBACK_DB") or "callbacks.db", batch=commit == "group")
    if allow_anonymous:
        logging.getLogger("uws_adapter.receiver").warning("callbacks are stored without checking any credentials")
    return Receiver(
        store,
        username=username,
        password=password,
        previous_password=os.environ.get("UWS_CALLBACK_PREVIOUS_PASSWORD") or None,
        max_body=max_body,
        allow_anonymous=allow_anonymous,
        dead_letters=budget,
        repair=_flag("UWS_CALLBACK_REPAIR"),
    )


def _flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("1", "true", "yes")


def _number(name: str, default: float, kind: Callable[[str], float]) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise InputError(name, f"{text[:40]!r} is not a number", "e.g. 2 (per second) or 268435456 (bytes)") from None
    if value < 0:
        raise InputError(name, "cannot be negative", "use UWS_CALLBACK_DEAD_LETTER_MAX_BYTES=0 to keep none")
    return value
