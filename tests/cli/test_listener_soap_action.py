"""``--listener-soap-action`` of the emulator and the bridge (issue 20, item 23): a value a header
cannot hold, or the option without the listener it is for, is one line on stderr and exit status 2.
What the value does on the wire: tests/callbacks/test_callback_soap_action.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import List

import pytest
from clirun import run_in_process

REST = {
    "THINGSPACE_CLIENT_ID": "ts-client", "THINGSPACE_CLIENT_SECRET": "ts-secret", "UWS_USERNAME": "uws-user",
    "UWS_PASSWORD": "uws-password", "UWS_BRIDGE_LEGACY_LOGIN": "legacy:legacy-password",
    "UWS_CALLBACK_USERNAME": "cb-user", "UWS_CALLBACK_PASSWORD": "cb-secret-4711",
}  # fmt: skip


def run(tmp_path: Path, args: List[str]) -> subprocess.CompletedProcess[str]:
    """The service's start, in this process (tests/clirun.py): each of these is refused before it serves."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "THINGSPACE_"))}
    return run_in_process(args, tmp_path, {**environment, **REST})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["emulator", "--listener", "http://127.0.0.1:9/", "--listener-soap-action", 'a"b'],
         "--listener-soap-action: 'a\"b' has quotes, control or non-ASCII characters"),
        (["emulator", "--listener-soap-action", "urn:x"], "--listener-soap-action: is for callbacks to --listener"),
        (["bridge", "--db", "b.db", "--legacy-listener", "http://127.0.0.1:9/", "--listener-soap-action", "caf\u00e9"],
         "--listener-soap-action: 'caf\u00e9' has quotes, control or non-ASCII characters"),
        (["bridge", "--db", "b.db", "--listener-soap-action", "urn:x"],
         "--listener-soap-action: is for callbacks to --legacy-listener"),
    ],
    ids=["emulator-bad-value", "emulator-no-listener", "bridge-bad-value", "bridge-no-listener"],
)  # fmt: skip
def test_refused_in_one_line(tmp_path: Path, args: List[str], message: str) -> None:
    result = run(tmp_path, args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "b.db").exists()  # refused before anything was created
