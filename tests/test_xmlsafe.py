"""The hardened XML path against a generated hostile corpus, with a loopback canary listening."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from typing import Callable, Dict, Iterator, List, Set, Tuple, Union

import pytest
from hostile import FAMILIES
from servers import wait_until

from uws_adapter import CallbackParseError, DocumentError, parse_callback, parse_rest_callback
from uws_adapter.xmlsafe import TooManyDocuments, imported_documents, parse_untrusted

NS = 'xmlns="http://nphase.com/unifiedwebservice/v2"'
VALID = f"<CallbackRequest {NS}><RequestId>r1</RequestId></CallbackRequest>"


class Canary:
    """A loopback TCP listener that counts every connection made to it (but its own, see settled)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._own: Set[int] = set()  # client ports of settled()'s connections, not counted
        self._taken: Set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            if peer[1] not in self._own:
                self.connections += 1
            self._taken.add(peer[1])
            conn.close()

    def settled(self) -> int:
        """:attr:`connections` once every connection made before the call has been taken: they are
        taken in order, so a connection of the canary's own is taken after all of them."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as own:
            own.bind(("127.0.0.1", 0))
            port = own.getsockname()[1]
            self._own.add(port)
            own.connect(("127.0.0.1", self.port))
        wait_until(lambda: port in self._taken, 10, "the canary to take a connection")
        return self.connections

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


def hostile_corpus(port: int) -> Dict[str, Union[bytes, str]]:
    url = f"http://127.0.0.1:{port}"
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    return {
        "xxe-file": f'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><CallbackRequest {NS}><RequestId>&x;</RequestId></CallbackRequest>',
        "xxe-loopback-url": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}/xxe">]><CallbackRequest {NS}><RequestId>&x;</RequestId></CallbackRequest>',
        "parameter-entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><CallbackRequest {NS}/>',
        "external-dtd": f'<!DOCTYPE CallbackRequest SYSTEM "{url}/evil.dtd">{VALID}',
        "billion-laughs": f'<!DOCTYPE r [<!ENTITY l0 "lol">{laughs}]><CallbackRequest {NS}><RequestId>&l9;</RequestId></CallbackRequest>',
        "quadratic-blowup": f'<!DOCTYPE r [<!ENTITY a "{"x" * 50_000}">]><CallbackRequest {NS}><RequestId>{"&a;" * 50_000}</RequestId></CallbackRequest>',
        "doctype-only": f"<!DOCTYPE CallbackRequest>{VALID}",
        "doctype-in-soap": f'<!DOCTYPE s:Envelope [<!ENTITY x "y">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{VALID}</s:Body></s:Envelope>',
        "xinclude": f'<CallbackRequest {NS} xmlns:xi="http://www.w3.org/2001/XInclude"><RequestId>r</RequestId><xi:include href="{url}/x"/></CallbackRequest>',
        "deep-nesting": "<a>" * 100_000 + "</a>" * 100_000,
        "deep-under-libxml2-limit": f"<CallbackRequest {NS}><RequestId>r</RequestId>"
        + "<x>" * 200
        + "</x>" * 200
        + "</CallbackRequest>",
        "oversized-text": f"<CallbackRequest {NS}><RequestId>r</RequestId><Comment>{'x' * (2 * 1024 * 1024)}</Comment></CallbackRequest>",
        "invalid-utf8": f"<CallbackRequest {NS}><RequestId>".encode()
        + b"\xc3\x28\xff"
        + b"</RequestId></CallbackRequest>",
        "nul-bytes": f"<CallbackRequest {NS}><RequestId>r\x00</RequestId></CallbackRequest>".encode(),
        "empty-body": b"",
        "whitespace-only": b"  \n\t ",
        "json-given-as-xml": b'{"requestId": "r1", "status": "Success"}',
        "unknown-encoding": f'<?xml version="1.0" encoding="x-no-such-codec"?>{VALID}'.encode(),
        "unterminated": VALID[:-5].encode(),
    }


@contextlib.contextmanager
def hang_guard(seconds: int = 60) -> Iterator[None]:
    """Turn a parse that hangs (a backtracking or quadratic check) into a failure instead of a stuck
    run. No time is asserted: a loaded machine is slow, a hang is unbounded."""

    def too_slow(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s: not linear")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run_all(parse: Callable[[Union[bytes, str]], object], corpus: Dict[str, Union[bytes, str]]) -> None:
    for name, document in corpus.items():
        with hang_guard():
            try:
                parse(document)
            except CallbackParseError:
                continue
        pytest.fail(f"{name}: accepted")


def test_hostile_xml_is_refused_quickly_and_offline(canary: Canary) -> None:
    _run_all(parse_callback, hostile_corpus(canary.port))
    assert canary.settled() == 0


def test_hostile_xml_is_refused_in_repair_mode_too(canary: Canary) -> None:
    _run_all(lambda d: parse_callback(d, repair=True), hostile_corpus(canary.port))
    assert canary.settled() == 0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_worst_case_families_are_refused_in_linear_time(family: str) -> None:
    # 256 KiB: a backtracking check takes hours here (each <?a?> doubled the old one's time), a
    # quadratic one minutes; the alarm turns such a hang into a failure instead of a stuck run.
    media_type, make = FAMILIES[family]
    document = make(256 * 1024)
    parse = parse_rest_callback if media_type == "application/json" else parse_callback
    with hang_guard(60):
        with pytest.raises(CallbackParseError):
            parse(document)
        if media_type == "text/xml":
            with pytest.raises(CallbackParseError):
                parse_callback(document, repair=True)


def test_xml_given_as_json_and_hostile_json() -> None:
    corpus: Dict[str, Union[bytes, str]] = {
        "xml-given-as-json": VALID,
        "deep-json": "[" * 100_000 + "]" * 100_000,
        "deep-json-objects": '{"a":' * 50_000 + "1" + "}" * 50_000,
        "oversized-json": '{"requestId": "' + "x" * (2 * 1024 * 1024) + '"}',
        "nul-json": b'{"requestId": "r\x00"',
        "empty": b"",
        "invalid-utf8-json": b'{"requestId": "\xc3\x28"}',
    }
    _run_all(parse_rest_callback, corpus)


def test_the_canary_would_notice_a_connection(canary: Canary) -> None:
    before = canary.settled()
    with socket.create_connection(("127.0.0.1", canary.port), timeout=2):
        pass
    assert canary.settled() == before + 1
    canary.connections = before


def test_size_and_depth_caps_are_configurable() -> None:
    assert parse_untrusted(VALID, max_bytes=len(VALID)).tag.endswith("CallbackRequest")
    with pytest.raises(DocumentError, match="over the 10-byte limit"):
        parse_untrusted(VALID, max_bytes=10)
    with pytest.raises(DocumentError, match="deeper than 1 levels"):
        parse_untrusted(VALID, max_depth=1)


def test_safe_under_threads() -> None:
    documents = [f"<CallbackRequest {NS}><RequestId>r{n}</RequestId></CallbackRequest>" for n in range(200)]
    errors: List[BaseException] = []
    results: Dict[int, List[str]] = {}

    def work(worker: int) -> None:
        try:
            results[worker] = [parse_callback(d).request_id for d in documents]
        except BaseException as exc:  # collected and re-checked in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(ids == [f"r{n}" for n in range(200)] for ids in results.values())


#: A graph of imports: a cycle (b <-> c), a shared import (d from b and c) and a self-import (e).
IMPORTS = {"a": ["b", "c"], "b": ["c", "d", "a"], "c": ["b", "d"], "d": ["e"], "e": ["e"]}


def test_imported_documents_reads_each_once_breadth_first() -> None:
    reads: List[str] = []

    def read(location: str) -> Tuple[str, List[str]]:
        reads.append(location)
        return location.upper(), IMPORTS[location]

    assert imported_documents("a", read) == {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}
    assert reads == ["a", "b", "c", "d", "e"]


def test_imported_documents_stops_before_reading_past_the_cap() -> None:
    reads: List[str] = []

    def read(location: str) -> Tuple[str, List[str]]:
        reads.append(location)
        return location, IMPORTS[location]

    assert len(imported_documents("a", read, max_documents=5)) == 5
    reads.clear()
    with pytest.raises(TooManyDocuments, match="imports more than 4 documents"):
        imported_documents("a", read, max_documents=4)
    assert reads == ["a", "b", "c", "d"]


#: Malformed documents whose libxml2 message quoted a piece of them (the piece is "Cr3t").
QUOTING = {
    "undefined-entity": b"<a>Sup&Cr3t;</a>",
    "attribute-without-value": b"<a>Sup<x Cr3t</a>",
    "tag-mismatch": b"<a>Sup</Cr3t></a>",
    "unclosed-start-tag": b"<a><Cr3t",
    "unfinished-element": b"<a><Cr3t>",
    "attribute-twice": b"<a Cr3t='1' Cr3t='2'/>",
    "undeclared-prefix": b"<a><Cr3t:b/></a>",
    "empty-namespace": b"<a xmlns:Cr3t=''/>",
    "unknown-version": b"<?xml version='Cr3t'?><a/>",
}


@pytest.mark.parametrize("document", QUOTING.values(), ids=QUOTING.keys())
@pytest.mark.parametrize("counted", [False, True], ids=["whole", "counted"])
def test_a_syntax_error_says_what_and_where_but_quotes_nothing_of_the_document(document: bytes, counted: bool) -> None:
    # In a credential's text what libxml2 quoted was a piece of the password (see
    # tests/receiver/test_receiver.py), which then reached answers, logs and dead letters. Counted:
    # more "<" than the node bound (processing instructions, which are no nodes), so that the
    # document is parsed in pieces.
    max_nodes = document.count(b"<") if counted else None
    with pytest.raises(DocumentError, match=r"^document: not well-formed XML") as refused:
        parse_untrusted(document + b"<?p?>" * 3 if counted else document, max_nodes=max_nodes)
    assert "Cr3t" not in str(refused.value)
    assert "cr3t" not in str(refused.value).lower()


def test_a_syntax_error_names_the_line_and_column_and_the_usual_slip() -> None:
    with pytest.raises(DocumentError) as refused:
        parse_untrusted(b"<a>\n<b>right&pw;</b></a>")
    assert str(refused.value) == (
        "document: not well-formed XML at line 2, column 13: a reference to an undefined entity "
        "(an & not written &amp;?)"
    )
    assert refused.value.line == 2
