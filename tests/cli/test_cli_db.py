"""``uws-adapter db upgrade|version`` and ``--db postgresql://...`` on the commands that read the
store, on both backends; the URL's password never printed."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import os
from pathlib import Path
from typing import List
from urllib.parse import quote

import pytest
from pgserver import postgres_url  # noqa: F401 (a fixture)

from uws_adapter import CallbackRequest, ReportedDevice
from uws_adapter.cli.main import main
from uws_adapter.store import open_store
from uws_adapter.store.postgres import SCHEMA_VERSION


def _callback() -> CallbackRequest:
    return CallbackRequest(
        "r-cli", (ReportedDevice("IMEI", "350000000000001"),), service="CarrierService", action="Suspend",
        status="Success",
    )  # fmt: skip


def test_db_upgrade_then_status_on_postgres(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "pa55-w0rd"
    url = postgres_url.replace("postgresql://uws@", f"postgresql://uws:{quote(secret)}@")
    assert main(["db", "version", "--db", url]) == 0
    assert f"store schema 0 (this release: {SCHEMA_VERSION}; run 'db upgrade')" in capsys.readouterr().out
    assert main(["status", "r-cli", "--db", url]) == 1  # refused: an older schema
    assert "run `uws-adapter db upgrade --db URL`" in capsys.readouterr().err
    assert main(["db", "upgrade", "--db", url]) == 0
    assert f"store schema 0 -> {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", url]) == 0
    assert "nothing to do" in capsys.readouterr().out
    with open_store(url) as store:
        store.add_callback(_callback())
    assert main(["status", "r-cli", "--db", url]) == 0
    assert main(["callbacks", "--db", url, "--json"]) == 0
    printed = capsys.readouterr()
    assert "350000000000001" in printed.out
    assert secret not in printed.out + printed.err


def test_db_upgrade_and_version_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "c.db")
    assert main(["db", "version", "--db", db]) == 2  # no such file: nothing is created
    assert not Path(db).exists()
    assert main(["db", "upgrade", "--db", db]) == 2  # a mistyped path: nothing is created either
    assert "add --create to make a new one there" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["db", "upgrade", "--create", "--db", db]) == 0
    assert "store schema 0 -> " in capsys.readouterr().out
    assert main(["db", "version", "--db", db]) == 0
    assert "current" in capsys.readouterr().out


def test_the_environment_names_the_store(
    postgres_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UWS_CALLBACK_DB", postgres_url)
    assert main(["db", "upgrade"]) == 0
    assert f"store schema 0 -> {SCHEMA_VERSION}" in capsys.readouterr().out


def test_db_upgrade_into_a_missing_folder_is_refused_as_status_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "nope" / "c.db")
    for command in (
        ["db", "upgrade", "--db", db],
        ["db", "upgrade", "--create", "--db", db],
        ["status", "r", "--db", db],
    ):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "--db" in err
        assert "Traceback" not in err
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("command", [["db", "version"], ["db", "upgrade"], ["status", "r"]], ids=" ".join)
def test_a_file_that_is_not_a_database_is_one_line(
    command: List[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    assert main([*command, "--db", str(tmp_path / "notes.db")]) == 1
    err = capsys.readouterr().err
    assert err == f"uws-adapter: error: cannot open the store {tmp_path / 'notes.db'}: file is not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]  # nothing left beside it


@pytest.mark.parametrize("command", [["db", "upgrade"], ["status", "r"], ["callbacks"]], ids=" ".join)
def test_another_programs_sqlite_database_is_refused_and_left_as_it_was(
    command: List[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Our ten tables were written into it, beside its own.
    import sqlite3

    other = tmp_path / "crm.db"
    with sqlite3.connect(str(other)) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER)")
    assert main([*command, "--db", str(other)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"uws-adapter: error: cannot open the store {other}: it is another program's SQLite database (tables:"
        " customers), not a uws-adapter store; give the path of a new file or of a uws-adapter store\n"
    )
    with sqlite3.connect(str(other)) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == [("customers",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.db"]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["status", "r"]], ids=" ".join)
def test_another_programs_postgresql_database_is_refused_and_left_as_it_was(
    command: List[str], postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # db upgrade wrote our tables beside its own (and took an `events` of its own for ours), as the
    # SQLite store refused to.
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
        db.execute("CREATE TABLE events (id INTEGER, what TEXT)")
    assert main([*command, "--db", postgres_url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "it is another program's PostgreSQL database (tables: customers, events), not a uws-adapter store" in err
    with psycopg.connect(postgres_url, autocommit=True) as db:
        tables = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    assert sorted(tables) == [("customers",), ("events",)]


def test_an_empty_postgresql_database_is_upgraded(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--db", postgres_url]) == 0
    assert f"store schema 0 -> {SCHEMA_VERSION}" in capsys.readouterr().out


def test_another_programs_table_names_are_quoted_not_written_to_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The names are the file's: a line break or a terminal escape in one went out as it was.
    import sqlite3

    other = tmp_path / "crm.db"
    with sqlite3.connect(str(other)) as connection:
        connection.execute('CREATE TABLE "a\nuws-adapter: ok\x1b[31m" (id INTEGER)')
    assert main(["status", "r", "--db", str(other)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert err.count("\n") == 1
    assert "(tables: 'a\\nuws-adapter: ok\\x1b[31m')" in err


@pytest.mark.parametrize(
    "command",
    [["db", "version"], ["db", "upgrade"], ["status", "r"], ["callbacks"], ["wait", "r", "--timeout", "1"],
     ["receiver", "--allow-anonymous", "--port", "0"]],
    ids=" ".join,
)  # fmt: skip
def test_a_malformed_url_never_shows_its_password(command: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    password = "Pa%zzw0rd"  # '%zz' is no %-escape: the driver's own message quotes this token
    saved = dict(os.environ)  # the uvicorn receiver hands its settings to its workers there
    try:
        assert main([*command, "--db", f"postgresql://uws:{password}@127.0.0.1:1/uws"]) == 2
    finally:
        os.environ.clear()
        os.environ.update(saved)
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.count("\n") == 1
    assert "cannot be read (not shown: it may hold the password)" in printed.err
    assert "%25" in printed.err  # how to write a '%'
    assert "zzw0rd" not in printed.err


@pytest.mark.parametrize(
    "command",
    [["status", "r-cli"], ["callbacks"], ["wait", "r-cli", "--timeout", "1"], ["db", "version"], ["db", "upgrade"]],
    ids=["status", "callbacks", "wait", "db-version", "db-upgrade"],
)
def test_an_empty_file_is_no_store_and_a_reader_leaves_it_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: List[str]
) -> None:
    # A 0-byte file (`touch callbacks.db`, a placeholder) passed the "is it a file" check: status,
    # callbacks and db version wrote a whole empty store into it (102,400 bytes) and said that
    # nothing was known, as for a store that never received anything.
    db = tmp_path / "callbacks.db"
    db.touch()
    assert main([*command, "--db", str(db)]) == 2
    assert "no store at" in capsys.readouterr().err
    assert db.stat().st_size == 0
