"""One HTTP edge (issue 18 item 4): the same request gets the same answer from the receiver (waitress
and uvicorn), the bridge (its callback path and its SOAP services) and the emulator (REST and SOAP):
a bad Content-Length, a body over the cap, a compressed body, a charset that is not a text encoding,
a request target that is not a path. Status lines come from http.HTTPStatus."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Tuple

import pytest
from servers import AsgiServer, WaitressServer

from uws_adapter import CallbackRequest, Emulator, ReportedDevice, render_callback
from uws_adapter.edge import Answer, BodyRules, charset_of, screen, target_refusal
from uws_adapter.receiver.app import MAX_BYTES, Receiver, server_options
from uws_adapter.receiver.asgi import AsyncReceiver, server_config
from uws_adapter.store.sqlite import Store

#: (name, port, path) of every POST endpoint.
Endpoint = Tuple[str, int, str]


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Tuple[int, str]]]:
    folder: Path = tmp_path_factory.mktemp("edge")
    with contextlib.ExitStack() as stack:
        store = Store(folder / "w.db")
        stack.callback(store.close)
        wsgi = Receiver(store, allow_anonymous=True)
        stack.callback(wsgi.close)
        waitress = WaitressServer(wsgi, **server_options(wsgi))
        stack.callback(waitress.close)
        store2 = Store(folder / "u.db")
        stack.callback(store2.close)
        asgi = AsyncReceiver(Receiver(store2, allow_anonymous=True))
        uvicorn = AsgiServer(asgi, **server_config(asgi))
        stack.callback(uvicorn.close)
        emulator = stack.enter_context(Emulator())
        port = int(emulator.root_url.rsplit(":", 1)[1])
        yield {
            "receiver-waitress": (waitress.port, "/callbacks"),
            "receiver-uvicorn": (uvicorn.port, "/callbacks"),
            "emulator-soap": (port, "/api/v2/CarrierService.svc"),
            "emulator-rest": (port, "/api/m2m/v1/devices/actions/suspend"),
        }


def exchange(port: int, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n" + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.partition(b"\r\n")[0]


def post(path: str, *headers: str, body: bytes = b"<a/>") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n").encode()


CASES: Dict[str, Tuple[Callable[[str], bytes], bytes, int]] = {
    "malformed-content-length": (lambda p: post(p, "Content-Type: text/xml", "Content-Length: 4x"), b"<a/>", 400),
    "gzip": (lambda p: post(p, "Content-Type: text/xml", "Content-Encoding: gzip"), b"<a/>", 415),
    "charset-idna": (lambda p: post(p, "Content-Type: text/xml; charset=idna"), b"<a/>", 400),
    "charset-undefined": (lambda p: post(p, "Content-Type: text/xml; charset=undefined"), b"<a/>", 400),
    "double-slash": (lambda p: post("/" + p, "Content-Type: text/xml"), b"<a/>", 400),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("service", ["receiver-waitress", "receiver-uvicorn", "emulator-soap", "emulator-rest"])
def test_the_same_request_gets_the_same_answer_everywhere(
    endpoints: Dict[str, Tuple[int, str]], service: str, case: str
) -> None:
    port, path = endpoints[service]
    make, body, status = CASES[case]
    line = exchange(port, make(path), body)
    assert line.split(b" ")[1] == str(status).encode(), line


@pytest.mark.parametrize("service", ["receiver-waitress", "receiver-uvicorn", "emulator-rest"])
def test_get_double_slash_metrics_is_refused_not_served(endpoints: Dict[str, Tuple[int, str]], service: str) -> None:
    port, _ = endpoints[service]
    assert exchange(port, b"GET //metrics HTTP/1.1\r\nHost: x\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    assert exchange(port, b"GET //healthz HTTP/1.1\r\nHost: x\r\n").startswith(b"HTTP/1.1 400 Bad Request")


def test_the_screen_gives_each_refusal_its_status_and_reason() -> None:
    rules = BodyRules(100, ("text/xml",), "send text/xml", refused_types=(("application/soap+xml", "no 1.2"),))
    assert screen("POST", "4", None, "text/xml; charset=UTF-8", rules) == (4, "text/xml")
    assert screen("POST", None, None, "text/xml", rules, coding="chunked") == (-1, "text/xml")  # read within the cap
    refused = screen("POST", None, None, "text/xml", rules, coding="gzip, chunked")
    assert isinstance(refused, Answer)
    assert (refused.status, refused.close) == (501, True)
    for length, encoding, content_type, status, words in [
        (None, None, "text/xml", 411, "required"),
        ("-1", None, "text/xml", 400, "not a number"),
        ("1e3", None, "text/xml", 400, "not a number"),
        ("101", None, "text/xml", 413, "100-byte"),
        ("4", "gzip", "text/xml", 415, "identity"),
        ("4", None, 'text/xml; charset="utf-7"', 400, "'utf-7' is not a text encoding"),
        ("4", None, "application/soap+xml", 415, "no 1.2"),
        ("4", None, "application/json", 415, "send text/xml"),
    ]:
        answer = screen("POST", length, encoding, content_type, rules)
        assert isinstance(answer, Answer)
        assert (answer.status, answer.close) == (status, True)
        assert words in answer.body.decode()
    assert screen("POST", None, None, None, BodyRules(10, length_required=False)) == (0, "")
    assert charset_of('text/xml; a=b; Charset="x y"') == "x y"
    assert target_refusal("/a//b") is None
    assert target_refusal("//a") is not None
    assert target_refusal("http://h/a") is not None


@pytest.mark.parametrize("status", [200, 400, 401, 404, 405, 408, 409, 411, 413, 415, 422, 429, 431, 500, 503])
def test_every_status_has_its_standard_line(status: int) -> None:
    seen: Dict[str, Any] = {}
    Answer.text(status, "x").send(
        lambda line, headers: seen.update(line=line, headers=headers), {"REQUEST_METHOD": "GET"}
    )
    assert seen["line"].split(" ", 1)[0] == str(status)
    assert len(seen["line"]) > 4


def _chunked(body: bytes, size: int) -> bytes:
    return b"".join(
        b"%x\r\n%s\r\n" % (len(body[at : at + size]), body[at : at + size]) for at in range(0, len(body), size)
    )


@pytest.mark.parametrize("service", ["receiver-waitress", "receiver-uvicorn"])
def test_a_chunked_callback_is_read_whole_and_stored_on_both_servers(
    endpoints: Dict[str, Tuple[int, str]], service: str
) -> None:
    # uvicorn answered 411 where waitress (which de-chunks) stored it: one screen, two answers.
    port, path = endpoints[service]
    body = render_callback(
        CallbackRequest(f"chunked-{service}", (ReportedDevice("IMEI", "350000000000001"),), service="CarrierService",
                        action="Suspend", status="Success")
    )  # fmt: skip
    head = post(path, "Content-Type: text/xml", "Transfer-Encoding: chunked")
    assert exchange(port, head, _chunked(body, 100) + b"0\r\n\r\n") == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize("service", ["receiver-waitress", "receiver-uvicorn"])
def test_a_chunked_body_over_the_cap_gets_413_on_both_servers(
    endpoints: Dict[str, Tuple[int, str]], service: str
) -> None:
    port, path = endpoints[service]
    over = _chunked(b"x" * (MAX_BYTES + 1), 64 * 1024) + b"0\r\n\r\n"
    head = post(path, "Content-Type: text/xml", "Transfer-Encoding: chunked")
    assert exchange(port, head, over).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("service", ["receiver-waitress", "receiver-uvicorn"])
def test_a_transfer_coding_other_than_chunked_gets_501_on_both_servers(
    endpoints: Dict[str, Tuple[int, str]], service: str
) -> None:
    # uvicorn's httptools lets "gzip, chunked" through, and the receiver answered 411 where waitress says 501.
    port, path = endpoints[service]
    head = post(path, "Content-Type: text/xml", "Transfer-Encoding: gzip, chunked")
    assert exchange(port, head, b"4\r\n<a/>\r\n0\r\n\r\n").startswith(b"HTTP/1.1 501")
