"""Text a request, a document or a store can carry: the one home of each rule, since a value may
pass through all three (a password compared, written into a SOAP envelope, kept in a store). The
checks of what text holds never show the value: it may be a password or a token. Each is one
character class, so the search is linear whatever the text."""

from __future__ import annotations

import re

from uws_adapter.errors import Code, InputError, kind_of, shown

# What XML 1.0 cannot carry: control characters but tab, LF and CR, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def a_string(field: str, value: object, fix: str, *, code: str = Code.REQUEST_UNDEFINED) -> str:
    """``value`` if it is a string, else the one :class:`InputError` for a value of another type
    given for a name or an identifier (a number would lose its leading zeros). It shows the value
    (bounded): what it checks is never a secret."""
    if not isinstance(value, str):
        got = kind_of(value) if value is None else f"{kind_of(value)} ({shown(value)})"
        raise InputError(field, f"expected a string, got {got}", fix, code=code)
    return value


def xml_carries(text: str) -> bool:
    """Whether XML 1.0 can carry ``text``."""
    return _NOT_XML.search(text) is None


def xml_text(field: str, value: str, *, code: str = Code.REQUEST_UNDEFINED) -> str:
    """``value`` if XML 1.0 can carry it, else the one :class:`InputError` for text that cannot
    go into a SOAP document. The value itself is never shown: it may be a password or a token."""
    found = _NOT_XML.search(value)
    if found is not None:
        raise InputError(
            field,
            f"has a character XML cannot carry at position {found.start()} (a control character or a lone surrogate)",
            "remove control characters",
            code=code,
        )
    return value


# A lone surrogate: what Python makes of a byte the locale's encoding cannot decode, in the command
# line and the environment (a Latin-1 password in a UTF-8 locale). No request can carry it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def decoded_text(field: str, value: str, fix: str = "give it in UTF-8 (a settings file is read as UTF-8)") -> str:
    """``value`` if it is text, else the :class:`InputError` naming ``field``: a lone surrogate is no
    text a request can carry or a database store, and encoding it (to compare a login, to query a
    store) ended each call in a raw ``UnicodeEncodeError`` (a 500 for a login or a callback).
    The value itself is never shown: it may be a password."""
    found = _LONE_SURROGATE.search(value)
    if found is not None:
        raise InputError(
            field,
            f"is not text at position {found.start()} (a byte the locale's encoding cannot decode, as Python "
            "reads the command line and the environment)",
            fix,
        )
    return value


def xml_escaped(text: str) -> str:
    """``text`` with each character XML cannot carry written as ``\\uXXXX``: for text relayed from
    elsewhere into a document we answer with (a fault's code and message), which must reach the
    client readable rather than end the answer."""
    return _NOT_XML.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
