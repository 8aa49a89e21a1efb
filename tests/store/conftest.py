"""The store tests run against both backends: ``sqlite`` (a file in tmp_path) and ``postgres``
(a schema of its own on the server named by UWS_TEST_POSTGRES_URL; see tests/pgserver.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from pgserver import fresh_schema, upgraded


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store lives: a SQLite path or a PostgreSQL URL with this release's schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "s.db")
        return
    for url in fresh_schema():
        yield upgraded(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty schema on the PostgreSQL test server (no store schema in it yet)."""
    yield from fresh_schema()
