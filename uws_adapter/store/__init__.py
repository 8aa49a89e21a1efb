"""Durable storage behind small interfaces: callback events with their attempts and dead letters,
the handler queue, the request log and tracking queries (:mod:`.interfaces`), and the SQLite
backend that implements them all (:class:`Store`). The clients depend on :class:`RequestLog` only."""

from uws_adapter.errors import StoreError
from uws_adapter.store.interfaces import (
    POISONED,
    CallbackEvents,
    CallbackWrite,
    DeadLetterWrite,
    HandlerQueue,
    Outcome,
    ReceiverStore,
    RequestLog,
    RequestStatus,
    StoredEvent,
    Tracking,
    Write,
)
from uws_adapter.store.sqlite import SCHEMA_VERSION, Store

__all__ = [
    "POISONED", "SCHEMA_VERSION", "CallbackEvents", "CallbackWrite", "DeadLetterWrite", "HandlerQueue", "Outcome",
    "ReceiverStore", "RequestLog", "RequestStatus", "Store", "StoreError", "StoredEvent", "Tracking", "Write",
]  # fmt: skip
