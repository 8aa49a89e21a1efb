"""A PostgreSQL database for tests: the server ``.ci/postgres.sh start`` runs, named by
``UWS_TEST_POSTGRES_URL``. Each test gets a schema of its own (dropped afterwards), so tests never
see each other's rows. Without the variable the PostgreSQL tests are skipped, saying why, except
under CI=true, where they fail: CI must run them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest

VARIABLE = "UWS_TEST_POSTGRES_URL"
HOW = 'start one with: eval "$(.ci/postgres.sh start)"'


def server_url() -> str:
    """The server's URL, or skip (fail under CI) when there is none."""
    url = os.environ.get(VARIABLE, "").strip()
    if url:
        return url
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{VARIABLE} is not set under CI: the PostgreSQL tests must run ({HOW})")
    pytest.skip(f"no PostgreSQL server: {VARIABLE} is not set ({HOW})")


def fresh_schema() -> Iterator[str]:
    """The URL of an empty schema on the test server, dropped after the test (a generator for a
    fixture)."""
    import psycopg

    url = server_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-c search_path={schema}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def upgraded(url: str) -> str:
    """``url`` with this release's schema in it."""
    from uws_adapter.store import upgrade_store

    upgrade_store(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store lives, for tests that run on both backends: a SQLite path, or a PostgreSQL
    URL (a schema of its own) with this release's schema. Import it into the test module."""
    if request.param == "sqlite":
        yield str(tmp_path / "s.db")
        return
    for url in fresh_schema():
        yield upgraded(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty schema on the PostgreSQL test server (no store schema in it yet)."""
    yield from fresh_schema()
