"""Frozen dataclasses made on a hot path without their generated ``__init__``.

Why: a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (the class's
own refuses), a call per field: 2.6 µs for a :class:`~uws_adapter.model.callbacks.CallbackRequest`
of 16 fields, made for every callback a receiver takes. :func:`made` fills the new instance's
``__dict__`` in one update (0.8 µs for the same): the same class, equal and hashed as one made by
``__init__``, just as frozen afterwards. Only for values that need no checking: where a class
checks or derives a field in ``__post_init__``, the caller computes it (as the callback reader
computes ``succeeded``). A test compares each class made both ways.
"""

from __future__ import annotations

from typing import Any, Dict, Type, TypeVar

__all__ = ["made"]

T = TypeVar("T")

_new = object.__new__


def made(cls: Type[T], values: Dict[str, Any]) -> T:
    """An instance of the frozen dataclass ``cls`` (without ``__slots__``) holding ``values``: every
    field by name, ``init=False`` ones included; nothing is checked or derived."""
    instance = _new(cls)
    instance.__dict__.update(values)
    return instance
