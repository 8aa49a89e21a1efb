"""The receiver for any WSGI server, configured from the environment:

    gunicorn --workers 1 --threads 16 --bind 127.0.0.1:8081 'uws_adapter.receiver.wsgi:create_app()'

Its settings (:class:`uws_adapter.settings.receiver.ReceiverSettings`): ``[receiver]`` of the
file $UWS_ADAPTER_CONFIG names, then the environment: UWS_CALLBACK_DB (default callbacks.db;
a SQLite path or a postgresql:// URL), UWS_CALLBACK_USERNAME,
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

from typing import Optional

from uws_adapter.receiver.app import DeadLetterBudget, Receiver
from uws_adapter.settings.receiver import ReceiverSettings
from uws_adapter.store import open_store
from uws_adapter.store.interfaces import ReceiverStore

__all__ = ["build_receiver", "create_app"]


def build_receiver(store: ReceiverStore, settings: ReceiverSettings) -> Receiver:
    """The Receiver ``settings`` describe, over ``store`` (the one place a receiver is built
    from settings: the command line's waitress and uvicorn receivers and :func:`create_app`)."""
    return Receiver(
        store,
        username=settings.username,
        password=settings.password,
        previous_password=settings.previous_password,
        max_body=settings.max_body,
        allow_anonymous=settings.allow_anonymous,
        dead_letters=DeadLetterBudget(per_second=settings.dead_letter_rate, max_total=settings.dead_letter_max_bytes),
        repair=settings.repair,
        handler_lease=settings.handler_lease,
    )


def create_app(settings: Optional[ReceiverSettings] = None) -> Receiver:
    """A Receiver over the store and credentials ``settings`` name (default: the worker settings
    file ``uws-adapter receiver`` hands its workers, else ``[receiver]`` of $UWS_ADAPTER_CONFIG and
    the environment). The receiver owns the store it opens (closing the receiver's store is the
    server's shutdown)."""
    handed_over = settings is None and ReceiverSettings.handed_over()
    settings = settings if settings is not None else ReceiverSettings.for_worker()
    # A SQLite path or a postgresql:// URL (whose schema must be current: `uws-adapter db upgrade`).
    store = open_store(settings.db, batch=settings.commit == "group")
    if not handed_over:  # the command line said it once already, for all its workers
        settings.announce()
    return build_receiver(store, settings)
