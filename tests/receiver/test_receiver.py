"""The receiver behind real servers on loopback (waitress for the WSGI application, uvicorn for
the asyncio one), storing into real SQLite files: every test runs against both."""

from __future__ import annotations

import http.client
import json
import random
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from servers import AsgiServer, WaitressServer, wait_until
from test_xmlsafe import Canary, hostile_corpus

from uws_adapter import CallbackRequest, ReportedDevice, RestoreResult, render_callback, render_rest_callback
from uws_adapter.receiver.app import Receiver, redact, server_options
from uws_adapter.receiver.asgi import AsyncReceiver, server_config
from uws_adapter.store.sqlite import Store, StoredEvent

SECRET = "Sup3r-S3cret-pw"


class Running:
    def __init__(self, store: Store, app: Receiver, server: str) -> None:
        self.store, self.app = store, app
        if server == "waitress":
            wsgi = WaitressServer(app, **server_options(app, threads=16))
            self.port = wsgi.port
            self._stop = wsgi.close
            return
        asgi = AsyncReceiver(app)
        running = AsgiServer(asgi, **server_config(asgi))
        self.port = running.port
        self._stop = running.close

    def post(self, body: bytes, content_type: str = "text/xml; charset=utf-8", **headers: str) -> Tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            if len(body) > self.app.max_body:
                # The receiver answers 413 and closes without reading: send the headers only, as a
                # careful client would, instead of racing the close with 2 MiB of body.
                connection.putrequest("POST", "/callbacks")
                for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}.items():
                    connection.putheader(name, value)
                connection.endheaders()
            else:
                connection.request("POST", "/callbacks", body=body, headers={"Content-Type": content_type, **headers})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def close(self) -> None:
        self._stop()
        self.app.close()
        self.store.close()


@pytest.fixture(params=["waitress", "uvicorn"])
def start(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Running]]:
    running: List[Running] = []

    def make(**options: Any) -> Running:
        store = Store(tmp_path / "callbacks.db")
        options.setdefault("allow_anonymous", "username" not in options)
        server = Running(store, Receiver(store, **options), request.param)
        running.append(server)
        return server

    yield make
    for server in running:
        server.close()


def callback(n: int = 0, count: int = 1, password: Optional[str] = None, status: str = "Success") -> CallbackRequest:
    return CallbackRequest(
        request_id="req-1",
        devices=(
            ReportedDevice("IMEI", f"{350000000000000 + n}"),
            ReportedDevice("ICCID", f"{89148000000000000000 + n}"),
        ),
        username="listener" if password else None,
        password=password,
        service="CarrierService",
        action="Restore",
        status=status,
        callback_count=count,
        max_callback_threshold=4,
        restore=RestoreResult(status == "Success"),
    )


def test_soap_callback_is_stored_then_acknowledged_with_a_soap_envelope(start: Callable[..., Running]) -> None:
    receiver = start()
    status, body = receiver.post(render_callback(callback()))
    assert status == 200
    assert body.startswith(b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>')
    [event] = receiver.store.events()
    assert (event.callback.request_id, event.callback.action, event.attempts) == ("req-1", "Restore", 1)


def test_rest_callback_gets_a_2xx(start: Callable[..., Running]) -> None:
    receiver = start()
    status, body = receiver.post(render_rest_callback(callback()), "application/json")
    assert (status, json.loads(body)) == (200, {"stored": True})
    assert receiver.store.counts()["events"] == 1


def test_resends_make_one_event_and_a_changed_resend_is_flagged(start: Callable[..., Running]) -> None:
    receiver = start()
    for count in (1, 2, 3):
        assert receiver.post(render_callback(callback(count=count)))[0] == 200
    assert receiver.post(render_callback(callback(count=4, status="Failed")))[0] == 200
    [event] = receiver.store.events()
    assert (event.attempts, event.differs) == (4, True)


def test_authentication_with_rotation(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET, previous_password="old-pw")
    assert receiver.post(render_callback(callback(0, password="wrong")))[0] == 401
    assert receiver.post(render_callback(callback(1, password=None)))[0] == 401
    assert receiver.store.counts() == {"events": 0, "attempts": 0, "dead_letters": 0, "requests": 0, "handler_queue": 0}
    assert receiver.post(render_callback(callback(2, password=SECRET)))[0] == 200
    assert receiver.post(render_rest_callback(callback(3, password="old-pw")), "application/json")[0] == 200
    assert receiver.store.counts()["events"] == 2


@pytest.mark.parametrize(
    ("content_type", "headers", "status"),
    [
        ("text/plain", {}, 415),
        ("text/xml", {"Content-Encoding": "gzip"}, 415),
        ("application/json", {"Content-Encoding": "br"}, 415),
    ],
    ids=["text-plain", "gzip", "brotli"],
)
def test_types_and_encodings(
    start: Callable[..., Running], content_type: str, headers: Dict[str, str], status: int
) -> None:
    receiver = start()
    assert receiver.post(render_callback(callback()), content_type, **headers)[0] == status
    assert receiver.store.counts()["events"] == 0


def test_oversized_body_is_refused_before_it_is_read(start: Callable[..., Running]) -> None:
    receiver = start(max_body=10_000)
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    connection.putrequest("POST", "/callbacks")
    connection.putheader("Content-Type", "text/xml")
    connection.putheader("Content-Length", str(50 * 1024 * 1024))
    connection.endheaders()  # no body at all: the answer must come anyway
    response = connection.getresponse()
    assert response.status == 413
    connection.close()


def test_malformed_documents_are_400_and_kept_redacted(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET)
    broken = render_callback(callback(password=SECRET)).replace(b"</RequestId>", b"</RequestId")
    status, reason = receiver.post(broken)
    assert status == 400
    assert b"not well-formed" in reason
    body = receiver.store._reader().execute("SELECT body FROM dead_letters").fetchone()[0]
    assert SECRET.encode() not in body
    assert b"<Password>***</Password>" in body
    assert receiver.store.counts()["events"] == 0


@pytest.mark.parametrize(
    "written",
    ["Sup3r&Cr3t;pw", "Sup3r<Cr3t pw", "Sup3r<Cr3t", "Sup3r</Cr3t>", "Sup3r\udcffCr3t"],
    ids=["amp-and-semicolon", "lt-and-space", "lt", "end-tag", "latin-1-byte"],
)
def test_a_password_sent_unescaped_is_never_quoted_in_the_refusal(
    start: Callable[..., Running], written: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A sender that does not escape & or < in the password (string-built SOAP) makes the document
    # malformed, and libxml2's message quoted what followed: "Entity 'Cr3t' not defined", "Opening
    # and ending tag mismatch: Cr3t ...", "Specification mandates value for attribute pw". That
    # went into the 400, both log lines and the dead letter's reason; the body itself was redacted.
    receiver = start(username="listener", password="placeholder")
    document = render_callback(callback(password="placeholder"))
    password = written.encode("utf-8", "surrogateescape")  # the last: a byte that is no UTF-8
    status, reason = receiver.post(document.replace(b"placeholder", password))
    assert status == 400
    assert reason.startswith(b"callback: not well-formed XML at line 1, column ")
    reasons = receiver.store._reader().execute("SELECT reason, body FROM dead_letters").fetchall()
    assert [row[0].encode() + b"\n" for row in reasons] == [reason]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "not well-formed XML" in logged
    for piece in (b"Cr3t", b"pw", b"Sup3r"):
        assert piece not in reason
        assert piece.decode() not in logged
        assert piece not in reasons[0][1]


def test_a_probe_answers_head_as_get_without_a_body(start: Callable[..., Running]) -> None:
    # Load balancers check health with HEAD as well as GET (HAProxy's "option httpchk HEAD /"): it
    # was answered 405 "Allow: POST", so such a check took a healthy receiver for down. And waitress
    # writes whatever body it is given: the bytes after a HEAD answer were read as the next answer
    # on the connection (here: the GET after it, on one kept-alive connection).
    receiver = start()
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        for path in ("/", "/health", "/healthz", "/readyz", "/metrics", "/callbacks"):
            answers = []
            for method in ("GET", "HEAD", "GET"):
                connection.request(method, path)
                response = connection.getresponse()
                answers.append((response.status, response.getheader("Content-Length"), response.read()))
            (status, length, body), head, again = answers
            assert head == (status, length, b""), path
            assert again == answers[0], path
            assert status in ((405,) if path == "/callbacks" else (200, 404)), (
                path
            )  # /metrics: 404 without prometheus_client
            assert body, path
        connection.request("DELETE", "/healthz")
        response = connection.getresponse()
        assert (response.status, response.getheader("Allow")) == (405, "GET, HEAD, POST")
    finally:
        connection.close()


def test_hostile_corpus_over_http(start: Callable[..., Running]) -> None:
    receiver = start()
    canary = Canary()
    try:
        corpus = hostile_corpus(canary.port)
        for name, document in corpus.items():
            data = document.encode() if isinstance(document, str) else document
            status, _ = receiver.post(data)
            assert 400 <= status < 500, name
        for document in ('{"requestId": ' * 5000, "[" * 100_000):
            assert receiver.post(document.encode(), "application/json")[0] == 400
        assert canary.settled() == 0
        assert receiver.store.counts()["events"] == 0
    finally:
        canary.close()


def test_the_password_never_reaches_the_database_file(start: Callable[..., Running], tmp_path: Path) -> None:
    receiver = start(username="listener", password=SECRET)
    for n in range(20):
        assert receiver.post(render_callback(callback(n, password=SECRET)))[0] == 200
        assert receiver.post(render_rest_callback(callback(n, count=2, password=SECRET)), "application/json")[0] == 200
    receiver.post(b"<CallbackRequest><Password>" + SECRET.encode() + b"</Password>")  # refused, kept redacted
    receiver.close()
    for path in tmp_path.glob("callbacks.db*"):
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_1000_callbacks_each_delivered_4_times(start: Callable[..., Running]) -> None:
    receiver = start()
    documents = [[render_callback(callback(n, count=c)) for c in (1, 2, 3, 4)] for n in range(1000)]
    sequential = [docs[0] for docs in documents] + [docs[1] for docs in documents]
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    statuses = []
    for body in sequential:  # one keep-alive connection, in order
        connection.request("POST", "/cb", body=body, headers={"Content-Type": "text/xml"})
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    shuffled = [docs[2] for docs in documents] + [docs[3] for docs in documents]
    random.Random(7).shuffle(shuffled)
    lanes = [shuffled[lane::16] for lane in range(16)]

    def send(bodies: List[bytes]) -> None:
        lane_connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        for body in bodies:
            lane_connection.request("POST", "/cb", body=body, headers={"Content-Type": "text/xml"})
            response = lane_connection.getresponse()
            response.read()
            statuses.append(response.status)
        lane_connection.close()

    threads = [threading.Thread(target=send, args=(lane,)) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == 4000
    counts = receiver.store.counts()
    assert (counts["events"], counts["attempts"]) == (1000, 4000)


def test_handlers_run_after_commit_and_are_retried(start: Callable[..., Running]) -> None:
    seen: List[StoredEvent] = []
    failures = {"left": 2}

    def flaky(event: StoredEvent) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("downstream is down")
        seen.append(event)

    receiver = start(handlers={"flaky": flaky}, handler_backoff=0.05)
    assert receiver.post(render_callback(callback()))[0] == 200
    assert receiver.post(render_callback(callback(count=2)))[0] == 200  # a re-send runs no handler again
    wait_until(lambda: seen and receiver.store.counts()["handler_queue"] == 0, 10, "the handler to succeed")
    assert [event.callback.request_id for event in seen] == ["req-1"]
    assert receiver.store.counts()["handler_queue"] == 0


def test_redact() -> None:
    assert redact(b'<a:Password x="1">p&amp;w</a:Password>{"password": "p\\"w"}', ["zzz"]) == (
        b'<a:Password x="1">***</a:Password>{"password": "***"}'
    )
    assert redact(b"...zzz...", ["zzz"]) == b"...***..."


def test_wsgi_factory_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from uws_adapter.receiver.wsgi import create_app

    monkeypatch.setenv("UWS_CALLBACK_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("UWS_CALLBACK_USERNAME", "listener")
    monkeypatch.setenv("UWS_CALLBACK_PASSWORD", SECRET)
    app = create_app()
    try:
        assert (app.username, app.passwords, app.store.path) == ("listener", [SECRET], tmp_path / "env.db")
    finally:
        app.close()
        app.store.close()
    monkeypatch.delenv("UWS_CALLBACK_PASSWORD")
    from uws_adapter import InputError

    with pytest.raises(InputError, match="UWS_CALLBACK_USERNAME"):
        create_app()
