"""The bridge's callback path answers every declared codec name without a 5xx (issue 17 item 2),
as the receiver does: the XML declaration, the Content-Type charset, and JSON callbacks."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import List, Tuple

from hostile import NOT_IN_A_HEADER, codec_names, declared
from test_bridge import running_bridge

from uws_adapter import Emulator
from uws_adapter.xmlsafe import text_codec


def post(url: str, body: bytes, content_type: str) -> Tuple[int, bytes]:
    host, _, port = url.rpartition("/")[2].partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/callbacks", body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_every_declared_codec_name_gets_400_with_a_reason_on_the_bridge(tmp_path: Path) -> None:
    unexpected: List[str] = []
    with Emulator() as emulator, running_bridge(tmp_path / "b.db", emulator, "http://127.0.0.1:9/") as (_, url):
        for name in [*codec_names(), *NOT_IN_A_HEADER]:
            status, reason = post(url, declared(name), "text/xml")
            if status != 400 or not reason.strip():
                unexpected.append(f"{name!r} declared: {status} {reason[:80]!r}")
            if "\x00" in name:
                continue
            for media in ("text/xml", "application/json"):
                status, reason = post(url, b'{"requestId": "r"}', f"{media}; charset={name}")
                if status >= 500 or (text_codec(name) is None and (status != 400 or b"charset" not in reason)):
                    unexpected.append(f"{name!r} {media} charset: {status} {reason[:80]!r}")
    assert unexpected == []
