"""Shared fixtures and helpers for the uws-adapter tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List, Tuple, Union

import pytest
from hypothesis import settings
from lxml import etree
from servers import HttpServer, listener

from uws_adapter import RestClient, UwsClient

# No secret of the tests in a log record, a left-behind file or a test's output (tests/secret_scan.py).
pytest_plugins = ["secret_scan"]

DATA = Path(__file__).parent / "data"
#: Excerpts of the carrier's documentation the fixtures are checked against (copied into the checkout,
#: so nothing is read from outside it).
CARRIER_DOCS = DATA / "thingspace-docs"

Shape = Tuple[str, str, List["Shape"]]

# Hypothesis profiles. "ci" runs every property test at its full example count (what `examples`
# is given); "dev" runs a tenth of it, for a quick run while working. HYPOTHESIS_PROFILE picks one
# and "ci" is the default; under CI=true it is always "ci", so CI never runs fewer examples.
# Both are derandomized: a failure found once is found again on every run and machine.
PROFILES = {"ci": 1.0, "dev": 0.1}
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", derandomize=True, deadline=None, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or "ci"
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"HYPOTHESIS_PROFILE={PROFILE!r}: unknown profile; use one of {', '.join(PROFILES)}")
if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
    PROFILE = "ci"
settings.load_profile(PROFILE)


def examples(full: int) -> int:
    """The example count for a property test whose full count is ``full``, in the loaded profile."""
    return max(10, int(full * PROFILES[PROFILE]))


def pytest_report_header() -> str:
    return f"hypothesis profile: {PROFILE} (HYPOTHESIS_PROFILE=dev for a quick run; CI=true forces ci)"


class ManualClock:
    """A monotonic clock that moves only when told to: expiry is tested without waiting for it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
    """A client with the emulator's login and tiny backoff, for loopback tests. The timeouts only
    bound a failure: generous, so that a machine busy with other work does not fail a test."""
    defaults = {"username": USER, "password": PASSWORD, "timeout": (5.0, 10.0), "backoff": 0.01}
    return UwsClient(base_url=base_url, **{**defaults, **options})  # type: ignore[arg-type]


#: The OAuth2 application the emulator accepts by default.
CLIENT_ID, CLIENT_SECRET = "ts-client", "ts-secret"


def rest_client_for(base_url: str, **options: object) -> RestClient:
    """A REST client with the emulator's keys and login, generous timeouts (as client_for) and tiny backoff."""
    defaults = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USER,
        "password": PASSWORD,
        "timeout": (5.0, 10.0),
        "backoff": 0.01,
    }
    return RestClient(base_url=base_url, **{**defaults, **options})  # type: ignore[arg-type]


@pytest.fixture
def callbacks() -> Iterator[HttpServer]:
    """A loopback callback listener that acknowledges everything."""
    server = listener()
    yield server
    server.close()
