"""A command against an endpoint that answers badly prints one line on stderr and exits non-zero:
an answer over the cap, one that never comes, a connection closed unanswered. The engine logged
each such loss at INFO on ``uws_adapter.transport`` as well, so the command printed the same
failure twice (a log line, then its error line)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from clirun import run_in_process
from servers import LoopbackHttp, SilentServer


class ClosingServer:
    """Reads each request's first bytes, answers ``answer`` as it is (nothing: not a word), then closes."""

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):  # the client gave up first
                    conn.recv(65536)
                    if self.answer:
                        conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


def _oversized() -> LoopbackHttp:
    return LoopbackHttp(lambda request: (200, "text/xml", b"<a>" * 400_000))


SERVERS: List[Callable[[], object]] = [_oversized, SilentServer, ClosingServer]


@pytest.fixture(params=SERVERS, ids=["over-the-cap", "silent", "closing"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    server = request.param()
    try:
        yield f"{server.url}/api/v2"  # type: ignore[attr-defined]
    finally:
        server.close()  # type: ignore[attr-defined]


def test_a_bad_endpoint_is_one_line_on_stderr(tmp_path: Path, endpoint: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "THINGSPACE_"))}
    environment.update(UWS_ENDPOINT=endpoint, UWS_USERNAME="u", UWS_PASSWORD="p")
    result = run_in_process(
        ["suspend", "--device", "IMEI:350000000000000", "--timeout", "2,2", "--deadline", "5"], tmp_path, environment
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("uws-adapter: error: LogIn: "), lines[0]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(150)) + b"\r\n",
         "an answer of more than 100 header fields"),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70_000 + b"\r\n\r\n", "an answer line over 65,536 bytes"),
        (b"SSH-2.0-OpenSSH_9.6 \x1b[31mnot http\r\n\r\n", "an answer that is not HTTP"),
        (b"", "the connection was closed without an answer"),
    ],
    ids=["too-many-headers", "header-line-too-long", "not-http", "closed-unanswered"],
)  # fmt: skip
def test_an_answer_that_cannot_be_read_is_said_in_words(tmp_path: Path, answer: bytes, reason: str) -> None:
    # Each was "(ConnectionError)", the name of requests' exception, whatever had happened.
    server = ClosingServer(answer)
    try:
        command = ["wsdl", "diff", "--timeout", "2", "--deadline", "5", f"{server.url}/x?wsdl"]
        result = run_in_process(command, tmp_path, dict(os.environ))
    finally:
        server.close()
    assert result.returncode == 2
    assert result.stderr == (
        f"uws-adapter: error: SOURCE: GET: no usable answer from '{server.url}/x?wsdl' ({reason}); check the URL, "
        "the network and the certificate\n"
    )
