"""Shared fixtures and helpers for the uws-adapter tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Tuple, Union

import pytest
from lxml import etree
from servers import HttpServer, listener

from uws_adapter import RestClient, UwsClient

DATA = Path(__file__).parent / "data"
SHARED_DOCS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "thingspace-docs"

Shape = Tuple[str, str, List["Shape"]]


def parse_trusted(data: Union[bytes, str]) -> etree._Element:
    """Parse test fixtures and our own output (never hostile input) without DTDs or network."""
    raw = data.encode() if isinstance(data, str) else data
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    return etree.fromstring(raw, parser)


def shape(element: etree._Element) -> Shape:
    """Namespace-qualified names, text and child order: what must match, whatever the prefixes."""
    return (element.tag, (element.text or "").strip(), [shape(child) for child in element])


@pytest.fixture(scope="session")
def doc_request() -> bytes:
    return (DATA / "doc-restore-request.xml").read_bytes()


#: The login the emulator accepts by default.
USER, PASSWORD = "uws-user", "uws-password"


def client_for(base_url: str, **options: object) -> UwsClient:
    """A client with the emulator's login, short timeouts and tiny backoff, for loopback tests."""
    defaults = {"username": USER, "password": PASSWORD, "timeout": (1.0, 1.0), "backoff": 0.01}
    return UwsClient(base_url=base_url, **{**defaults, **options})  # type: ignore[arg-type]


#: The OAuth2 application the emulator accepts by default.
CLIENT_ID, CLIENT_SECRET = "ts-client", "ts-secret"


def rest_client_for(base_url: str, **options: object) -> RestClient:
    """A REST client with the emulator's keys and login, short timeouts and tiny backoff."""
    defaults = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USER,
        "password": PASSWORD,
        "timeout": (1.0, 2.0),
        "backoff": 0.01,
    }
    return RestClient(base_url=base_url, **{**defaults, **options})  # type: ignore[arg-type]


@pytest.fixture
def callbacks() -> Iterator[HttpServer]:
    """A loopback callback listener that acknowledges everything."""
    server = listener()
    yield server
    server.close()
