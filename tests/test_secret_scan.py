"""The secret scan (tests/secret_scan.py) run on a small suite of its own: what it finds, what it
names, and what a test marked ``shows_secrets`` may show."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from secret_scan import collect_secrets


def test_the_secret_scan_fails_a_run_that_leaks(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(
        textwrap.dedent(
            """
            import logging
            import pytest

            API_TOKEN = "Tok-Scan-Self-Test"
            TOKEN_PATH = "/not/a/secret"

            def test_logs_it():
                logging.getLogger("uws_adapter.wire").debug("sent %s", API_TOKEN)

            def test_stores_it_in_utf16(tmp_path):
                (tmp_path / "kept.bin").write_bytes(("x" + API_TOKEN).encode("utf-16"))

            def test_prints_it():
                print("token:", API_TOKEN)

            def test_warns_it():
                import warnings
                warnings.warn(f"token {API_TOKEN}", UserWarning)

            @pytest.mark.shows_secrets
            def test_reveals_it_on_purpose(tmp_path):
                print(API_TOKEN)
                logging.getLogger("uws_adapter.cli").info("revealed %s", API_TOKEN)
                (tmp_path / "settings.ini").write_text(API_TOKEN)

            def test_clean():
                logging.getLogger("uws_adapter.receiver").info("refused: wrong password")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "secret_scan", "--rootdir",
         str(tmp_path), "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_leaky.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    findings = [line for line in result.stdout.splitlines() if line.startswith("- API_TOKEN (test_leaky.py) in ")]
    assert any("in log record of uws_adapter.wire (test_leaky.py::test_logs_it)" in f for f in findings), findings
    assert any("in file test_stores_it_in_utf160/kept.bin (utf-16-le)" in f for f in findings), findings
    assert any("in Captured stdout call of test_leaky.py::test_prints_it" in f for f in findings), findings
    assert any("in warning in test_leaky.py::test_warns_it" in f for f in findings), findings
    assert not any("reveals_it_on_purpose" in f or "settings.ini" in f or "test_clean" in f for f in findings)
    report = result.stdout.partition(" secret scan ")[2]
    assert "Tok-Scan-Self-Test" not in report  # named, never shown (pytest's warnings summary shows it)
    assert "6 passed" in result.stdout


def test_secrets_are_constants_named_for_them() -> None:
    class Module:
        __file__ = "test_x.py"
        LEGACY_PASSWORD = "legacy-password"
        SECRETS = ("cs-Yt55-long", "tok-Wn42-long", "pw")
        TOKEN_PATH = "/api/ts/v1/oauth2/token"
        _PRIVATE_TOKEN = "not-collected"
        short_password = "lower-case names are not constants"
        PASSWORD = "pw"  # too short to search for

    found = collect_secrets([Module])
    assert {"legacy-password", "cs-Yt55-long", "tok-Wn42-long"} <= set(found)
    assert found["legacy-password"] == "LEGACY_PASSWORD (test_x.py)"
    assert not {"/api/ts/v1/oauth2/token", "not-collected", "pw", "lower-case names are not constants"} & set(found)
