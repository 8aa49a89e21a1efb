"""How the SOAP server speaks of faults (issue 17 item 9): DeserializationFailed says in words
which element is wrong and what was expected, never libxml2's internals; a client's fault writes
its access line at INFO (WCF answers every fault with HTTP 500, and a flood of bad requests must
not write warnings at will), a failure behind the server at WARNING; repeated refusals are
rate-limited."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest
import requests
from lxml import etree

from uws_adapter import Emulator
from uws_adapter.errors import Refused, TransportError
from uws_adapter.serving import access
from uws_adapter.serving.access import REPEAT_WINDOW, REPEATS, AccessLog
from uws_adapter.soap.server import SoapServer
from uws_adapter.wire import NS_SESSION, NS_SOAP_ENV, NS_V2

LOGIN_ACTION = "http://nphase.com/unifiedwebservice/v2/ISessionService/LogIn"


def soap(body: str) -> bytes:
    return f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


def faultstring(content: bytes) -> str:
    return str(etree.fromstring(content).findtext(".//faultstring"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_repeats(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(access, "_repeats", access._Repeats(clock))
    return clock


def test_deserialization_failed_says_what_is_wrong_in_words(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with Emulator(middleware=lambda app: AccessLog(app, "emulator")) as emulator:
        wrong_order = f'<LogIn xmlns="{NS_V2}"><Input><Password>p</Password><Username>u</Username></Input></LogIn>'
        answer = requests.post(
            f"{emulator.base_url}/SessionService.svc", data=soap(wrong_order),
            headers={"Content-Type": "text/xml", "SOAPAction": f'"{LOGIN_ACTION}"'}, timeout=10,
        )  # fmt: skip
    assert answer.status_code == 500
    text = faultstring(answer.content)
    assert "SCHEMASV" not in text
    assert "<string>" not in text
    assert "line 1" in text
    assert "'Password': not expected here; expecting Username" in text
    lines = [r for r in caplog.records if r.name == "uws_adapter.emulator.access" and getattr(r, "status", 0) == 500]
    assert [r.levelno for r in lines] == [logging.INFO]


class Backend:
    """UWS operations whose LogIn fails the way the bridge's does when REST is unreachable."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def log_in(self, username: str, password: str, client: str = "") -> str:
        raise self.error

    def check_session(self, token: Optional[str]) -> None:
        pass

    def log_out(self, token: Optional[str]) -> None:
        pass

    def change_device_state(self, action: Any, selection: Any) -> str:
        return "r"


def call(app: Any) -> int:
    return int(answered(app)[0][:3])


def answered(app: Any) -> Tuple[str, bytes]:
    """A LogIn through the WSGI ``app``: its status line and its body."""
    body = soap(
        f'<LogIn xmlns="{NS_V2}"><Input xmlns:a="{NS_SESSION}"><a:Username>u</a:Username>'
        "<a:Password>p</a:Password></Input></LogIn>"
    )
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v2/SessionService.svc", "CONTENT_TYPE": "text/xml",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": __import__("io").BytesIO(body), "REMOTE_ADDR": "127.0.0.1",
    }  # fmt: skip
    seen: List[str] = []
    chunks: Iterable[bytes] = app(environ, lambda status, headers, exc_info=None: seen.append(status))
    content = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return seen[0], content


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (Refused("REQUEST_FAILED.InvalidCredentials", "wrong"), logging.INFO),
        (TransportError("the REST API did not answer"), logging.WARNING),
    ],
)
def test_a_client_fault_is_logged_at_info_and_a_failure_behind_at_warning(
    caplog: pytest.LogCaptureFixture, error: Exception, level: int
) -> None:
    caplog.set_level(logging.INFO)
    server = SoapServer(
        Backend(error), address=lambda environ: "http://x/api/v2", max_body=10_000,
        refusal=lambda exc: Refused("REQUEST_FAILED.UnexpectedError", str(exc)) if isinstance(exc, TransportError) else None,
    )  # fmt: skip
    assert call(AccessLog(server, "bridge")) == 500
    assert [r.levelno for r in caplog.records if r.name == "uws_adapter.bridge.access"] == [level]


def test_a_fault_relayed_from_behind_with_text_xml_cannot_carry_is_answered_readable() -> None:
    """The bridge relays the REST API's error code and message into the SOAP fault: a control
    character or a lone surrogate in them is written as \\uXXXX, not a failed answer."""
    server = SoapServer(
        Backend(Refused("REQUEST_FAILED.Odd\x01Code", "the carrier said \x07no\ud800")),
        address=lambda environ: "http://x/api/v2", max_body=10_000,
    )  # fmt: skip
    status, content = answered(server)
    assert status == "500 Internal Server Error"
    assert faultstring(content) == "the carrier said \\u0007no\\ud800"
    assert etree.fromstring(content).findtext(".//faultcode") == "SessionService.REQUEST_FAILED.Odd\\u0001Code"


def test_repeated_refusals_are_rate_limited_and_counted(
    caplog: pytest.LogCaptureFixture, fresh_repeats: FakeClock
) -> None:
    caplog.set_level(logging.INFO)

    def refuse(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b"wrong callback username or password\n"]

    def accept(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]

    refused, accepted = AccessLog(refuse, "receiver"), AccessLog(accept, "receiver")
    for _ in range(REPEATS + 5):
        assert call(refused) == 401
    for _ in range(REPEATS + 5):
        assert call(accepted) == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "uws_adapter.receiver.access"]
    assert sum(" 401 " in line for line in lines) == REPEATS
    assert sum(" 200 " in line for line in lines) == REPEATS + 5  # answers are never left out
    fresh_repeats.now += REPEAT_WINDOW
    caplog.clear()
    call(refused)
    [line] = [r.getMessage() for r in caplog.records if r.name == "uws_adapter.receiver.access"]
    assert "(5 more like it left out in the last minute)" in line
