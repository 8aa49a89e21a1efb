"""A bridge pair on one PostgreSQL database (UWS_TEST_POSTGRES_URL; skipped without it, except
under CI), behind a load balancer that spreads the carrier's REST callbacks over both: the one
legacy listener gets each callback once, and a legacy session opened on one bridge is valid on the
other."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Iterator, List, Tuple

import pytest
import requests
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER
from pgserver import fresh_schema, upgraded
from servers import WaitressServer, wait_until
from test_bridge import BRIDGE_PASSWORD, BRIDGE_USER, LEGACY_PASSWORD, LEGACY_USER, LegacyListener

from uws_adapter import CallbackRequest, Emulator, ReportedDevice, RestClient, render_rest_callback
from uws_adapter.bridge.app import Bridge, LegacyRelay
from uws_adapter.errors import Refused
from uws_adapter.store import open_store
from uws_adapter.store.postgres import PostgresStore

LISTENER_USER, LISTENER_PASSWORD = "legacy-listener", "listener-secret"


@pytest.fixture
def database() -> Iterator[str]:
    for url in fresh_schema():
        yield upgraded(url)


@contextlib.contextmanager
def bridge_pair(database: str, emulator: Emulator, legacy_url: str) -> Iterator[List[Tuple[Bridge, str]]]:
    with contextlib.ExitStack() as stack:
        pair = []
        for _ in range(2):
            store = open_store(database)
            stack.callback(store.close)
            rest = RestClient(
                base_url=emulator.rest_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=USER,
                password=PASSWORD, store=store, timeout=(2.0, 5.0),
            )  # fmt: skip
            relay = LegacyRelay(legacy_url, username=LISTENER_USER, password=LISTENER_PASSWORD, timeout=(1.0, 2.0))
            bridge = Bridge(
                rest, store, legacy_users={LEGACY_USER: LEGACY_PASSWORD}, relay=relay, callback_username=BRIDGE_USER,
                callback_password=BRIDGE_PASSWORD, handler_backoff=0.05,
            )  # fmt: skip
            stack.callback(bridge.close)
            server = WaitressServer(bridge, **bridge.server_options(host="127.0.0.1", port=0, threads=8))
            stack.callback(server.close)
            pair.append((bridge, server.url))
        yield pair


def _rest_callback(n: int, count: int) -> bytes:
    return render_rest_callback(
        CallbackRequest(
            f"rest-{n // 50}", devices=(ReportedDevice("IMEI", f"{350000000000000 + n}"),), service="CarrierService",
            action="Suspend", status="Success", callback_count=count, username=BRIDGE_USER, password=BRIDGE_PASSWORD,
        )
    )  # fmt: skip


def test_a_bridge_pair_relays_each_callback_once(database: str) -> None:
    legacy = LegacyListener()
    try:
        with Emulator() as emulator, bridge_pair(database, emulator, legacy.url) as pair:
            urls = [url for _, url in pair]
            with requests.Session() as session:
                for n in range(200):  # to one bridge, and the carrier's re-send to the other
                    for count in (1, 2):
                        answer = session.post(
                            f"{urls[(n + count) % 2]}/callbacks", data=_rest_callback(n, count),
                            headers={"Content-Type": "application/json"}, timeout=10,
                        )  # fmt: skip
                        assert answer.status_code == 200
            store = pair[0][0].store
            assert isinstance(store, PostgresStore)
            wait_until(lambda: len(legacy.acknowledged()) >= 200, 60.0, "every relay")
            wait_until(lambda: store.counts()["handler_queue"] == 0, 30.0, "an empty relay queue")
            counts = store.counts()
            assert (counts["events"], counts["attempts"]) == (200, 400)
        relayed = Counter(cb.devices for cb in legacy.acknowledged())
        assert len(relayed) == 200
        assert set(relayed.values()) == {1}  # each callback sent once, by one of the two bridges
    finally:
        legacy.close()


def test_a_legacy_session_opened_on_one_bridge_is_valid_on_the_other(database: str) -> None:
    legacy = LegacyListener()
    try:
        with Emulator() as emulator, bridge_pair(database, emulator, legacy.url) as pair:
            (one, _), (two, _) = pair
            token = one.sessions.open()
            two.sessions.touch(token)  # valid there: the sessions are in the shared store
            two.sessions.close(token)
            with pytest.raises(Refused, match="unknown session token"):
                one.sessions.touch(token)
    finally:
        legacy.close()
