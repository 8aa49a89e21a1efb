"""Pre-auth cost on the receiver (issue 17 item 3), on both servers: wrong credentials are refused
before the rest of a callback is read, a body over the node bound is refused naming it, and on
uvicorn a large body is read off the event loop (the loop answers others meanwhile)."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path
from typing import Callable, List, Tuple, Union

import test_receiver
from servers import AsgiServer, wait_until
from test_receiver import SECRET, Running

from uws_adapter.edge import Answer
from uws_adapter.receiver.app import Intake, Receiver
from uws_adapter.receiver.asgi import INLINE_BODY, AsyncReceiver, server_config
from uws_adapter.store.sqlite import Store

start = test_receiver.start  # both servers
NS = 'xmlns="http://nphase.com/unifiedwebservice/v2"'


def xml_callback(password: str, inner: str) -> bytes:
    return (
        f"<CallbackRequest {NS}><Username>listener</Username><Password>{password}</Password>"
        f"<RequestId>r</RequestId>{inner}</CallbackRequest>"
    ).encode()


def test_wrong_credentials_are_refused_before_the_rest_is_read(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET)
    bad_count = "<Data><Data><CallbackCount>many</CallbackCount></Data></Data>"
    assert receiver.post(xml_callback("wrong", bad_count))[0] == 401
    assert receiver.post(xml_callback(SECRET, bad_count))[0] == 400
    json_body = b'{"requestId": "r", "username": "listener", "password": "%s", "callbackCount": "many"}'
    assert receiver.post(json_body % b"wrong", "application/json")[0] == 401
    assert receiver.post(json_body % SECRET.encode(), "application/json")[0] == 400


def test_a_flood_of_elements_is_refused_naming_the_bound(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET)
    size = 1000 * 1000
    for body, media in (
        (xml_callback("wrong", "<a/>" * (size // 4)), "text/xml"),
        (b"<!--a-->" * (size // 8) + xml_callback("wrong", ""), "text/xml"),
        (b'{"requestId": "r", "x": [' + b"0," * (size // 2) + b"0]}", "application/json"),
    ):
        status, reason = receiver.post(body, media)
        assert status == 400, reason
        assert b"more than" in reason
    # Legitimate callbacks are stored as before.
    assert receiver.post(xml_callback(SECRET, ""))[0] == 200


class HeldReceiver(Receiver):
    """Holds the reading of large bodies until released, and says where it ran."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reading = threading.Event()
        self.release = threading.Event()
        self.threads: List[str] = []

    def intake(self, body: bytes, media_type: str) -> Union[Answer, Intake]:
        if len(body) > INLINE_BODY:
            self.threads.append(threading.current_thread().name)
            self.reading.set()
            assert self.release.wait(20)
        return super().intake(body, media_type)


def request(port: int, method: str, body: bytes = b"") -> Tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        headers = {"Content-Type": "text/xml"} if body else {}
        connection.request(method, "/callbacks" if body else "/healthz", body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_on_uvicorn_a_large_body_is_read_off_the_event_loop(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    receiver = HeldReceiver(store, username="listener", password=SECRET)
    app = AsyncReceiver(receiver)
    server = AsgiServer(app, **server_config(app))
    answers: List[Tuple[int, bytes]] = []
    try:
        large = xml_callback(SECRET, "<Comment>" + "x" * (2 * INLINE_BODY) + "</Comment>")
        poster = threading.Thread(target=lambda: answers.append(request(server.port, "POST", large)))
        poster.start()
        assert receiver.reading.wait(20)
        # The large body is being read, held: the loop still answers.
        assert request(server.port, "GET") == (200, b"ok\n")
        assert request(server.port, "POST", xml_callback(SECRET, ""))[0] == 200
        receiver.release.set()
        poster.join(20)
        wait_until(lambda: bool(answers))
        assert answers[0][0] == 200
        assert receiver.threads
        assert all(name.startswith("uws-read") for name in receiver.threads)
    finally:
        receiver.release.set()
        server.close()
        receiver.close()
        store.close()
