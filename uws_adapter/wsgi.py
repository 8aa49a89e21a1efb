"""The receiver for any WSGI server, configured from the environment:

    gunicorn --workers 1 --threads 16 --bind 127.0.0.1:8081 'uws_adapter.wsgi:create_app()'

UWS_CALLBACK_DB (default callbacks.db), UWS_CALLBACK_USERNAME, UWS_CALLBACK_PASSWORD,
UWS_CALLBACK_PREVIOUS_PASSWORD, UWS_CALLBACK_MAX_BODY (bytes), UWS_CALLBACK_COMMIT (group, or each
for the one-commit-per-callback baseline). Several worker processes may share one store file:
their commits take turns on a file lock beside it.
"""

from __future__ import annotations

import os

from .errors import InputError
from .receiver import Receiver
from .store import Store
from .xmlsafe import MAX_BYTES


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
    store = Store(os.environ.get("UWS_CALLBACK_DB") or "callbacks.db", batch=commit == "group")
    return Receiver(
        store,
        username=username,
        password=password,
        previous_password=os.environ.get("UWS_CALLBACK_PREVIOUS_PASSWORD") or None,
        max_body=max_body,
    )
