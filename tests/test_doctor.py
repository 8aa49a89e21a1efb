"""``uws-adapter doctor`` against the emulator (every check passes, on both backends), with a
wrong password (the login fails, the password is never printed, the REST session is not tried
with it), against a self-signed TLS server (the certificate problem named; trusted, it passes),
and each check's failures: listeners elsewhere or missing, a store behind or missing, the clock
off, no published metadata."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, rest_client_for
from firstcontact import DocumentServer, TlsDocumentServer, run_cli, self_signed
from pgserver import postgres_url  # noqa: F401 (a fixture)

from uws_adapter import Emulator, generated_devices
from uws_adapter.config import Settings
from uws_adapter.doctor import FAIL, PASS, WARN, Check, DoctorOptions, check_clock, check_store, check_wsdl, run_checks
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.errors import TransportError
from uws_adapter.netcheck import fetch, reach
from uws_adapter.store import SCHEMA_VERSION, Store

RECEIVER = "http://127.0.0.1:8081/callbacks"
WRONG = "Wrong-Pa55word-for-doctor"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(devices=generated_devices(2)) as served:
        with rest_client_for(served.rest_url) as client:
            client.register_callback(DEFAULT_ACCOUNT, "CarrierService", RECEIVER)
        served.counters["logins"] = 0
        yield served


def environment(emulator: Emulator, **more: str) -> Dict[str, str]:
    return {"UWS_USERNAME": USER, "UWS_PASSWORD": PASSWORD, "THINGSPACE_CLIENT_ID": CLIENT_ID,
            "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET, "UWS_ENDPOINT": emulator.base_url,
            "UWS_ADAPTER_REST_URL": emulator.rest_url, **more}  # fmt: skip


def store_at(tmp_path: Path) -> Path:
    path = tmp_path / "callbacks.db"
    Store(path).close()
    return path


def by_name(checks: List[Dict[str, str]]) -> Dict[str, str]:
    return {check["name"]: check["status"] for check in checks}


@pytest.mark.parametrize("backend", ["soap", "rest"])
def test_every_check_passes_against_the_emulator(tmp_path: Path, emulator: Emulator, backend: str) -> None:
    args = ["doctor", "--backend", backend, "--account", DEFAULT_ACCOUNT, "--receiver-url", RECEIVER + "/",
            "--db", str(store_at(tmp_path))]  # fmt: skip
    done = run_cli(args, tmp_path, **environment(emulator))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("PASS  ") for line in lines[:-1]), done.stdout
    names = [line.split()[1] for line in lines[:-1]]
    expected = ["uws-url", "rest-url", "uws-login", "wsdl", "rest-oauth", "rest-session", "listeners", "store",
                "clock"] if backend == "soap" else ["rest-url", "rest-oauth", "rest-session", "listeners", "store",
                                                    "clock"]  # fmt: skip
    assert names == expected
    assert lines[-1].startswith(f"doctor: {len(expected)} checks: {len(expected)} PASS, 0 WARN, 0 FAIL")
    assert all(line.actions_today == 0 for line in emulator.devices)  # nothing provisioned
    as_json = run_cli([*args, "--json"], tmp_path, **environment(emulator))
    document = json.loads(as_json.stdout)
    assert document["ok"] is True
    assert set(by_name(document["checks"]).values()) == {PASS}


def test_a_wrong_password_fails_the_login_and_is_never_printed(tmp_path: Path, emulator: Emulator) -> None:
    done = run_cli(["doctor", "--json"], tmp_path, **environment(emulator, UWS_PASSWORD=WRONG))
    assert done.returncode == 1
    assert WRONG not in done.stdout + done.stderr
    checks = json.loads(done.stdout)["checks"]
    statuses = by_name(checks)
    assert statuses["uws-login"] == FAIL
    assert statuses["rest-session"] == WARN  # not tried: each refusal counts towards the lockout
    login = next(check for check in checks if check["name"] == "uws-login")
    assert "InvalidCredentials" in login["detail"]
    assert "UWS_PASSWORD" in login["fix"]
    assert emulator.counters["failed_logins"] == 1
    text = run_cli(["doctor", "--password", WRONG], tmp_path, **environment(emulator))
    assert WRONG not in text.stdout + text.stderr
    assert "FAIL  uws-login" in text.stdout


def test_a_self_signed_server_is_named_and_passes_once_trusted(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = TlsDocumentServer(cert, key)
    try:
        url = f"{server.url}/api/v2"
        found = reach(url)
        assert found.tls is False
        assert re.search("self.signed certificate", str(found.problem))  # OpenSSL 1.1: no hyphen
        with pytest.raises(TransportError, match=r"certificate verify failed: self.signed certificate"):
            fetch(url)
        done = run_cli(["doctor", "--endpoint", url], tmp_path, UWS_USERNAME=USER, UWS_PASSWORD=PASSWORD)
        assert done.returncode == 1
        first = done.stdout.splitlines()[0]
        assert first.startswith("FAIL  uws-url")
        assert re.search("certificate verify failed: self.signed certificate", first)
        assert "REQUESTS_CA_BUNDLE" in first
        trusted = run_cli(["doctor", "--endpoint", url, "--json"], tmp_path, UWS_USERNAME=USER,
                          UWS_PASSWORD=PASSWORD, REQUESTS_CA_BUNDLE=str(cert))  # fmt: skip
        statuses = by_name(json.loads(trusted.stdout)["checks"])
        assert statuses["uws-url"] == PASS
        assert statuses["uws-login"] == FAIL  # a document server, not a UWS: the login fails, named
    finally:
        server.__exit__()


def test_listeners_elsewhere_or_missing_fail_with_the_fix(tmp_path: Path, emulator: Emulator) -> None:
    base = ["doctor", "--backend", "rest", "--json", "--account", DEFAULT_ACCOUNT]
    elsewhere = run_cli([*base, "--receiver-url", "https://receiver.example/callbacks"], tmp_path,
                        **environment(emulator))  # fmt: skip
    check = next(c for c in json.loads(elsewhere.stdout)["checks"] if c["name"] == "listeners")
    assert check["status"] == FAIL
    assert RECEIVER in check["detail"]
    assert f"uws-adapter listeners register {DEFAULT_ACCOUNT} https://receiver.example/callbacks" in check["fix"]
    assert elsewhere.returncode == 1
    emulator.listeners.clear()
    missing = run_cli([*base, "--receiver-url", RECEIVER], tmp_path, **environment(emulator))
    check = next(c for c in json.loads(missing.stdout)["checks"] if c["name"] == "listeners")
    assert check["status"] == FAIL
    assert "no CarrierService listener" in check["detail"]


def options(tmp_path: Path, **given: object) -> DoctorOptions:
    return DoctorOptions(Settings(username=USER, password=PASSWORD), **given)  # type: ignore[arg-type]


def test_the_store_behind_missing_or_not_a_store(tmp_path: Path) -> None:
    current = store_at(tmp_path)
    assert check_store(options(tmp_path, db=str(current))).status == PASS
    old = tmp_path / "old.db"
    with sqlite3.connect(str(old)) as connection:  # schema 0: 0.1.0's store, which no release has upgraded
        connection.execute("CREATE TABLE events (id INTEGER)")
    connection.close()
    behind = check_store(options(tmp_path, db=str(old)))
    assert behind.status == FAIL
    assert f"schema 0, this release needs {SCHEMA_VERSION}" in behind.detail
    assert behind.fix == f"uws-adapter db upgrade --db {old}"
    gone = tmp_path / "gone.db"
    missing = check_store(options(tmp_path, db=str(gone)))
    assert missing.status == FAIL
    assert not gone.exists()  # a check never creates a store
    assert missing.fix.endswith(f"uws-adapter db upgrade --create --db {gone}")  # the command that makes one
    (tmp_path / "empty.db").touch()  # "schema 0: db upgrade", which refuses an empty file
    empty = check_store(options(tmp_path, db=str(tmp_path / "empty.db")))
    assert (empty.status, "(an empty file)" in empty.detail) == (FAIL, True)
    assert empty.fix.endswith(f"uws-adapter db upgrade --create --db {tmp_path / 'empty.db'}")
    (tmp_path / "text.db").write_text("not a database")
    assert check_store(options(tmp_path, db=str(tmp_path / "text.db"))).status == FAIL
    assert check_store(options(tmp_path)).status == WARN


def test_a_postgresql_store_before_and_after_its_upgrade(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    from uws_adapter.store import upgrade_store

    before = check_store(options(tmp_path, db=postgres_url))
    assert before.status == FAIL
    assert "db upgrade" in before.fix
    upgrade_store(postgres_url)
    after = check_store(options(tmp_path, db=postgres_url))
    assert after.status == PASS, after


@pytest.mark.parametrize(("offset", "status"), [(0.0, PASS), (60.0, WARN), (-600.0, FAIL)])
def test_the_clock_against_the_servers_date(tmp_path: Path, offset: float, status: str) -> None:
    import time

    with DocumentServer() as server:
        found = check_clock(options(tmp_path, clock=lambda: time.time() + offset), server.url + "/")
    assert found.status == status
    if offset < 0:
        assert "behind the server's" in found.detail
        assert "NTP" in found.fix


def test_no_published_metadata_is_a_warning(tmp_path: Path) -> None:
    with DocumentServer() as server:
        found = check_wsdl(DoctorOptions(Settings(soap_url=f"{server.url}/api/v2")))
    assert found.status == WARN
    assert "HTTP 404" in found.detail


def test_an_unreachable_url_skips_what_needs_it(tmp_path: Path) -> None:
    from servers import closed_port

    settings = Settings(soap_url=f"http://127.0.0.1:{closed_port()}/api/v2", username=USER, password=PASSWORD)
    checks = run_checks(DoctorOptions(settings))
    statuses = {check.name: check.status for check in checks}
    assert statuses["uws-url"] == FAIL
    assert statuses["uws-login"] == WARN
    assert statuses["clock"] == WARN
    assert all(isinstance(check, Check) for check in checks)


def test_a_store_that_cannot_be_opened_is_not_told_to_be_created(tmp_path: Path) -> None:
    # `db upgrade --create` makes a store where there is none; on a file that is not a database, or
    # a server that refuses the login, it fails as the check did: the fix must not send one there.
    (tmp_path / "text.db").write_text("not a database")
    unreachable = "postgresql://op:s3cret@127.0.0.1:1/opdb"
    for location in (str(tmp_path / "text.db"), unreachable):
        check = check_store(options(tmp_path, db=location))
        assert check.status == FAIL
        assert "--create" not in check.fix, check
        assert "point --db at the receiver's store" in check.fix
    assert "s3cret" not in repr(check_store(options(tmp_path, db=unreachable)))
    (tmp_path / "folder.db").mkdir()
    assert "--create" not in check_store(options(tmp_path, db=str(tmp_path / "folder.db"))).fix


def test_a_listener_url_no_parser_reads_is_not_the_receivers(tmp_path: Path, emulator: Emulator) -> None:
    # What the carrier lists was registered by any tool (its portal, another program): a URL that
    # urlsplit refuses (an unclosed IPv6 bracket) is not --receiver-url, said as a check, not a crash.
    listener = emulator.listeners[(DEFAULT_ACCOUNT, "CarrierService")]
    emulator.listeners[(DEFAULT_ACCOUNT, "CarrierService")] = replace(listener, url="http://[::1:8081/callbacks")
    done = run_cli(["doctor", "--backend", "rest", "--json", "--account", DEFAULT_ACCOUNT, "--receiver-url", RECEIVER],
                   tmp_path, **environment(emulator))  # fmt: skip
    assert done.returncode == 1, done.stderr
    check = next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "listeners")
    assert check["status"] == FAIL
    assert "not to" in check["detail"]
