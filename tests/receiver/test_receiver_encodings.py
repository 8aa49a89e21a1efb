"""No pre-auth 500 from a declared encoding (issue 17 item 2): every codec name Python knows, and
names that are none, declared in the XML declaration and in the Content-Type charset, POSTed to the
receiver on waitress and on uvicorn. A name outside the few text encodings we read is refused 400
with the reason before anything decodes with it; the ones we read keep working."""

from __future__ import annotations

from typing import Callable, List

import pytest
import test_receiver
from hostile import NOT_IN_A_HEADER, codec_names, declared
from test_receiver import SECRET, Running, callback

from uws_adapter import render_callback
from uws_adapter.receiver.app import DeadLetterBudget
from uws_adapter.xmlsafe import ASCII_COMPATIBLE, text_codec

start = test_receiver.start  # both servers

NAMES = codec_names()
#: What the refusal of a declared name says: the name is not one we read, or (a NUL inside it) the
#: document is not XML text at all.
WHY_REFUSED = (b"callback: the encoding ", b"callback: contains NUL bytes")


def signed_callback(n: int) -> bytes:
    """A valid, authenticated callback without an XML declaration (ASCII only)."""
    document = render_callback(callback(n, password=SECRET))
    assert document.isascii()
    return document.split(b"?>", 1)[1] if document.startswith(b"<?xml") else document


def test_the_corpus_holds_every_kind_of_codec_name() -> None:
    for name in ("idna", "undefined", "base64_codec", "zlib_codec", "rot_13", "utf_16", "punycode", "cp037"):
        assert name in NAMES
    assert len(NAMES) > 400


def test_every_declared_codec_name_is_answered_without_a_5xx(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET, dead_letters=DeadLetterBudget(burst=10_000))
    unexpected: List[str] = []
    for n, name in enumerate([*NAMES, *NOT_IN_A_HEADER]):
        # The bare element is refused in any case (not a callback), through the dead-letter path
        # that decoded by the declared name: 400 with a reason, never 500.
        status, reason = receiver.post(declared(name), "text/xml")
        if status != 400 or not reason.strip():
            unexpected.append(f"{name!r} <a/>: {status} {reason[:80]!r}")
        # A real callback: stored when the name is an ASCII-compatible text encoding we read (its
        # bytes are ASCII), refused 400 naming the encoding otherwise.
        status, reason = receiver.post(declared(name, signed_callback(n)), "text/xml")
        codec = text_codec(name)
        if codec in ASCII_COMPATIBLE:
            if status != 200:
                unexpected.append(f"{name!r} callback: {status} {reason[:80]!r}")
        elif status != 400 or (codec is None and not reason.startswith(WHY_REFUSED)):
            unexpected.append(f"{name!r} callback: {status} {reason[:80]!r}")
    assert unexpected == []


def test_every_codec_name_as_a_charset_is_answered_without_a_5xx(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET)
    unexpected: List[str] = []
    for n, name in enumerate(NAMES):
        for media in ("text/xml", "application/json"):
            body = signed_callback(n) if media == "text/xml" else b'{"requestId": "j-%d"}' % n
            status, reason = receiver.post(body, f"{media}; charset={name}")
            if text_codec(name) is None:
                if status != 400 or b"charset" not in reason:
                    unexpected.append(f"{name!r} {media}: {status} {reason[:80]!r}")
            elif status >= 500 or (media == "text/xml" and status != 200):
                unexpected.append(f"{name!r} {media}: {status} {reason[:80]!r}")
    assert unexpected == []


@pytest.mark.parametrize("name", ["idna", "undefined", "utf-16", "rot13", "base64"])
def test_a_dead_letter_declaring_a_strange_codec_keeps_no_secret(start: Callable[..., Running], name: str) -> None:
    receiver = start(username="listener", password=SECRET)
    body = declared(name, f"<CallbackRequest><Password>{SECRET}</Password><Oops></CallbackRequest>".encode())
    status, _ = receiver.post(body, "text/xml")
    assert status == 400
    rows = receiver.store._reader().execute("SELECT body FROM dead_letters").fetchall()
    assert rows, "the refused document was kept as a dead letter"
    assert all(SECRET.encode() not in bytes(row[0]) for row in rows)
