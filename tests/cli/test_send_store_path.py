"""``restore``/``suspend --db`` at a path where no store can be: refused as bad input naming --db
(exit 2), before a login or a request leaves, as the receiver and ``db upgrade`` refuse it; never
SQLite's "unable to open database file"."""

from __future__ import annotations

from pathlib import Path

import pytest

from uws_adapter.cli.main import main

#: Nothing listens on the discard port: had the command gone on to log in, it would say so (exit 1).
NOWHERE = {"UWS_ENDPOINT": "http://127.0.0.1:9/api/v2", "UWS_USERNAME": "u", "UWS_PASSWORD": "p"}


@pytest.mark.parametrize("action", ["suspend", "restore"])
@pytest.mark.parametrize(
    ("where", "said"),
    [("nope/c.db", "the folder of the database {db} does not exist"), ("", "{db} is a folder, not a database file")],
    ids=["missing folder", "a folder"],
)
def test_a_store_path_that_cannot_be_a_store_is_bad_input(
    action: str, where: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)
    db = str(tmp_path / where) if where else str(tmp_path)
    assert main([action, "--device", "IMEI:350000000000000", "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"uws-adapter: error: --db: {said.format(db=db)}; ")
    assert "Traceback" not in err
    assert not (tmp_path / "nope").exists()
