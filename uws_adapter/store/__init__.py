"""Durable storage behind small interfaces: callback events with their attempts and dead letters,
the handler queue, the request log, tracking queries and the bridge's sessions
(:mod:`.interfaces`), with two backends that implement them all: SQLite (:class:`Store`, the
embedded default) and PostgreSQL (:class:`~uws_adapter.store.postgres.PostgresStore`, for several
instances sharing one database). :func:`open_store` picks one from a path or a URL. The clients
depend on :class:`RequestLog` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple, Union

from uws_adapter.errors import StoreError
from uws_adapter.store.interfaces import (
    POISONED,
    Backend,
    BridgeStore,
    CallbackEvents,
    CallbackWrite,
    DeadLetterWrite,
    HandlerQueue,
    Outcome,
    ReceiverStore,
    RequestLog,
    RequestStatus,
    SessionStore,
    StoredEvent,
    Tracking,
    Write,
)
from uws_adapter.store.sql import is_postgres_url, other_url
from uws_adapter.store.sqlite import Store
from uws_adapter.store.sqlite_schema import SCHEMA_VERSION

__all__ = [
    "POISONED", "SCHEMA_VERSION", "Backend", "BridgeStore", "CallbackEvents", "CallbackWrite", "DeadLetterWrite",
    "HandlerQueue", "Outcome", "ReceiverStore", "RequestLog", "RequestStatus", "SessionStore", "Store", "StoreError",
    "StoredEvent", "Tracking", "Write", "describe_store", "is_postgres_url", "no_store_at", "open_store", "other_url",
    "schema_versions", "upgrade_store",
]  # fmt: skip


def open_store(location: Union[str, Path], *, batch: bool = True, **options: Any) -> Backend:
    """The store at ``location``: a ``postgresql://`` URL (needs the ``postgres`` extra; its schema
    must be this release's: see :func:`upgrade_store`), or a SQLite file's path (created, and
    upgraded in place, as needed). ``batch=False`` commits each write alone."""
    if is_postgres_url(location):
        from uws_adapter.store.postgres import PostgresStore  # psycopg only when asked for

        return PostgresStore(str(location), batch=batch, **options)
    return Store(location, batch=batch, **options)


def upgrade_store(location: Union[str, Path]) -> str:
    """Bring the store at ``location`` to this release's schema; says what was done."""
    if is_postgres_url(location):
        from uws_adapter.store.postgres import PostgresStore

        with PostgresStore(str(location), upgrade=True) as store:
            before, after = store.last_upgrade
    else:
        before = Store.schema_version(location) if Path(location).exists() else 0
        Store(location).close()
        after = Store.schema_version(location)
    if before == after:
        return f"{describe_store(location)}: store schema {after}, nothing to do"
    return f"{describe_store(location)}: store schema {before} -> {after}"


def schema_versions(location: Union[str, Path]) -> Tuple[int, int]:
    """The schema version of the store at ``location`` and this release's, read without creating,
    upgrading or refusing anything; :class:`.StoreError` when there is no store there to read."""
    if is_postgres_url(location):
        from uws_adapter.store.postgres import SCHEMA_VERSION as POSTGRES_VERSION
        from uws_adapter.store.postgres import read_schema_version

        return read_schema_version(str(location)), POSTGRES_VERSION
    missing = no_store_at(location)
    if missing is not None:
        raise StoreError(f"{missing}: point --db at the receiver's SQLite file or database URL")
    return Store.schema_version(location), SCHEMA_VERSION  # a file that is not a database: StoreError


def no_store_at(location: Union[str, Path]) -> Optional[str]:
    """Why there is no SQLite store to read at ``location`` (None: a file with something in it). An
    empty file is no store either: SQLite would read it as a database of schema 0, and write one
    into it."""
    url = other_url(location)
    if url is not None:
        return url
    path = Path(location)
    if not path.is_file():
        return f"no store at {location}"
    if path.stat().st_size == 0:
        return f"no store at {location} (an empty file)"
    return None


def describe_store(location: Union[str, Path]) -> str:
    """``location`` fit to show: a URL without its password, or the path."""
    if is_postgres_url(location):
        from uws_adapter.store.postgres import redact_url

        return redact_url(str(location))
    if other_url(location) is not None:
        return f"{str(location).strip().partition('://')[0]}://(not shown)"
    return str(location)
