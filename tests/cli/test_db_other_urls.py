"""``--db`` given a URL that is not PostgreSQL's (``mysql://user:password@host/db``, SQLAlchemy's
``sqlite:///path``): refused as bad input naming --db, and the URL never shown, since it may hold a
password. Every command echoed it whole ("no store at mysql://u:Secr3tPw@h/db", "the folder of the
database ... does not exist"), and doctor printed it in its store check."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from uws_adapter.cli.main import main
from uws_adapter.config import load_settings
from uws_adapter.doctor import FAIL, DoctorOptions, check_store
from uws_adapter.store import describe_store

SECRET = "Secr3tPw"
URLS = [f"mysql://u:{SECRET}@h/db", f"sqlite:///tmp/{SECRET}/x.db"]
COMMANDS = [
    ["status", "x"], ["callbacks"], ["wait", "x"], ["db", "version"], ["db", "upgrade", "--create"],
    ["dead-letters", "list"], ["receiver", "--port", "0", "--allow-anonymous"],
    ["suspend", "--device", "IMEI:350000000000000"],
]  # fmt: skip


@pytest.mark.parametrize("url", URLS, ids=["mysql", "sqlalchemy-sqlite"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_another_kind_of_url_is_bad_input_and_never_shown(
    command: List[str], url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {"UWS_ENDPOINT": "http://127.0.0.1:9/api/v2", "UWS_USERNAME": "u", "UWS_PASSWORD": "p"}.items():
        monkeypatch.setenv(name, value)
    assert main([*command, "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert SECRET not in err
    assert f"--db: a {url.partition(':')[0]}:// URL (not shown: it may hold a password)" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", URLS, ids=["mysql", "sqlalchemy-sqlite"])
def test_doctor_and_the_store_description_never_show_it(url: str) -> None:
    assert SECRET not in describe_store(url)
    check = check_store(DoctorOptions(load_settings(environ={}), db=url))
    assert check.status == FAIL
    assert SECRET not in repr(check)
    assert "--create" not in check.fix
