"""A run's folders: those of dead runs are removed at the next start, live ones and others' kept."""

from __future__ import annotations

import os
from pathlib import Path

from uws_adapter.runfiles import remove_stale

PREFIX = "uws-test-run-"


def test_only_the_folders_of_dead_runs_are_removed(tmp_path: Path) -> None:
    dead, live = tmp_path / f"{PREFIX}{2**22 + 1}-a", tmp_path / f"{PREFIX}{os.getpid()}-b"
    # Not a pid int() and os.kill() take: "2" as a superscript, and one past a C long. Each ended
    # the start of the next run (a raw ValueError, an OverflowError); now named like an older
    # release's folder, removed only once a day old.
    odd = [tmp_path / f"{PREFIX}\u00b2-c", tmp_path / f"{PREFIX}{'9' * 30}-d"]
    for folder in (dead, live, *odd):
        folder.mkdir()
    assert remove_stale(PREFIX, str(tmp_path)) == [dead]
    assert all(folder.is_dir() for folder in (live, *odd))
