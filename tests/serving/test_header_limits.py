"""Bounded request headers on every server we run (the receiver on waitress and on uvicorn with one
and two workers, the bridge, the emulator): an endless stream of header lines, or one endless header
value, is answered 431 and closed after the 64 KiB the limit allows, the server's memory stays flat,
and legitimate callbacks sent meanwhile are all acknowledged."""

from __future__ import annotations

import os
import threading
from typing import Callable, Dict, List, Tuple

import pytest
from test_connections import (
    SHARED,
    Service,
    callback_body,
    connect,
    fresh,
    post_callback,
    read_answer,
    send_raw,
    shared,
    until,
)

from uws_adapter.errors import InputError
from uws_adapter.serving.limits import ConnectionLimits

__all__ = ["shared"]  # the fixture, from test_connections

#: What an attacker offers per connection: far more than any server may keep.
OFFERED = 1 << 30
#: How much a server may grow while refusing (its own buffers, the interpreter's caches).
GROWTH = 48 * 1024 * 1024
LINES = (b"X-Line: " + b"a" * 56 + b"\r\n") * 1024  # 64 KiB of short header lines
VALUE = b"a" * 65536  # 64 KiB more of one header value


def offer_endless_headers(port: int, shape: str) -> Tuple[int, bytes]:
    """Offer up to 1 GiB of headers; return (bytes the server let us send, its answer)."""
    sock = connect(port)
    sock.sendall(b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\n")
    if shape == "one-value":
        sock.sendall(b"X-Endless: ")
    chunk = LINES if shape == "many-lines" else VALUE
    sent = 0
    try:
        while sent < OFFERED:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # the server answered and closed: what it had not read is reset
        pass
    sock.settimeout(5)
    answer, _ = read_answer(sock)
    sock.close()
    return sent, answer


def resident_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (uvicorn's workers), from /proc."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Flood:
    """Two connections offering endless headers, again and again, until stopped."""

    def __init__(self, port: int, shape: str) -> None:
        self.port, self.shape = port, shape
        self.answers: List[bytes] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sock = connect(self.port)
            sock.settimeout(5)
            try:
                sock.sendall(
                    b"POST /callbacks HTTP/1.1\r\nHost: r\r\n" + (b"X-E: " if self.shape == "one-value" else b"")
                )
                chunk = LINES if self.shape == "many-lines" else VALUE
                while not self._stop.is_set():
                    sock.sendall(chunk)
            except OSError:
                pass
            finally:
                sock.close()
            self.answers.append(b"")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


@pytest.mark.parametrize("shape", ["many-lines", "one-value"])
@pytest.mark.parametrize("name", SHARED)
def test_endless_headers_are_refused_431_with_memory_flat_and_callbacks_served(
    shared: Callable[[str], Service], name: str, shape: str
) -> None:
    service = shared(name)
    stored, first = service.stored(), fresh(11)
    assert post_callback(service.port, first) == 200  # warm: first-request allocations are not growth
    before = resident_bytes(service.process.pid)
    sent, answer = offer_endless_headers(service.port, shape)
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.0 431")), answer[:200]
    # The server closed long before 1 GiB: what it read is bounded by the limit and socket buffers.
    assert sent < 64 * 1024 * 1024, f"{sent} bytes were read before the refusal"
    flood = Flood(service.port, shape)
    try:
        statuses = [post_callback(service.port, n) for n in range(first + 1, first + 11)]
    finally:
        flood.stop()
    assert statuses == [200] * 10
    assert flood.answers, "the flood never got to send"
    grown = resident_bytes(service.process.pid) - before
    assert grown < GROWTH, f"{name} grew by {grown / 2**20:.1f} MiB"
    until(lambda: service.stored() == stored + 11, "every acknowledged callback is in the store")


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize(
    ("what", "head"),
    [
        ("too-many-fields", b"".join(b"X-F%d: v\r\n" % n for n in range(101))),
        ("long-line", b"X-Long: " + b"a" * 9000 + b"\r\n"),
    ],
)
def test_too_many_header_fields_or_a_long_line_get_431_and_close(
    shared: Callable[[str], Service], name: str, what: str, head: bytes
) -> None:
    service = shared(name)
    stored, body = service.stored(), callback_body(fresh())
    answer, closed = send_raw(
        service.port,
        b"POST /callbacks HTTP/1.1\r\nHost: receiver\r\nContent-Type: text/xml\r\n"
        + head
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.0 431")), answer[:200]
    assert closed
    assert service.stored() == stored


def request_at_the_limits(body: bytes, fields: int, line: int) -> bytes:
    """A callback POST with exactly ``fields`` header fields, one of them a line of ``line`` bytes
    (its CRLF not counted, as "8 KiB a line" is read)."""
    fixed = [b"Host: receiver", b"Content-Type: text/xml", b"Content-Length: %d" % len(body), b"Connection: close"]
    extra = [b"X-F%03d: v" % n for n in range(fields - len(fixed))]
    extra[0] = extra[0] + b"v" * (line - len(extra[0]))
    return b"POST /callbacks HTTP/1.1\r\n" + b"".join(field + b"\r\n" for field in fixed + extra) + b"\r\n" + body


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize(
    ("fields", "line", "status"),
    [(100, 100, b"200"), (10, 8192, b"200"), (101, 100, b"431"), (10, 8193, b"431")],
    ids=["100-fields", "8192-byte-line", "101-fields", "8193-byte-line"],
)
def test_the_header_limits_are_exactly_the_documented_ones_on_every_server(
    shared: Callable[[str], Service], name: str, fields: int, line: int, status: bytes
) -> None:
    # waitress counted the request line and the blank line as fields, and a line's CR as a byte:
    # 99 fields or an 8,192-byte line got 431 there, and 200 on uvicorn.
    service = shared(name)
    answer, _ = send_raw(service.port, request_at_the_limits(callback_body(fresh()), fields, line))
    assert answer.startswith((b"HTTP/1.1 " + status, b"HTTP/1.0 " + status)), answer[:300]


def test_the_emulator_bounds_headers_too() -> None:
    from uws_adapter.emulator.http import Emulator

    with Emulator() as emulator:
        port = int(emulator.root_url.rsplit(":", 1)[1].split("/")[0])
        sent, answer = offer_endless_headers(port, "one-value")
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.0 431")), answer[:200]
    assert sent < 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_header_bytes", 100), ("max_header_count", 0), ("max_header_line", 10)],
    ids=["tiny-header-total", "no-fields", "tiny-line"],
)
def test_header_limits_out_of_range_are_refused_naming_the_limit(option: str, value: int) -> None:
    with pytest.raises(InputError, match=option):
        ConnectionLimits(**{option: value})  # type: ignore[arg-type]
