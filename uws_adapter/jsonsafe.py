"""The one hardened path for untrusted JSON (REST callbacks, REST requests and answers).

Linear time whatever the input: the C decoder reads the text once, integers longer than
:data:`MAX_INT_DIGITS` are refused before Python converts them (a long digit string is quadratic
to convert on Python 3.9, and over 4,300 digits an error on newer ones), nesting is bounded by the
interpreter's recursion guard during decoding and by ``max_depth`` after it. ``NaN`` and
``Infinity`` are not JSON and are refused.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Mapping, Optional, Tuple, Type

from uws_adapter.errors import DocumentError

#: Integers on the wire are counts and days; 18 digits always fit a signed 64-bit column.
MAX_INT_DIGITS = 18
#: Default cap on nesting (callbacks nest about 5 deep).
MAX_DEPTH = 32
# A \uD800-\uDFFF escape: the only way a lone surrogate (not text, and not storable) gets in.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads_untrusted(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    error: Type[DocumentError] = DocumentError,
    what: str = "document",
    max_values: Optional[int] = None,
) -> Any:
    """Decode ``text`` as JSON or raise ``error`` naming ``what`` and the reason. ``max_values``
    bounds the values inside containers (the walk after the C decode stops there)."""
    try:
        value = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:
        raise error(f"{what}: JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise error(f"{what}: not valid JSON: {exc}") from None
    check_depth(value, max_depth, error=error, what=what, max_values=max_values)
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{what}: a string holds a lone surrogate escape (\\uD800-\\uDFFF); not text") from None
    return value


def check_depth(
    value: Any,
    max_depth: int,
    *,
    error: Type[DocumentError] = DocumentError,
    what: str = "document",
    max_values: Optional[int] = None,
) -> None:
    """Raise ``error`` when ``value`` (decoded JSON) nests deeper than ``max_depth``, or holds more
    than ``max_values`` values in its containers (counted by container size before any is walked,
    so the walk costs at most that many steps)."""
    stack: List[Tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise error(f"{what}: JSON nested deeper than {max_depth} levels")
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        seen += len(children)
        if max_values is not None and seen > max_values:
            raise error(f"{what}: more than {max_values:,} JSON values")
        stack.extend((v, depth + 1) for v in children)


def wire_integer(text: str) -> int:
    """An integer written on the wire (``[+-]`` and ASCII digits), or ``ValueError``; bounded so that
    it converts in linear time and fits a 64-bit store column."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{text[:40]!r} is not an integer")
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)
