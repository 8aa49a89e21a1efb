"""What the first-contact tools read from a server: one bounded GET (no redirect followed, a size
cap), the server's clock from ``Date``, and failures named as the clients name them."""

from __future__ import annotations

import pytest
from firstcontact import DocumentServer
from servers import closed_port

from uws_adapter.errors import TransportError
from uws_adapter.netcheck import clock_skew, fetch, reach, server_time


def test_a_get_is_capped_and_answers_404_as_it_is() -> None:
    with DocumentServer() as server:
        server.documents["/big"] = b"x" * 5000
        assert fetch(f"{server.url}/big").content == b"x" * 5000
        with pytest.raises(TransportError, match="over the 1,000-byte limit"):
            fetch(f"{server.url}/big", max_bytes=1000)
        missing = fetch(f"{server.url}/missing")
        assert missing.status_code == 404
        assert server_time(missing.headers) is not None


def test_a_refused_connection_is_named_in_the_clients_words() -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(TransportError) as caught:
        fetch(url)
    assert str(caught.value) == f"GET {url!r}: connection refused"  # as the clients say it, no Errno
    found = reach(url)
    assert found.addresses
    assert found.problem == f"no connection to 127.0.0.1:{port} (connection refused)"


def test_the_servers_clock() -> None:
    headers = {"Date": "Mon, 07 Dec 2026 09:00:00 GMT"}
    assert server_time(headers) == 1796634000.0
    assert clock_skew(headers, lambda: 1796634090.0) == 90.0
    assert clock_skew({}, lambda: 0.0) is None
    assert server_time({"Date": "not a date"}) is None


def test_a_lost_answer_is_a_plain_transport_error_without_login_advice() -> None:
    # A GET provisions nothing: no OutcomeUnknown to reconcile, no "log in again" (the engine's
    # READ stakes say so; the words are not cut out of another stake's message).
    from servers import SilentServer

    from uws_adapter.errors import OutcomeUnknown

    silent = SilentServer()
    try:
        with pytest.raises(TransportError) as caught:
            fetch(f"{silent.url}/x", timeout=(2.0, 0.5), deadline=5.0)
        assert not isinstance(caught.value, OutcomeUnknown)
        said = str(caught.value)
        assert "no usable answer" in said
        assert "log in" not in said
        assert "provisioned" not in said
    finally:
        silent.close()
