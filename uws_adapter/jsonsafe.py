"""The one hardened path for untrusted JSON (REST callbacks, REST requests and answers).

Linear time whatever the input: the C decoder reads the text once, integers longer than
:data:`MAX_INT_DIGITS` are refused before Python converts them (a long digit string is quadratic
to convert on Python 3.9, and over 4,300 digits an error on newer ones), nesting is bounded by the
interpreter's recursion guard during decoding and by ``max_depth`` after it. ``NaN`` and
``Infinity`` are not JSON and are refused.

With ``max_values`` (callbacks: checked before the credentials are), the values are counted in C
*before* the decode (:func:`_values_outside_strings`): decoding is what costs, 100-300 ms of CPU for
1 MB of ``[]``, ``{}`` or ``1`` values against 2 ms for 1 MB of one string, and a flood of them
would pay it on every unauthenticated body. With ``unique_keys`` a key twice in one object is
refused, as XML refuses a credential element twice: the last one silently won, so a document could
carry a password or a RequestId that another reader of it takes to be a different one.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Type

from uws_adapter.errors import DocumentError, shown

#: Integers on the wire are counts and days; 18 digits always fit a signed 64-bit column.
MAX_INT_DIGITS = 18
#: Default cap on nesting (callbacks nest about 5 deep).
MAX_DEPTH = 32
# A \uD800-\uDFFF escape: the only way a lone surrogate (not text, and not storable) gets in.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class _KeyTwice(DocumentError):
    """JSON allows a key twice (RFC 8259 says it SHOULD NOT); we refuse it, so it is not "invalid"."""


def _unique(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: Set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _KeyTwice(f"the key {shown(key)} appears twice in one object")
            seen.add(key)
    return obj


def _values_outside_strings(text: str) -> int:
    """The values inside containers in ``text`` (as :func:`check_depth` counts them), for valid JSON
    exactly: each container with n members holds n - 1 commas, so the values are the commas plus
    the non-empty containers, counted outside strings. Only ``str`` methods, in C, linear: escapes
    are dropped (a backslash pairs with the character after it, left to right), the text between
    quotes is dropped, then blanks, and what is left is counted."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside = "".join("".join(unescaped.split('"')[::2]).split())
    empty = outside.count("[]") + outside.count("{}")
    return outside.count(",") + outside.count("[") + outside.count("{") - empty


def loads_untrusted(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    error: Type[DocumentError] = DocumentError,
    what: str = "document",
    max_values: Optional[int] = None,
    unique_keys: bool = False,
) -> Any:
    """Decode ``text`` as JSON or raise ``error`` naming ``what`` and the reason. ``max_values``
    bounds the values inside containers (counted before the decode, see the module); with
    ``unique_keys`` a key twice in one object is refused."""
    if (
        max_values is not None
        and sum(map(text.count, ",[{")) > max_values  # a quick bound (in strings too) before the exact count
        and _values_outside_strings(text) > max_values
    ):
        raise error(f"{what}: more than {max_values:,} JSON values")
    hook = _unique if unique_keys else None
    try:
        value = json.loads(
            text, parse_int=wire_integer, parse_float=_finite, parse_constant=_no_constant, object_pairs_hook=hook
        )
    except RecursionError:
        raise error(f"{what}: JSON nested deeper than {max_depth} levels") from None
    except _KeyTwice as exc:
        raise error(f"{what}: {exc}") from None
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


def _finite(text: str) -> float:
    # 1e999 is valid JSON that Python reads as inf: the Infinity the module refuses, spelled another way.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]!r} is out of range for a number")
    return value


def wire_integer(text: str) -> int:
    """An integer written on the wire (``[+-]`` and ASCII digits), or ``ValueError``; bounded so that
    it converts in linear time and fits a 64-bit store column."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{text[:40]!r} is not an integer")
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)
