"""An answer's head and first body bytes leave waitress in one write (serving.onewrite), and every
answer still reads as HTTP says: lengths, chunks, cuts, answers without a body."""

from __future__ import annotations

import http.client
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from uws_adapter.serving.bounded_waitress import BoundedChannel
from uws_adapter.serving.onewrite import JOINED_MAX, OneWriteTask
from uws_adapter.serving.thread import ServedApp

App = Callable[[Dict[str, Any], Callable[..., Any]], Iterator[bytes]]
BODY = b"<s:Envelope>answer</s:Envelope>"


def _answer(status: str, chunks: List[bytes], length: Any = "auto") -> App:
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = [("Content-Type", "text/xml")]
        if length == "auto":
            headers.append(("Content-Length", str(sum(map(len, chunks)))))
        elif length is not None:
            headers.append(("Content-Length", str(length)))
        start_response(status, headers)
        return iter(chunks)

    return app


def _serve(app: App, method: str = "POST") -> Tuple[int, Dict[str, str], bytes, List[bytes]]:
    """The answer to one request (status, headers, body) and what the channel was given to send."""
    writes: List[bytes] = []

    class Recording(BoundedChannel):
        def write_soon(self, data: Any) -> Any:
            writes.append(bytes(data))
            return super().write_soon(data)

    served = ServedApp(app, threads=2)
    served._server.channel_class = Recording
    served.start()
    try:
        connection = http.client.HTTPConnection(*served.address, timeout=10)
        connection.request(method, "/api", body=b"<x/>" if method == "POST" else None)
        response = connection.getresponse()
        body = response.read()
        # The connection is still usable: nothing was left unread or over-read.
        connection.request(method, "/api", body=b"<x/>" if method == "POST" else None)
        assert connection.getresponse().read() == body
        connection.close()
    finally:
        served.stop()
    return response.status, dict(response.getheaders()), body, writes[: len(writes) // 2]


def test_the_task_is_the_one_every_waitress_server_of_ours_runs() -> None:
    assert BoundedChannel.task_class is OneWriteTask


def test_a_short_answer_with_its_length_is_one_write_head_and_body() -> None:
    status, headers, body, writes = _serve(_answer("200 OK", [BODY]))
    assert (status, body, headers["Content-Length"]) == (200, BODY, str(len(BODY)))
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\n" + BODY)


def test_later_chunks_follow_the_first_as_waitress_writes_them() -> None:
    status, _, body, writes = _serve(_answer("200 OK", [b"", b"first ", b"second ", b"third"]))
    assert (status, body) == (200, b"first second third")
    assert writes[0].endswith(b"\r\n\r\nfirst ")
    assert writes[1:] == [b"second ", b"third"]


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (_answer("200 OK", [b"abc", b"def"], length=None), b"abcdef"),  # no length: chunked, as waitress does
        (_answer("200 OK", [BODY + b"extra"], length=len(BODY)), BODY),  # cut at the announced length
        (_answer("200 OK", [b"x" * (JOINED_MAX + 1)]), b"x" * (JOINED_MAX + 1)),  # too large to copy
    ],
    ids=["chunked", "over-length", "large"],
)
def test_answers_the_head_is_not_joined_to_still_read_whole(app: App, expected: bytes) -> None:
    status, _, body, writes = _serve(app)
    assert (status, body) == (200, expected)
    head_alone = len(writes) > 1 and writes[0].endswith(b"\r\n\r\n")
    assert head_alone or writes[0].endswith(b"\r\n\r\n" + expected)  # the cut one: joined, cut
    assert b"".join(writes).count(b"HTTP/1.1") == 1


def test_an_answer_without_a_body_sends_no_body() -> None:
    status, _, body, writes = _serve(_answer("204 No Content", [b"ignored"], length=None))
    assert (status, body) == (204, b"")
    assert len(writes) == 1
    assert writes[0].endswith(b"\r\n\r\n")
    assert b"ignored" not in writes[0]
