"""A PostgreSQL store that cannot be reached says what to check: a wrong password, a database that
does not exist, nothing listening. The message is one line that names the store (without its
password) and the fix, for `db version`, `db upgrade` and every service or command that opens it.

The wrong password comes from a loopback server that speaks just enough of PostgreSQL's protocol to
refuse a login as a real one does (the test cluster trusts every login, so it cannot refuse one)."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import socket
import struct
import threading
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from pgserver import postgres_url  # noqa: F401 (a fixture)

from uws_adapter.errors import StoreError
from uws_adapter.store import open_store, upgrade_store

pytest.importorskip("psycopg")

SECRET = "s3cret-Pa55"
#: The codes of the requests a client may send before its startup message (SSL, GSS encryption).
PRE_STARTUP = (80877103, 80877104)


def _refuse_logins(listener: socket.socket) -> None:
    """Answer every connection's startup as a server whose password check failed (SQLSTATE 28P01)."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            try:
                while True:
                    header = connection.recv(8, socket.MSG_WAITALL)
                    if len(header) < 8:
                        break
                    length, code = struct.unpack("!ii", header)
                    if length == 8 and code in PRE_STARTUP:
                        connection.sendall(b"N")  # no SSL, no GSS: go on in clear
                        continue
                    connection.recv(length - 8, socket.MSG_WAITALL)
                    fields = b'SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user "op"\0\0'
                    connection.sendall(b"E" + struct.pack("!i", 4 + len(fields)) + fields)
                    break
            except OSError:
                pass


@pytest.fixture
def refusing_server() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_refuse_logins, args=(listener,), daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


def _one_line(error: StoreError) -> str:
    text = str(error)
    assert "\n" not in text
    assert SECRET not in text
    assert SECRET not in repr(error)
    return text


def test_a_wrong_password_names_the_store_and_says_to_check_the_password(refusing_server: int) -> None:
    url = f"postgresql://op:{SECRET}@127.0.0.1:{refusing_server}/opdb?sslmode=disable"
    for attempt in (lambda: open_store(url, connect_timeout=5), lambda: upgrade_store(url)):
        with pytest.raises(StoreError) as raised:
            attempt()
        text = _one_line(raised.value)
        assert f"postgresql://op@127.0.0.1:{refusing_server}/opdb" in text
        assert "password authentication failed" in text
        assert "check the user and password in the database URL" in text


def test_nothing_listening_says_to_check_the_host_and_port() -> None:
    with pytest.raises(StoreError) as raised:
        open_store(f"postgresql://op:{SECRET}@127.0.0.1:1/opdb", connect_timeout=2)
    assert "check the host and port in the database URL" in _one_line(raised.value)


def test_a_database_that_does_not_exist_says_to_check_its_name(postgres_url: str) -> None:
    import psycopg

    missing = urlsplit(postgres_url)._replace(path="/no_such_database_here", query="").geturl()
    with psycopg.connect(postgres_url, autocommit=True):  # the server runs: only the name is wrong
        pass
    for attempt in (lambda: open_store(missing, connect_timeout=5), lambda: upgrade_store(missing)):
        with pytest.raises(StoreError) as raised:
            attempt()
        assert "check the database name in the URL" in _one_line(raised.value)
