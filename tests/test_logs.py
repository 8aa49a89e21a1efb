"""Logging (uws_adapter.logs, uws_adapter.serving.access): one access line per request on every
service over real loopback servers, refusals with their reasons, the JSON format, the wire debug
logger's redaction, and a library that configures nothing when imported."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from conftest import CLIENT_SECRET, PASSWORD, client_for, rest_client_for
from servers import AsgiServer, wait_until

from uws_adapter import CallbackRequest, Emulator, ReportedDevice, RestoreResult, generated_devices, render_callback
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.errors import InputError, ServiceFault
from uws_adapter.logs import (
    _ESCAPES,
    FORMAT_VARIABLE,
    LEVEL_VARIABLE,
    StderrHandler,
    Throttled,
    configure_from_environment,
    configure_logging,
    fields,
    printable,
)
from uws_adapter.model.selection import select
from uws_adapter.provisioning.urls import check_url
from uws_adapter.receiver.app import Receiver
from uws_adapter.receiver.asgi import AsyncReceiver, server_config
from uws_adapter.redaction import masked_url, masked_urls, redact
from uws_adapter.serving.access import AccessLog, AsgiAccessLog, refusal_reason
from uws_adapter.serving.bounded_uvicorn import uvicorn_options
from uws_adapter.serving.limits import ConnectionLimits
from uws_adapter.serving.thread import ServedApp
from uws_adapter.store.sqlite import Store

LISTENER_USER, LISTENER_PASSWORD = "log-listener", "Log-Test-Pa55word"
LEGACY_PASSWORD = "Legacy-Log-Pa55"
PATIENCE = 20.0


def callback(password: str = LISTENER_PASSWORD, request_id: str = "req-log-1") -> bytes:
    return render_callback(
        CallbackRequest(
            request_id=request_id,
            devices=(ReportedDevice("IMEI", "350000000000001"),),
            username=LISTENER_USER,
            password=password,
            service="CarrierService",
            action="Restore",
            status="Success",
            callback_count=1,
            max_callback_threshold=4,
            restore=RestoreResult(True),
        )
    )


def exchange(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> Tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name.replace("_", "-"), value)
        if "Content_Length" not in headers:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body if "Content_Length" not in headers else None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def healthy(port: int) -> bool:
    try:
        return exchange(port, "GET", "/health")[0] == 200
    except OSError:  # not listening yet (the announcement comes first)
        return False


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is; the answer, up to the connection's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def access_records(caplog: pytest.LogCaptureFixture, service: str) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == f"uws_adapter.{service}.access"]


# The library configures nothing ------------------------------------------------------------------


def test_importing_the_package_adds_no_handler_and_shows_nothing() -> None:
    code = textwrap.dedent(
        """
        import logging, sys
        import uws_adapter
        assert logging.getLogger().handlers == [], logging.getLogger().handlers
        handlers = logging.getLogger("uws_adapter").handlers
        assert [type(h).__name__ for h in handlers] == ["NullHandler"], handlers
        assert "uws_adapter.receiver.app" not in sys.modules  # the lazy imports still hold
        assert uws_adapter.Receiver.__name__ == "Receiver"
        assert logging.getLogger().handlers == []
        logging.getLogger("uws_adapter.receiver").warning("a library's warning, not shown without a handler")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# Formats and configuration -----------------------------------------------------------------------


@pytest.fixture
def configured() -> Iterator[Callable[..., logging.Handler]]:
    """configure_logging, undone afterwards (it replaces the root's StderrHandler)."""
    before = logging.getLogger("uws_adapter").level

    def configure(*args: str) -> logging.Handler:
        return configure_logging(*args)

    yield configure
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    logging.getLogger("uws_adapter").setLevel(before)


def test_json_format_is_one_parseable_object_per_line(
    configured: Callable[..., logging.Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    configured("debug", "json")
    log = logging.getLogger("uws_adapter.receiver.access")
    log.info('"%s %s" %d', "POST", "/", 401, extra={"method": "POST", "status": 401, "reason": "wrong\nline"})
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("uws_adapter.receiver").exception("a failure")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message", "method", "status", "reason"}
    assert first["time"].endswith("Z")
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "uws_adapter.receiver.access",
        '"POST /" 401',
    )
    assert (first["method"], first["status"], first["reason"]) == ("POST", 401, "wrong\nline")
    assert second["message"] == "a failure"
    assert "ValueError: broken" in second["exception"]


def test_text_format_is_one_line_a_record_and_escapes_line_breaks(
    configured: Callable[..., logging.Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    configured("info", "text")
    logging.getLogger("uws_adapter.receiver.access").info('"GET %s" 404', "/x\n2026-01-01 INFO forged\r")
    logging.getLogger("uws_adapter.receiver").debug("below the level")
    [line] = capsys.readouterr().err.splitlines()
    assert " INFO uws_adapter.receiver.access " in line
    assert line.endswith('"GET /x\\n2026-01-01 INFO forged\\r" 404')


RECORDLESS = """
import logging, sys
from uws_adapter.logs import JsonFormatter, configure_logging, text_handler
from uws_adapter.serving.access import _Line, access_logger

handler = configure_logging("info")
logger = access_logger("receiver")

def line(status, path):
    answered = _Line("POST", path, "127.0.0.1:50312")
    answered.status, answered.bytes = status, 227
    answered.log(logger, "wrong password" if status >= 400 else None)

assert text_handler(logger, logging.INFO) is handler
line(200, "/cb\\x07")
line(401, "/cb")
logger.addFilter(lambda record: True)  # something that must see a record: written through one
assert text_handler(logger, logging.INFO) is None
line(200, "/cb\\x07")
line(401, "/cb")
logger.filters.clear()
other = logging.StreamHandler(sys.stdout)
logging.getLogger("uws_adapter").addHandler(other)
assert text_handler(logger, logging.INFO) is None
logging.getLogger("uws_adapter").removeHandler(other)
handler.setFormatter(JsonFormatter())
assert text_handler(logger, logging.INFO) is None
configure_logging("info")
logging.setLogRecordFactory(lambda *args, **kwargs: logging.LogRecord(*args, **kwargs))
assert text_handler(logger, logging.INFO) is None
print("checked")
"""


def test_an_access_line_written_without_a_record_is_the_line_a_record_writes() -> None:
    """The access line's fast path (no LogRecord when a text StderrHandler is the only handler a
    record would reach) writes what the record would, and steps aside for anything else that
    would see the record: a filter, another handler, the JSON format, a program's record factory.
    In a process of its own: pytest's log capture is a handler of the root logger."""
    done = subprocess.run([sys.executable, "-c", RECORDLESS], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "checked", done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 4, lines

    def shape(text: str) -> str:  # the time and the duration differ between two lines
        stamp, rest = text.split(" ", 1)
        assert stamp.endswith("Z")
        assert stamp[:4].isdigit()
        return rest.replace(rest[rest.index(" in ") : rest.index(" ms ")], " in 0.0")

    assert [shape(text) for text in lines[:2]] == [shape(text) for text in lines[2:]]
    assert shape(lines[0]) == (
        'INFO uws_adapter.receiver.access "POST /cb\\x07" 200 227 bytes in 0.0 ms from 127.0.0.1:50312'
    )
    assert shape(lines[1]).endswith("from 127.0.0.1:50312: wrong password")


BATCHED = """
import asyncio, io, sys
from uws_adapter.logs import configure_logging
from uws_adapter.serving.access import AsgiAccessLog, _Line, access_logger

class Counted(io.StringIO):
    writes = 0
    def write(self, text):
        Counted.writes += 1
        return super().write(text)

sys.stderr = stream = Counted()
configure_logging("info")
logger = access_logger("receiver")
# The direct path's lines, one write each, for the shape the batched ones must have.
for status, path, size in ((200, "/cb", 15), (401, "/refused", 14)):
    direct = _Line("POST", path, "127.0.0.1:50312")
    direct.status, direct.bytes = status, size
    direct.log(logger, "wrong password" if status >= 400 else None)
direct_writes, direct_text = Counted.writes, stream.getvalue()

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    status = 401 if scope["path"] == "/refused" else 200
    body = b"wrong password" if status == 401 else b"{}" * 7 + b"!"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

logged = AsgiAccessLog(app, "receiver")

async def request(path):
    scope = {"type": "http", "method": "POST", "path": path, "client": ("127.0.0.1", 50312), "headers": []}
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        pass
    await logged(scope, receive, send)

async def main():
    before = Counted.writes
    await request("/cb")  # neither suspends this task: both in this iteration of the loop
    await request("/refused")
    assert Counted.writes == before, "written before the end of the loop's iteration"
    await asyncio.sleep(0)
    assert Counted.writes == before + 1, Counted.writes - before  # two lines, one write
    await asyncio.gather(request("/cb"), request("/cb"))  # two tasks of one iteration
    assert Counted.writes == before + 2, Counted.writes - before
    # A lifespan's shutdown writes what its iteration logged.
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    async def lifespan_receive():
        return next(messages)
    async def lifespan_send(message):
        pass
    await request("/cb")
    await logged({"type": "lifespan"}, lifespan_receive, lifespan_send)
    assert Counted.writes == before + 3, Counted.writes - before

asyncio.run(main())
sys.__stdout__.write(f"{direct_writes}\\n{direct_text}---\\n{stream.getvalue()[len(direct_text):]}")
"""


def test_access_lines_of_one_loop_iteration_are_written_at_once_as_the_direct_path_writes_them() -> None:
    """The ASGI wrapper's text lines wait for the end of the event-loop iteration that logged them
    (a lifespan's shutdown writes them too) and go out in one write: the same lines, in order, as
    written one by one. In a process of its own: pytest's log capture is a handler of the root logger."""
    done = subprocess.run([sys.executable, "-c", BATCHED], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    writes, rest = done.stdout.split("\n", 1)
    direct, batched = rest.split("---\n")
    assert writes == "2"  # one write a line when nothing batches them

    def shape(text: str) -> str:  # the time and the duration differ between two lines
        stamp, rest = text.split(" ", 1)
        assert stamp.endswith("Z")
        return rest.replace(rest[rest.index(" in ") : rest.index(" ms ")], " in 0.0")

    ok, refused = (shape(line) for line in direct.splitlines())
    assert [shape(line) for line in batched.splitlines()] == [ok, refused, ok, ok, ok]


def test_configuring_again_replaces_the_handler(configured: Callable[..., logging.Handler]) -> None:
    configured("info", "text")
    configured("warning", "json")
    assert len([h for h in logging.getLogger().handlers if isinstance(h, StderrHandler)]) == 1
    assert logging.getLogger("uws_adapter").level == logging.WARNING


@pytest.mark.parametrize(
    ("level", "log_format", "option"),
    [("loud", "text", "--log-level"), ("info", "xml", "--log-format")],
    ids=["unknown-level", "unknown-format"],
)
def test_unknown_level_or_format_is_an_input_error(level: str, log_format: str, option: str) -> None:
    with pytest.raises(InputError, match=f"^{option}: "):
        configure_logging(level, log_format)


def test_workers_are_configured_from_the_environment_only_when_asked(
    configured: Callable[..., logging.Handler],
) -> None:
    assert configure_from_environment({}) is None
    handler = configure_from_environment({LEVEL_VARIABLE: "debug", FORMAT_VARIABLE: "json"})
    assert handler is not None
    assert logging.getLogger("uws_adapter").level == logging.DEBUG


def test_printable_cuts_and_escapes() -> None:
    assert printable("a\u2028b\x1b[31m\tc", 40) == "a\\u2028b\\x1b[31m\\tc"
    assert printable("x" * 10, 4) == "xxxx..."


def test_printable_escapes_every_character_as_its_table_says() -> None:
    # printable() skips str.translate for text that str.isprintable accepts, which is right only if
    # every character of the table is one isprintable refuses: each character of the BMP (the
    # table's are all in it), alone and beside one that is escaped.
    for code in range(0x10000):
        text = f"a{chr(code)}b"
        assert printable(text) == text.translate(_ESCAPES), hex(code)
        assert printable("\n" + text) == ("\n" + text).translate(_ESCAPES), hex(code)


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/plain", b"over the 10-byte limit\nmore\n", "over the 10-byte limit"),
        (
            "text/xml; charset=utf-8",
            b"<s:Fault><faultcode>Client</faultcode><faultstring>no</faultstring>",
            "Client: no",
        ),
        (
            "application/json",
            b'{"errorCode": "UnauthorizedAccess", "errorMessage": "no token"}',
            "UnauthorizedAccess: no token",
        ),
        ("application/json", b'{"error": "invalid_client"}', "invalid_client"),
        ("application/json", b"[1, 2", ""),
        ("image/png", b"\x89PNG", ""),
    ],
    ids=["plain-text", "soap-fault", "rest-error", "oauth-error", "broken-json", "other"],
)
def test_refusal_reason_is_read_from_the_answer(content_type: str, body: bytes, reason: str) -> None:
    assert refusal_reason(content_type, body) == reason


@pytest.mark.parametrize(
    "client", [("127.0.0.1", 50312), ("::1", 8), ("a\nb", 1), ["10.0.0.1", 2], None, (["x"], 3), ("h",)]
)
def test_an_asgi_client_kept_by_its_address_reads_as_it_is_written(client: Any) -> None:
    # Kept per (host, port) for a keep-alive connection's next requests; what is not a key is written as ever.
    from uws_adapter.serving.access import _asgi_client, _client, _host_port

    written = _client(*_host_port(client))
    assert _asgi_client(client) == _asgi_client(client) == written


# Access lines on the receiver, in process, on both servers ---------------------------------------


class Served:
    def __init__(self, tmp_path: Path, server: str, **options: Any) -> None:
        self.store = Store(tmp_path / "callbacks.db")
        self.receiver = Receiver(
            self.store, username=LISTENER_USER, password=LISTENER_PASSWORD, max_body=4096, **options
        )
        if server == "waitress":
            served = ServedApp(AccessLog(self.receiver, "receiver"), max_body=self.receiver.max_body)
            served.start()
            self.port = served.address[1]
            self._stop: Callable[[], None] = served.stop
        else:
            asgi = AsgiAccessLog(AsyncReceiver(self.receiver), "receiver")
            running = AsgiServer(asgi, **{**server_config(), **uvicorn_options(ConnectionLimits())})
            self.port = running.port
            self._stop = running.close

    def close(self) -> None:
        self._stop()
        self.receiver.close()
        self.store.close()


@pytest.fixture(params=["waitress", "uvicorn"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    running = Served(tmp_path, request.param)
    yield running
    running.close()


def test_receiver_logs_one_access_line_per_request_with_reasons(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uws_adapter")
    xml = {"Content_Type": "text/xml; charset=utf-8"}
    answers = [
        exchange(served.port, "GET", "/health?token=Query-Token-123"),
        exchange(served.port, "POST", "/callbacks", callback(), **xml),
        exchange(served.port, "POST", "/callbacks", callback(password="not-the-password"), **xml),
        exchange(served.port, "POST", "/callbacks", b"<CallbackRequest>", **xml),
        exchange(served.port, "POST", "/callbacks", b"x", Content_Type="image/png"),
        exchange(served.port, "POST", "/callbacks", Content_Length="99999", **xml),
        exchange(served.port, "GET", "/a%0Ab"),
    ]
    assert [status for status, _ in answers] == [200, 200, 401, 400, 415, 413, 405]
    wait_until(lambda: len(access_records(caplog, "receiver")) >= len(answers), PATIENCE, "the access lines")
    lines = {r.status: r for r in access_records(caplog, "receiver")}  # type: ignore[attr-defined]
    assert len(access_records(caplog, "receiver")) == len(answers)
    for status, record in lines.items():
        entry = fields(record)
        assert entry["status"] == status
        assert entry["client"].startswith("127.0.0.1:")
        assert entry["bytes"] > 0
        assert isinstance(entry["duration_ms"], float)
        assert record.levelno == logging.INFO
    assert (lines[200].method, lines[200].path) == ("POST", "/callbacks")  # type: ignore[attr-defined]
    assert "reason" not in fields(lines[200])
    assert lines[401].reason == "wrong callback username or password"  # type: ignore[attr-defined]
    assert lines[400].reason.startswith("callback: ")  # type: ignore[attr-defined]
    assert lines[415].reason == "send text/xml (UWS) or application/json (REST)"  # type: ignore[attr-defined]
    # waitress refuses it itself (AccessErrorTask), uvicorn through the receiver: each says why.
    assert lines[413].reason in ("exceeds max_body of 4096", "over the 4096-byte limit")  # type: ignore[attr-defined]
    assert lines[405].path == "/a\\nb"  # type: ignore[attr-defined]
    assert '"POST /callbacks" 401 ' in lines[401].getMessage()
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "Query-Token-123" not in everything
    assert LISTENER_PASSWORD not in everything
    assert "not-the-password" not in everything
    assert "refused callback 'req-log-1': wrong username or password" in everything


def test_waitress_refusals_before_the_application_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # (uvicorn answers such requests itself, and logs them on uvicorn.error.)
    caplog.set_level(logging.INFO, logger="uws_adapter")
    served = Served(tmp_path, "waitress")
    try:
        smuggled = (
            b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        assert raw_exchange(served.port, smuggled).startswith(b"HTTP/1.1 400 ")
        wait_until(lambda: access_records(caplog, "receiver"), PATIENCE, "the access line")
    finally:
        served.close()
    [record] = access_records(caplog, "receiver")
    assert record.status == 400  # type: ignore[attr-defined]
    assert "Content-Length and Transfer-Encoding together" in record.reason  # type: ignore[attr-defined]


def test_handler_failures_and_retries_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The bridge's relay to the legacy listener is such a handler: each failed relay is one of these.
    caplog.set_level(logging.DEBUG, logger="uws_adapter.receiver")
    runs: List[str] = []

    def flaky(event: Any) -> None:
        runs.append(event.callback.request_id)
        if len(runs) == 1:
            raise ConnectionError("the legacy listener is down")

    served = Served(tmp_path, "waitress", handlers={"relay": flaky}, handler_backoff=0.01)
    try:
        assert exchange(served.port, "POST", "/", callback(), Content_Type="text/xml")[0] == 200
        wait_until(lambda: any("done on event" in r.getMessage() for r in caplog.records), PATIENCE, "the retry")
    finally:
        served.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "uws_adapter.receiver"]
    [failed] = [m for m in messages if "failed on event" in m]
    assert failed.startswith("handler relay failed on event 1 (request 'req-log-1', attempt 1), retry in ")
    assert failed.endswith("ConnectionError: the legacy listener is down")
    assert "handler relay done on event 1 (request 'req-log-1', attempt 2)" in messages


# The command line's services: options, formats, worker processes ---------------------------------


class Service:
    """A service of the command line on loopback, its stdout and stderr in files (which the secret
    scan then searches too)."""

    def __init__(self, tmp_path: Path, name: str, args: List[str], env: Optional[Dict[str, str]] = None) -> None:
        clean = {key: value for key, value in os.environ.items() if not key.startswith(("UWS_", "THINGSPACE_"))}
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uws_adapter", *args, "--port", "0"],
                stdout=out, stderr=err, env={**clean, **(env or {})}, start_new_session=True,
            )  # fmt: skip
        self.port = self._announced_port()

    def _announced_port(self) -> int:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            first, newline, _ = self.out.read_text().partition("\n")
            if newline:
                return int(first.partition("http://127.0.0.1:")[2].partition("/")[0])
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no announcement; stderr: {self.err.read_text()[-2000:]}")

    def lines(self) -> List[str]:
        return self.err.read_text().splitlines()

    def wait_for(self, condition: Callable[[List[str]], bool], what: str) -> List[str]:
        found: List[List[str]] = []

        def check() -> bool:
            found[:] = [self.lines()]
            return condition(found[0])

        try:
            wait_until(check, PATIENCE, what)
        except AssertionError:
            raise AssertionError(f"{what}; stderr so far: {self.err.read_text()[-3000:]}") from None
        return found[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(15)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: List[Service] = []

    def make(name: str, args: List[str], env: Optional[Dict[str, str]] = None) -> Service:
        service = Service(tmp_path, name, args, env)
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


def _json_access(lines: List[str], service: str) -> List[Dict[str, Any]]:
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    return [e for e in entries if e["logger"] == f"uws_adapter.{service}.access"]


RECEIVERS = {
    "waitress": ["--server", "waitress"],
    "uvicorn-2-workers": ["--server", "uvicorn", "--workers", "2"],
}


@pytest.mark.parametrize("server", list(RECEIVERS))
def test_receiver_command_logs_json_access_lines(start: Callable[..., Service], tmp_path: Path, server: str) -> None:
    receiver = start(
        server,
        ["receiver", *RECEIVERS[server], "--db", str(tmp_path / "cb.db"), "--log-format", "json", "--max-body", "4096"],
        {"UWS_CALLBACK_USERNAME": LISTENER_USER, "UWS_CALLBACK_PASSWORD": LISTENER_PASSWORD},
    )
    wait_until(lambda: healthy(receiver.port), PATIENCE, "the receiver to answer")
    xml = {"Content_Type": "text/xml"}
    assert exchange(receiver.port, "POST", "/", callback(), **xml)[0] == 200
    assert exchange(receiver.port, "POST", "/", callback(password="wrong-password"), **xml)[0] == 401
    assert exchange(receiver.port, "POST", "/", Content_Length="99999", **xml)[0] == 413

    # A line is written once its answer is sent, by the thread that served it: they may come in
    # any order, so wait for all of them (/health at least once, the callback, both refusals).
    def all_written(lines: List[str]) -> bool:
        statuses = [e["status"] for e in _json_access(lines, "receiver")]
        return statuses.count(200) >= 2 and {401, 413} <= set(statuses)

    lines = receiver.wait_for(all_written, "the access lines")
    access = _json_access(lines, "receiver")
    for entry in access:
        assert {
            "time",
            "level",
            "logger",
            "message",
            "method",
            "path",
            "status",
            "bytes",
            "duration_ms",
            "client",
        } <= set(entry)
    refused = {e["status"]: e for e in access if e["status"] >= 400}
    assert refused[401]["reason"] == "wrong callback username or password"
    assert refused[413]["reason"] in ("exceeds max_body of 4096", "over the 4096-byte limit")
    assert not any("uvicorn.access" in line for line in lines)  # ours replaces uvicorn's own
    assert LISTENER_PASSWORD not in receiver.err.read_text()


def test_bridge_command_logs_access_lines_faults_and_its_rest_documents_redacted(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    with Emulator(devices=generated_devices(1)) as carrier:  # the REST API the bridge carries calls out on
        bridge = start(
            "bridge",
            ["bridge", "--db", str(tmp_path / "b.db"), "--log-level", "debug"],
            {
                "UWS_BRIDGE_LEGACY_LOGIN": f"legacy:{LEGACY_PASSWORD}",
                "UWS_CALLBACK_USERNAME": LISTENER_USER, "UWS_CALLBACK_PASSWORD": LISTENER_PASSWORD,
                "THINGSPACE_CLIENT_ID": "ts-client", "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET,
                "UWS_USERNAME": "uws-user", "UWS_PASSWORD": PASSWORD, "UWS_ADAPTER_REST_URL": carrier.rest_url,
            },
        )  # fmt: skip
        legacy = f"http://127.0.0.1:{bridge.port}/api/v2"
        with pytest.raises(ServiceFault, match="InvalidCredentials"):
            client_for(legacy, username="legacy", password="wrong-legacy-pw").login()
        client_for(legacy, username="legacy", password=LEGACY_PASSWORD).login()  # the bridge logs in to REST
        refused = exchange(
            bridge.port, "POST", "/callbacks", callback(password="wrong-password"), Content_Type="text/xml"
        )
        assert refused[0] == 401
        lines = bridge.wait_for(
            lambda lines: sum(" uws_adapter.bridge.access " in line for line in lines) >= 3, "the bridge's access lines"
        )
    access = [line for line in lines if " uws_adapter.bridge.access " in line]
    faults = [line for line in access if '"POST /api/v2/SessionService.svc" 500 ' in line]
    assert len(faults) == 1
    assert "InvalidCredentials" in faults[0]
    assert any('"POST /api/v2/SessionService.svc" 200 ' in line for line in access), access
    assert any('"POST /callbacks" 401 ' in line and "wrong callback username or password" in line for line in access)
    wire = [line for line in lines if " DEBUG uws_adapter.wire " in line]
    assert any("sent POST " in line and "/oauth2/token" in line for line in wire), wire
    assert any('"password": "***"' in line for line in wire), wire
    text = bridge.err.read_text()
    for secret in (LEGACY_PASSWORD, "wrong-legacy-pw", LISTENER_PASSWORD, PASSWORD, CLIENT_SECRET):
        assert secret not in text


def test_emulator_command_logs_access_lines_and_callbacks_without_a_listener(start: Callable[..., Service]) -> None:
    emulator = start("emulator", ["emulator", "--devices", "3", "--log-level", "debug"])
    client = client_for(f"http://127.0.0.1:{emulator.port}/api/v2")  # the emulator's default login
    request_id = client.restore(select([line.device for line in generated_devices(3)]))  # the same devices
    status, _ = exchange(emulator.port, "GET", "/api/m2m/v1/devices/actions/list")  # no bearer token
    assert status == 401
    lines = emulator.wait_for(
        lambda lines: (
            any("no listener registered" in line for line in lines) and any(" 401 " in line for line in lines)
        ),
        "the emulator's lines",
    )
    access = [line for line in lines if " uws_adapter.emulator.access " in line]
    assert any('"POST /api/v2/SessionService.svc" 200 ' in line for line in access), access
    assert any('"POST /api/v2/CarrierService.svc" 200 ' in line for line in access), access
    assert any('"GET /api/m2m/v1/devices/actions/list" 401 ' in line for line in access), access
    [dropped] = [line for line in lines if "no listener registered" in line]
    assert f"request {request_id}: 3 CarrierService callback(s) not sent" in dropped
    assert PASSWORD not in emulator.err.read_text()


def test_an_unknown_log_level_is_refused_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uws_adapter", "receiver", "--log-level", "loud", "--allow-anonymous",
         "--db", str(tmp_path / "cb.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "uws-adapter: error: --log-level: 'loud' is not a level; use debug, info, warning, error"
    ]


# The wire debug logger ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["soap", "rest"])
def test_wire_logger_shows_the_documents_with_secrets_redacted(api: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="uws_adapter.wire")
    lines = generated_devices(2)
    with Emulator(devices=lines) as emulator:
        client: Any = client_for(emulator.base_url) if api == "soap" else rest_client_for(emulator.rest_url)
        client.restore(select([line.device for line in lines]))
        tokens = [client.token, getattr(client, "_bearer", None)]
    wire = [r for r in caplog.records if r.name == "uws_adapter.wire"]
    assert {r.direction for r in wire} == {"sent", "received"}  # type: ignore[attr-defined]
    text = "\n".join(r.getMessage() for r in wire)
    assert lines[0].device.identifiers[0].identifier in text  # the documents are there
    assert "***" in text
    for secret in [PASSWORD, CLIENT_SECRET, *[t for t in tokens if t]]:
        assert secret not in text
    if api == "soap":
        for element in ("Password", "SessionToken", "token"):
            assert f":{element}>***</" in text
    else:
        assert "'Authorization': '***'" in text


def test_wire_logger_masks_credentials_in_a_listener_url(caplog: pytest.LogCaptureFixture) -> None:
    # A listener URL may carry user:password@ (and a token in its query): the registration's body,
    # the listing's answer and a Location header show it by the one URL masker.
    caplog.set_level(logging.DEBUG, logger="uws_adapter.wire")
    with Emulator(devices=generated_devices(1)) as emulator:
        client = rest_client_for(emulator.rest_url)
        url = "https://listener-user:listener-pw-7@listener.example/cb?key=listener-key-7"
        client.register_callback(DEFAULT_ACCOUNT, "CarrierService", url, username="l", password="p")
        assert [listener.url for listener in client.callback_listeners(DEFAULT_ACCOUNT)] == [url]
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "uws_adapter.wire")
    assert '"url": "https://***@listener.example/cb?key=***"' in text
    assert "listener-pw-7" not in text
    assert "listener-key-7" not in text
    assert (
        masked_urls("see <a href='http://u:pw@h/'>http://h/x?q=1</a>")
        == "see <a href='http://***@h/'>http://h/x?q=***</a>"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("listener:pw-42@host.example/cb", "***@host.example/cb"),  # no scheme: refused, and quoted
        ("//listener:pw-42@host.example/cb", "***@host.example/cb"),
        ("http:/listener:pw-42@host.example", "***@host.example"),  # a mistyped scheme
        ("https://listener:pw/42@host.example/cb", "https://***@host.example/cb"),  # "/" typed in the password
        ("https://listener:pw?42@host.example/cb", "https://***@host.example/cb"),  # "?" typed in the password
        ("https://host.example/users/a@b", "https://host.example/users/a@b"),  # an "@" in a path: no password
        ("https://host.example/cb?mail=a@b", "https://host.example/cb?mail=***"),
    ],
)
def test_the_url_masker_masks_a_password_wherever_a_mistyped_url_puts_it(url: str, shown: str) -> None:
    # Scheme-less and mistyped URLs were quoted whole (password included) by the very checks that refuse them.
    assert masked_url(url, quoted=False) == shown
    if "pw" in url:  # a URL no check accepts: refused, the password not quoted
        with pytest.raises(InputError) as refused:
            check_url(url, "listener url")
        assert "pw" not in str(refused.value)


@pytest.mark.parametrize(
    "document",
    [
        b"<ses:Password>uws-password</ses:Password><x>1</x>",
        b"<a:SessionToken>tok-token-9</a:SessionToken><x>1</x>",
        b'{"password": "my-password-1", "x": 1}',
        b"<Password>MyPassword123 <!-- --></Password><x>1</x>",
    ],
    ids=["password-in-password", "token-in-token", "json", "with-a-comment"],
)
def test_a_secret_holding_its_own_name_is_redacted_whole(document: bytes) -> None:
    # The redaction of the wire log and of dead letters: the value ends at the end tag, not at the
    # next mention of the name (which once left "password" of "uws-password" in view).
    redacted = redact(document).decode()
    assert "***" in redacted
    assert "password" not in redacted.lower().replace("password>", "").replace('"password"', "")
    assert "token-9" not in redacted
    assert redacted.endswith(("<x>1</x>", '"x": 1}'))


def test_wire_logger_costs_nothing_when_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uws_adapter")
    with Emulator(devices=generated_devices(1)) as emulator:
        client_for(emulator.base_url).login()
    assert not [r for r in caplog.records if r.name == "uws_adapter.wire"]


def test_a_throttled_warning_is_one_line_a_minute_with_the_count_since(caplog: pytest.LogCaptureFixture) -> None:
    # The one rate limit for warnings an attacker can repeat (refusals, letters not kept, rotations).
    now = [100.0]
    throttled = Throttled(logging.getLogger("uws_adapter.test"), "refused (%s): %d", every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "uws_adapter.test"):
        throttled.note("first")
        for _ in range(5):
            now[0] += 10.0
            throttled.note("again", count=2)
        now[0] += 10.0  # 60 s after the first line
        throttled.note("late")
    assert [r.getMessage() for r in caplog.records] == ["refused (first): 1", "refused (late): 11"]
