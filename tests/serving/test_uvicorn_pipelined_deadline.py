"""The bounded uvicorn protocol's header deadline for a request pipelined behind one still being
answered (uws_adapter.serving.bounded_uvicorn): the 408 for the late headers comes after the answer
to the request before them, as the 400 and 431 refusals do. It was written at once and the
connection closed, so that a callback being committed lost its answer and a client reading answers
in order took the 408 for it. Nor is such a connection closed to make room for a newcomer (it has
an answer to lose). A real uvicorn on loopback; the application's answer waits at a gate
the test opens once the deadline has passed (no timing: an event set when the deadline ran)."""

from __future__ import annotations

import asyncio
import re
import select
import socket
import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest
from servers import AsgiServer, read_answer

from uws_adapter.serving import bounded_uvicorn
from uws_adapter.serving.bounded_uvicorn import BoundedHttpToolsProtocol, uvicorn_options
from uws_adapter.serving.limits import ConnectionLimits

#: Seconds a test waits for the server before it fails (only a hung server waits this long).
BOUND = 30.0


class GatedApp:
    """Answers 200 to every request, each once :attr:`gate` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.called = threading.Event()

    async def __call__(self, scope: Dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        self.called.set()
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, BOUND)
        body = b"answered " + scope["path"].encode() + b"\n"
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def expired(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the protocol's deadline handler has run."""
    ran = threading.Event()
    original = BoundedHttpToolsProtocol._expired

    def expire(self: BoundedHttpToolsProtocol) -> None:
        try:
            original(self)
        finally:
            ran.set()

    monkeypatch.setattr(bounded_uvicorn.BoundedHttpToolsProtocol, "_expired", expire)
    return ran


@pytest.fixture
def served() -> Iterator[List[Any]]:
    app = GatedApp()
    options = {"log_level": "warning", "access_log": False, "lifespan": "off", "http": "httptools"}
    server = AsgiServer(app, **{**options, **uvicorn_options(ConnectionLimits(header_timeout=0.2, idle_timeout=5))})
    try:
        yield [app, server]
    finally:
        app.gate.set()
        server.close()


def test_late_headers_behind_a_request_being_answered_get_their_408_after_its_answer(
    served: List[Any], expired: threading.Event
) -> None:
    app, server = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=BOUND) as connection:
        # The first request whole; the second's headers begun, never finished.
        connection.sendall(b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /second HTTP/1.1\r\nHost")
        assert app.called.wait(BOUND)
        assert expired.wait(BOUND), "the header deadline never ran"
        app.gate.set()  # the first request is answered only now
        answer, closed = read_answer(connection)
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert statuses[:1] == [b"200"], answer
    assert b"answered /first" in answer
    assert statuses[1:] in ([], [b"408"]), answer
    assert closed


def test_a_connection_whose_request_is_being_answered_is_not_evicted_for_late_headers_behind_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docs/services.md: "A connection whose request is being answered is never closed." With the
    # next request's headers begun behind it, it was ranked as a request still arriving, and closed
    # for a newcomer: the callback being committed lost its answer.
    monkeypatch.setattr(bounded_uvicorn, "EVICT_AFTER", 0.0)  # arriving "long enough" at once
    app = GatedApp()
    options = {"log_level": "warning", "access_log": False, "lifespan": "off", "http": "httptools"}
    limits = ConnectionLimits(max_connections=1, header_timeout=BOUND * 2, idle_timeout=5)
    server = AsgiServer(app, **{**options, **uvicorn_options(limits)})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=BOUND) as first:
            first.sendall(b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /second HTTP/1.1\r\nHost")
            assert app.called.wait(BOUND)
            with socket.create_connection(("127.0.0.1", server.port), timeout=BOUND) as newcomer:
                # The first to hear from the server: the newcomer refused, or the first closed for it.
                readable, _, _ = select.select([first, newcomer], [], [], BOUND)
                assert readable == [newcomer], "the connection whose request is being answered was closed"
                refused, closed = read_answer(newcomer)
            assert closed
            assert refused.startswith(b"HTTP/1.1 503"), refused
            app.gate.set()
            answer = b""
            while b"answered /first\n" not in answer:  # the second request's headers stay unfinished
                chunk = first.recv(65536)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b"answered /first" in answer
    finally:
        app.gate.set()
        server.close()
