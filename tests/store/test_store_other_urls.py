"""The library's twin of the CLI's ``--db`` rule: a URL that is not PostgreSQL's, given to
:func:`open_store`, :func:`upgrade_store` or :class:`Store`, is refused without being shown (it may
hold a password). It was taken for a SQLite path and echoed whole ("cannot open the store
mysql:/u:Secr3tPw@h/db: the folder ... does not exist")."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from uws_adapter.store import Store, StoreError, open_store, upgrade_store

SECRET = "Secr3tPw"


@pytest.mark.parametrize(
    "url", [f"mysql://u:{SECRET}@h/db", f"sqlite:///tmp/{SECRET}/x.db"], ids=["mysql", "sqlalchemy"]
)
@pytest.mark.parametrize("opening", [open_store, upgrade_store, Store], ids=["open_store", "upgrade_store", "Store"])
def test_another_kind_of_url_is_refused_and_never_shown(
    opening: Callable[[str], Any], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path like "mysql:/u:..." would be made here
    with pytest.raises(StoreError) as caught:
        opening(url)
    assert SECRET not in str(caught.value)
    assert "only postgresql:// URLs are" in str(caught.value)
    assert not any(tmp_path.iterdir())  # no file made for it
