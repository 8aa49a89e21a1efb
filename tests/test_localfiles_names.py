"""A URL given where a file's path is wanted (``--devices-file``, ``--config``, ``parse FILE``):
the one line that says it cannot be read shows its user and password as ``***``. They were
echoed whole ("cannot read https:/u:Secr3tPw@h/d.csv")."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from uws_adapter.cli.main import main

SECRET = "Secr3tPw"
URL = f"https://u:{SECRET}@h.example/d.csv?x=1"


@pytest.mark.parametrize(
    "command",
    [["suspend", "--devices-file", URL], ["receiver", "--config", URL], ["parse", URL],
     ["emulator", "--devices-file", URL]],
    ids=lambda c: " ".join(c[:2]),
)  # fmt: skip
def test_a_url_as_a_file_is_not_shown_with_its_password(
    command: List[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert SECRET not in err
    assert "cannot read https://***@h.example/d.csv" in err


@pytest.mark.parametrize("password", ["Secr/3tPw", "Xq7/Zk8?Wv5#Jp6", "Qz9@Kw7/Jm4"])
def test_a_password_typed_unescaped_is_not_shown_either(
    password: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "/" in a password typed raw ends the authority for a URL parser; the password still goes.
    monkeypatch.chdir(tmp_path)
    assert main(["parse", f"https://u:{password}@h.example/d.csv"]) == 2
    err = capsys.readouterr().err
    for part in password.replace("@", "/").replace("?", "/").replace("#", "/").split("/"):
        assert part not in err, err
    assert "cannot read https://***@h.example/d.csv" in err
