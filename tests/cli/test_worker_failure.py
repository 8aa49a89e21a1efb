"""A uvicorn worker of ``uws-adapter receiver --workers N`` that cannot build its receiver (its store
cannot be opened: the database went away between the command's own check and the worker's start)
is said once, in one line, and the command exits 1. Each worker printed a traceback, and uvicorn
started it again, and again: the command never ended.

The failure is made in the workers only, by a ``sitecustomize`` on their path that makes the
store's opening fail there (the command line's own opening, the check before the workers, is the
real one): a database that goes away at that instant cannot be arranged without a race."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Loaded by every Python process started with it on PYTHONPATH: only a worker of the command line's
#: fails (the command line puts the settings file's path in its environment once it has started).
SITECUSTOMIZE = """
import os
if os.environ.get("UWS_ADAPTER_WORKER_SETTINGS"):
    import uws_adapter.store as store
    from uws_adapter.errors import StoreError

    def open_store(location, **options):
        raise StoreError(f"cannot open the store {location}: disk I/O error")

    store.open_store = open_store
    import uws_adapter.receiver.wsgi as wsgi
    wsgi.open_store = open_store
"""


def test_a_worker_that_cannot_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UWS_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environment.get("PYTHONPATH")]))
    db = tmp_path / "cb.db"
    result = subprocess.run(
        [sys.executable, "-m", "uws_adapter", "receiver", "--server", "uvicorn", "--workers", "2", "--port", "0",
         "--allow-anonymous", "--db", str(db)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "allow_anonymous" not in line]  # the start's warning
    assert errors == [
        f"uws-adapter: error: receiver: a worker could not start: cannot open the store {db}: disk I/O error"
    ]
    assert "Traceback" not in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("uws-adapter-")]
