"""What only the PostgreSQL store does: its schema versions (upgraded by a command, checked at
start-up), its URL shown without the password, and psycopg imported only when asked for."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import logging
import subprocess
import sys
from urllib.parse import quote

import pytest
from pgserver import postgres_url  # noqa: F401 (a fixture)

from uws_adapter.errors import StoreError
from uws_adapter.store import describe_store, open_store, upgrade_store
from uws_adapter.store.postgres import SCHEMA_VERSION, PostgresStore, redact_url


def test_a_database_without_the_schema_is_refused_until_upgraded(postgres_url: str) -> None:
    with pytest.raises(StoreError, match=r"schema 0 and this release needs \d+: run `uws-adapter db upgrade"):
        open_store(postgres_url)
    assert upgrade_store(postgres_url).endswith(f"store schema 0 -> {SCHEMA_VERSION}")
    assert upgrade_store(postgres_url).endswith("nothing to do")
    with open_store(postgres_url) as store:
        assert isinstance(store, PostgresStore)
        assert store.schema_version() == SCHEMA_VERSION


def test_a_schema_1_database_is_upgraded_and_keeps_its_rows(postgres_url: str) -> None:
    import psycopg

    from uws_adapter.model.devices import Device
    from uws_adapter.store.postgres_schema import MIGRATIONS, VERSION_TABLE

    with psycopg.connect(postgres_url, autocommit=True) as old:
        old.execute(VERSION_TABLE)
        for statement in MIGRATIONS[1].split(";"):
            if statement.strip():
                old.execute(statement)
        old.execute("INSERT INTO uws_schema_version (version) VALUES (1)")
        old.execute("INSERT INTO requests VALUES ('old', 'Suspend', 'soap', 5.0, '[\"IMEI:350000000000000\"]', FALSE)")
        old.execute("INSERT INTO request_identifiers VALUES ('old', 'IMEI:350000000000000', 0)")
    with pytest.raises(StoreError, match="schema 1 and this release needs"):
        open_store(postgres_url)
    assert upgrade_store(postgres_url).endswith(f"store schema 1 -> {SCHEMA_VERSION}")
    with open_store(postgres_url) as store:
        assert store.recent_actions(["IMEI:350000000000000"], 1.0) == {"IMEI:350000000000000": [("old", 5.0)]}
        store.record_request("new", "Restore", [Device.parse("IMEI:350000000000000")])
        indexes = store._read(
            "list indexes", lambda db: db.all("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        )
    assert ("request_identifiers_by_device",) in {tuple(i) for i in indexes}


def test_a_schema_6_database_is_upgraded_to_7_without_the_attempts_key_and_keeps_its_rows(postgres_url: str) -> None:
    # Schema 7 drops the attempts' foreign key and the unused events_by_received index (issue 19,
    # eighth round); the events and attempts stored under 6 stay, and new callbacks join them.
    import psycopg

    from uws_adapter import CallbackRequest, ReportedDevice
    from uws_adapter.store import CallbackWrite
    from uws_adapter.store.postgres_schema import MIGRATIONS, VERSION_TABLE

    def shape(db: psycopg.Connection) -> tuple:  # type: ignore[type-arg]
        keys = db.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'attempts'::regclass AND contype = 'f'")
        # This test's schema only: another test may be building an older store beside it at once.
        index = db.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_by_received' AND schemaname = current_schema()"
        )
        return keys.fetchone(), index.fetchone()

    with psycopg.connect(postgres_url, autocommit=True) as old:
        old.execute(VERSION_TABLE)
        for version in range(1, 7):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    old.execute(statement)
        old.execute("INSERT INTO uws_schema_version (version) VALUES (6)")
        old.execute(
            "INSERT INTO events (service, request_id, device, action, succeeded, callback, content_hash, received_at)"
            " VALUES ('CarrierService', 'old', 'IMEI:350000000000001', 'Suspend', TRUE, '{}', 'h', 5.0)"
        )
        old.execute(
            "INSERT INTO attempts (event_id, callback_count, content_hash, received_at) VALUES (1, 1, 'h', 5.0)"
        )
        assert shape(old) == ((1,), (1,))
    with pytest.raises(StoreError, match="schema 6 and this release needs"):
        open_store(postgres_url)
    assert upgrade_store(postgres_url).endswith(f"store schema 6 -> {SCHEMA_VERSION}")
    with psycopg.connect(postgres_url, autocommit=True) as new:
        assert shape(new) == ((0,), (0,))
    callback = CallbackRequest(
        "new",
        (ReportedDevice("IMEI", "350000000000002"),),
        service="CarrierService",
        action="Suspend",
        status="Success",
    )
    with open_store(postgres_url) as store:
        assert isinstance(store, PostgresStore)
        [outcome] = store.commit_group([CallbackWrite(callback)])
        assert outcome.result == (2, True)
        counts = store.counts()
        assert (counts["events"], counts["attempts"]) == (2, 2)


def test_a_database_of_a_newer_release_is_refused(postgres_url: str) -> None:
    upgrade_store(postgres_url)
    with open_store(postgres_url) as store:
        store._run("pretend", lambda db: db.execute("UPDATE uws_schema_version SET version = version + 1"))
    with pytest.raises(StoreError, match="written by a newer uws-adapter"):
        open_store(postgres_url)
    with pytest.raises(StoreError, match="written by a newer uws-adapter"):
        upgrade_store(postgres_url)


def test_the_password_is_never_shown(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cret-Pa55"
    with_password = postgres_url.replace("postgresql://uws@", f"postgresql://uws:{quote(secret)}@")
    assert secret not in redact_url(with_password)
    assert secret not in describe_store(with_password)
    assert secret not in redact_url(f"host=127.0.0.1 password={secret} dbname=x")
    unreachable = f"postgresql://uws:{secret}@127.0.0.1:1/uws"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreError) as raised:
        open_store(unreachable, connect_timeout=2)
    assert "cannot connect to the store postgresql://uws@127.0.0.1:1/uws" in str(raised.value)
    assert secret not in str(raised.value)
    assert secret not in repr(raised.value)
    upgrade_store(postgres_url)
    with open_store(with_password) as store:  # trust authentication: any password does
        assert secret not in repr(store)
    assert secret not in caplog.text


def test_importing_the_package_does_not_import_psycopg() -> None:
    code = "import sys, uws_adapter, uws_adapter.store; from uws_adapter.store import open_store; " \
           "print('psycopg' in sys.modules)"  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_a_lost_connection_fails_its_group_and_the_next_one_reconnects(postgres_url: str) -> None:
    import psycopg

    from uws_adapter import CallbackRequest, ReportedDevice
    from uws_adapter.store import CallbackWrite

    def write(n: int) -> CallbackWrite:
        device = (ReportedDevice("IMEI", f"{350000000000000 + n}"),)
        return CallbackWrite(CallbackRequest("r", device, service="CarrierService", action="Suspend", status="Success"))

    upgrade_store(postgres_url)
    with open_store(postgres_url) as store:
        assert store.commit_group([write(1)])[0].error is None
        assert isinstance(store, PostgresStore)
        # commit_group runs on this thread's connection: the server drops it.
        pid = store._run("find the session", lambda db: db.execute("SELECT pg_backend_pid()").fetchone())
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", pid)
        first = store.commit_group([write(2), write(3)])
        assert all(isinstance(o.error, StoreError) for o in first)  # nothing acknowledged: a 503
        assert "could not store" in str(first[0].error)
        assert [o.error for o in store.commit_group([write(2), write(3)])] == [None, None]
        assert store.counts()["events"] == 3
