"""``uws-adapter dead-letters list|show|export|purge`` on both backends (the ``location`` fixture):
what an operator reads is redacted and escaped, the export is JSON lines, purges keep the total."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clirun import run_in_process
from pgserver import location  # noqa: F401 (a fixture)

from uws_adapter.cli.main import main
from uws_adapter.store import DeadLetterWrite, open_store

SECRET = "hunter2-dead-letter"
# A letter as an older release might have kept it: a password not yet blanked, a terminal escape.
HOSTILE = f"<CallbackRequest><Password>{SECRET}</Password><Comment>\x1b[2J\x07bell</Comment>\nline two".encode()


def _fill(location: str) -> None:
    with open_store(location) as store:
        store.apply(DeadLetterWrite(HOSTILE, "text/xml", "not well-formed\x1b[31m", max_total=None))
        store.apply(DeadLetterWrite(b'{"a": 1}', "application/json", "not a callback", max_total=None))
        store.apply(DeadLetterWrite(b"third", "text/plain", "refused", max_total=None))


def test_list_show_export_and_purge(location: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _fill(location)
    assert main(["dead-letters", "list", "--db", location]) == 0
    printed = capsys.readouterr()
    rows = printed.out.splitlines()
    assert [row.split("\t")[0] for row in rows] == ["1", "2", "3"]
    assert rows[0].split("\t")[2:] == ["text/xml", str(rows[0].split("\t")[3]), "not well-formed\\x1b[31m"]
    assert "3 shown" in printed.err
    assert "0 rotated out" in printed.err

    assert main(["dead-letters", "list", "--db", location, "--after", "1", "--limit", "1", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["reason"] == "not a callback"
    assert "body" not in json.loads(line)

    assert main(["dead-letters", "show", "1", "--db", location]) == 0
    shown = capsys.readouterr().out
    assert SECRET not in shown
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert "\\x1b[2J\\x07bell" in shown
    assert shown.endswith("line two\n")  # line breaks kept

    out = tmp_path / "letters.jsonl"
    assert main(["dead-letters", "export", "--db", location, "--out", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [letter["id"] for letter in exported] == [1, 2, 3]
    assert exported[1]["body"] == '{"a": 1}'
    assert SECRET not in out.read_text()
    assert main(["dead-letters", "export", "--db", location, "--out", str(out)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err

    assert main(["dead-letters", "purge", "--db", location, "--id", "1", "--id", "3"]) == 0
    assert "2 purged" in capsys.readouterr().out
    assert main(["dead-letters", "purge", "--db", location, "--before", "2000-01-01"]) == 0
    assert "0 purged" in capsys.readouterr().out
    with open_store(location) as store:
        [left] = store.dead_letters(bodies=True)
        assert store.dead_letter_totals().bytes == left.size
    assert main(["dead-letters", "purge", "--db", location, "--all"]) == 0
    assert "1 purged" in capsys.readouterr().out
    assert main(["dead-letters", "list", "--db", location]) == 0
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "0 shown; all of them count 0 bytes" in printed.err


def test_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "d.db")
    with open_store(db):
        pass
    for args, words in (
        (["show", "7"], "no dead letter 7"),
        (["purge"], "one of the arguments --id --before --all is required"),
        (["purge", "--before", "yesterday"], "not an ISO 8601 time"),
        (["list", "--limit", "0"], "--limit: 0 is out of range"),
        (["list", "--after", "99999999999999999999"], "--after: 99999999999999999999 is out of range"),
        (["list", "--limit", "99999999999999999999"], "--limit: 99999999999999999999 is out of range"),
        (["show", "99999999999999999999"], "ID: 99999999999999999999 is out of range"),
        (["show", "seven"], "ID: 'seven' is not a letter id"),
        (["purge", "--id", "1", "--id", "99999999999999999999"], "--id: 99999999999999999999 is out of range"),
        (["list", "--db", str(tmp_path / "missing.db")], "missing.db"),
    ):
        done = run_in_process(["dead-letters", *args, *(["--db", db] if "--db" not in args else [])], tmp_path,
                              os.environ)  # fmt: skip
        assert done.returncode != 0, args
        assert words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
