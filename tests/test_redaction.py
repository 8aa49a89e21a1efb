"""The redaction of refused documents (dead letters) costs about the same per byte whatever an
unauthenticated sender writes: a document that names a secret more often than any real one does is
not walked mention by mention (two steps of Python each: 0.8 s of CPU for 1 MB of ``"password": "``,
twice a second within the dead-letter budget) but kept as a note that says so."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from uws_adapter.receiver.app import Receiver
from uws_adapter.redaction import MAX_SECRET_MENTIONS, redact
from uws_adapter.serving.thread import ServedApp
from uws_adapter.store.sqlite import Store

SECRET = "Redact-Me-S3cret"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Tuple[int, Store]]:
    store = Store(tmp_path / "r.db")
    app = Receiver(store, username="listener", password=SECRET)
    served = ServedApp(app)
    served.start()
    try:
        yield int(served.url.rsplit(":", 1)[1].split("/")[0]), store
    finally:
        served.stop()
        app.close()
        store.close()


def post(port: int, body: bytes, content_type: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/callbacks", body=body, headers={"Content-Type": content_type})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("unit", "content_type"),
    [(b'"password": "', "application/json"), (b"<Password>", "text/xml"), (b"<a token='", "text/xml")],
    ids=["json-members", "xml-elements", "xml-attributes"],
)
def test_a_flood_of_secret_names_is_kept_as_a_note_not_walked(
    receiver: Tuple[int, Store], unit: bytes, content_type: str
) -> None:
    port, store = receiver
    flood = (b"{" if content_type == "application/json" else b"") + unit * (((1 << 20) - 64) // len(unit))
    assert post(port, flood + SECRET.encode(), content_type) == 400
    [letter] = store.dead_letters(bodies=True)
    kept = (letter.body or b"").decode()
    assert kept.startswith("*** not shown: ")
    assert f"more than {MAX_SECRET_MENTIONS:,}" in kept
    assert SECRET not in kept


def test_a_document_at_the_bound_is_still_shown_redacted(receiver: Tuple[int, Store]) -> None:
    port, store = receiver
    members = ", ".join(f'"password{n}": "{SECRET}"' for n in range(MAX_SECRET_MENTIONS))
    assert post(port, b"{" + members.encode() + b", junk", "application/json") == 400
    [letter] = store.dead_letters(bodies=True)
    kept = (letter.body or b"").decode()
    assert '"password0": "***"' in kept
    assert SECRET not in kept
    assert redact(b'{"password": "x", "a": 1}').decode() == '{"password": "***", "a": 1}'
