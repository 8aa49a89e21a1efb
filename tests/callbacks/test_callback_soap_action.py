"""The SOAPAction of a UWS SOAP callback POST, per listener (issue 20, item 23): none by default, as
our callbacks always went; the listener's value, quoted, when it is given to the emulator
(``register_listener(soap_action=...)``) or to the bridge's relay (``LegacyRelay(soap_action=...)``).
Which .NET listeners need which value: tests/interop/test_dotnet.py and docs/interop.md."""

from __future__ import annotations

import threading
from typing import Dict, Iterator, List, Optional

import pytest
from servers import LoopbackHttp, Reply, Request, wait_until

from uws_adapter import Emulator, generated_devices, parse_callback
from uws_adapter.bridge.app import LegacyRelay
from uws_adapter.callbacks.uws_render import callback_headers, check_soap_action, render_callback
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.errors import InputError
from uws_adapter.store.interfaces import StoredEvent

ACTION = "http://legacy.example/ICallbackService/CallbackRequest"


class HeaderListener(LoopbackHttp):
    """A loopback listener that acknowledges every POST and keeps its SOAPAction header (None: none)
    and its body."""

    def __init__(self) -> None:
        self.received: List[Dict[str, Optional[str]]] = []
        self.lock = threading.Lock()
        super().__init__(self._answer)
        self.url += "/callbacks"

    def _answer(self, request: Request) -> Reply:
        with self.lock:
            self.received.append({"soap_action": request.headers.get("SOAPAction"), "body": request.body.decode()})
        return 200, "", b""

    def actions(self) -> List[Optional[str]]:
        with self.lock:
            return [r["soap_action"] for r in self.received]


@pytest.fixture
def listener() -> Iterator[HeaderListener]:
    server = HeaderListener()
    yield server
    server.close()


def test_headers_none_by_default_else_quoted() -> None:
    assert callback_headers() == {"Content-Type": "text/xml; charset=utf-8"}
    assert callback_headers("")["SOAPAction"] == '""'
    assert callback_headers(ACTION)["SOAPAction"] == f'"{ACTION}"'


@pytest.mark.parametrize("value", ['a"b', "a\r\nX-Injected: 1", "caf\u00e9", "x" * 1001, 5])
def test_a_value_a_header_cannot_hold_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InputError, match=r"^--listener-soap-action: "):
        check_soap_action(value, "--listener-soap-action")  # type: ignore[arg-type]


@pytest.mark.parametrize("soap_action", [None, "", ACTION], ids=["default", "empty", "value"])
def test_the_emulator_sends_each_listener_its_own(listener: HeaderListener, soap_action: Optional[str]) -> None:
    lines = generated_devices(2)
    with Emulator(devices=lines) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, listener.url, "u", "p", soap_action=soap_action)
        emulator.provision("Suspend", [(line.device.identifiers, line) for line in lines])
        wait_until(lambda: len(listener.actions()) == 2, 20, "two callbacks")
    expected = None if soap_action is None else f'"{soap_action}"'
    assert listener.actions() == [expected, expected]


def test_a_bad_value_is_refused_when_the_listener_is_registered(listener: HeaderListener) -> None:
    with Emulator() as emulator, pytest.raises(InputError, match="listener SOAPAction"):
        emulator.register_listener(DEFAULT_ACCOUNT, listener.url, soap_action="a\nb")


@pytest.mark.parametrize("soap_action", [None, ACTION], ids=["default", "value"])
def test_the_bridge_relay_sends_its_own(listener: HeaderListener, soap_action: Optional[str]) -> None:
    lines = generated_devices(1)
    with Emulator(devices=lines) as emulator:
        emulator.register_listener(DEFAULT_ACCOUNT, listener.url)
        emulator.provision("Restore", [(lines[0].device.identifiers, lines[0])])
        wait_until(lambda: len(listener.actions()) == 1, 20, "the emulator's callback")
    callback = parse_callback(listener.received[0]["body"] or "")
    relay = LegacyRelay(listener.url, username="legacy", password="secret", soap_action=soap_action)
    relay(StoredEvent(id=1, callback=callback, attempts=1, differs=False, received_at=0.0))
    assert listener.actions()[1] == (None if soap_action is None else f'"{ACTION}"')
    relayed = parse_callback(listener.received[1]["body"] or "")
    assert relayed.request_id == callback.request_id
    assert render_callback(relayed)  # a whole UWS callback document


def test_a_bad_relay_value_is_refused_naming_the_relay() -> None:
    with pytest.raises(InputError, match=r"^legacy listener SOAPAction: "):
        LegacyRelay("http://127.0.0.1:9/", soap_action='"quoted"')
