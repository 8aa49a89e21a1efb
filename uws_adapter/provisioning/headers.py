"""The one check of text we put in an HTTP header: the REST client's OAuth2 keys (a Basic header),
its bearer token and M2M session token, whether given to us or answered by the service. Made
before any I/O, so that such text is bad input (or an unusable answer) naming its field: http.client
writes headers in ISO-8859-1, so any other character ended a call in a raw ``UnicodeEncodeError``,
and requests refuses a line break or leading space in a value with a message about the URL."""

from __future__ import annotations

import re
from typing import Optional

from uws_adapter.errors import InputError

__all__ = ["header_problem", "header_text"]

# What an HTTP/1.1 field value may hold (RFC 9110 section 5.5: visible ASCII, space, tab and
# obs-text, i.e. ISO-8859-1 without control characters), not starting with a space (requests
# refuses that). One pattern of one character class each: linear on any text.
_NOT_IN_A_HEADER = re.compile("[^\t\x20-\x7e\x80-\xff]")


def header_problem(text: str) -> Optional[str]:
    """Why ``text`` cannot be an HTTP header value (None when it can). The text itself is never
    shown: it is a secret or a token."""
    found = _NOT_IN_A_HEADER.search(text)
    if found is not None:
        return (
            f"has a character an HTTP header cannot carry at position {found.start()} "
            "(a control character, a line break or a character outside ISO-8859-1)"
        )
    if text[:1].isspace():
        return "starts with a space, which an HTTP header cannot carry"
    return None


def header_text(field: str, value: str, fix: str) -> str:
    """``value`` if it can be an HTTP header value, else the :class:`InputError` naming ``field``."""
    problem = header_problem(value)
    if problem is not None:
        raise InputError(field, problem, fix)
    return value
