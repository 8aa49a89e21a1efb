"""A pytest plugin: no secret the tests use may reach a log record, a file the suite leaves in its
temporary folders, or a test's captured output. It watches the whole session and, at its end,
fails the run (exit status 1) naming each place a secret was found.

- **Secrets**: every string constant of a loaded test module (tests/ and its helpers) whose name
  holds PASSWORD, SECRET or TOKEN (``LEGACY_PASSWORD``, ``CLIENT_SECRET``; tuples of them too, as
  ``SECRETS``), but not names of paths, URLs or headers (``TOKEN_PATH``), plus :data:`EXPLICIT`
  (the command line's default logins and secrets passed to subprocesses). Values shorter than
  :data:`MIN_LENGTH` are left out: they would be found everywhere.
- **Log records**: a handler on the root logger takes every record (the ``uws_adapter`` logger is at
  DEBUG for the session, so the wire log of every client exchange is seen); its message, exception
  and stack are searched.
- **Files**: everything under the session's basetemp (SQLite databases, WAL files, logs, whatever a
  service wrote), in UTF-8, UTF-16 and UTF-32 (both byte orders); but not settings files
  (:data:`INPUT_SUFFIXES`): they hold secrets by design, and the tests write them as input.
- **Output**: every section of every test report (captured stdout, stderr and log), and the
  message of every warning the tests raise.

A test that shows a secret on purpose (``parse --reveal-password``, a settings file it writes
itself) is marked ``@pytest.mark.shows_secrets``: its own records, output and ``tmp_path`` are
not searched. Everything else is. ``-p no:secret_scan`` turns the plugin off.

Not seen: what subprocesses log to pipes a test reads and does not print (their files under
basetemp are searched), and output a test took with ``capsys.readouterr()``.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Generator, Iterable, List, Optional, Set, Tuple

import pytest

#: Secrets no test module names as a constant: the CLI's default logins, and logins passed on command lines.
EXPLICIT: Dict[str, str] = {
    "uws-password": "the emulator's default password (--user)",
    "ts-secret": "the emulator's default client secret (--client)",
    "legacy-pw": "the legacy login of tests/serving/test_connections.py",
}
MIN_LENGTH = 6
#: Files a user (here: a test) writes for the package to read, secrets included; the package never writes them.
INPUT_SUFFIXES = (".ini", ".env")
_WORDS = ("PASSWORD", "SECRET", "TOKEN")
_NOT_SECRET_SUFFIXES = ("_PATH", "_URL", "_HEADER", "_NAME", "_FILE", "_VARIABLE", "_PATTERN", "_FIELD")
_ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
_TESTS = Path(__file__).resolve().parent
_SHOWN_FINDINGS = 40


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "shows_secrets: the test shows a secret on purpose; the secret scan skips its own output"
    )
    config.pluginmanager.register(SecretScan(), "secret-scan-session")


@pytest.fixture(scope="session", autouse=True)
def _secret_scan_basetemp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tells the scan where the session's temporary folders are."""
    scan = request.config.pluginmanager.get_plugin("secret-scan-session")
    if isinstance(scan, SecretScan):
        scan.basetemp = tmp_path_factory.getbasetemp()


def collect_secrets(modules: Iterable[Any]) -> Dict[str, str]:
    """Secret value -> where it is defined, from the constants of ``modules`` (see the module docstring)."""
    found: Dict[str, str] = {}
    for module in modules:
        where = Path(getattr(module, "__file__", "") or "").name
        for name, value in sorted(vars(module).items()):
            if (
                not name.isupper()
                or name.startswith("_")
                or not any(word in name for word in _WORDS)
                or name.endswith(_NOT_SECRET_SUFFIXES)
            ):
                continue
            values = value if isinstance(value, (tuple, list, frozenset, set)) else (value,)
            for one in values:
                if isinstance(one, str) and len(one) >= MIN_LENGTH:
                    found.setdefault(one, f"{name} ({where})")
    for value, where in EXPLICIT.items():
        found.setdefault(value, where)
    return found


def _excerpt(text: str, secret: str, label: str) -> str:
    at = text.find(secret)
    start, end = max(0, at - 60), min(len(text), at + len(secret) + 60)
    shown = text[start:end].replace(secret, f"<{label}>")
    return " ".join(shown.split())


class _Capture(logging.Handler):
    def __init__(self, scan: SecretScan) -> None:
        super().__init__(logging.DEBUG)
        self.scan = scan

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: search what it holds
            text = f"{record.msg!r} {record.args!r}"
        formatter = logging.Formatter()
        if record.exc_info:
            text += "\n" + formatter.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + formatter.formatStack(record.stack_info)
        self.scan.saw_record(record.name, text)


class SecretScan:
    """The session's scan (one instance, registered by :func:`pytest_configure`)."""

    def __init__(self) -> None:
        self.secrets: Optional[Dict[str, str]] = None  # known once collection is done
        self.findings: Dict[Tuple[str, str], str] = {}  # (place, secret's name) -> excerpt
        self.current: Optional[str] = None  # the test running now
        self.exempt: Set[str] = set()
        self.exempt_dirs: List[Path] = []
        self.basetemp: Optional[Path] = None
        self.pending: List[Tuple[str, str, Optional[str]]] = []  # records seen before the secrets were known
        self.counts = {"records": 0, "files": 0, "sections": 0}
        self.workers_secrets = 0  # under pytest-xdist, the controller knows the secrets only by count
        self._lock = threading.Lock()
        self._handler = _Capture(self)
        self._level = logging.NOTSET

    # Set-up and tear-down of the session's logging --------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        package = logging.getLogger("uws_adapter")
        self._level = package.level
        package.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(self._handler)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # The collected test modules, and the helpers beside this plugin (conftest, servers, ...).
        modules = {id(m): m for m in (getattr(item, "module", None) for item in session.items) if m is not None}
        for module in list(sys.modules.values()):
            where = Path(getattr(module, "__file__", None) or "/").resolve()
            if _TESTS in where.parents and module is not sys.modules[__name__]:
                modules[id(module)] = module
        self.secrets = collect_secrets(modules.values())
        self.exempt = {item.nodeid for item in session.items if item.get_closest_marker("shows_secrets")}
        with self._lock:
            pending, self.pending = self.pending, []
        for logger, text, test in pending:
            self._search(f"log record of {logger} ({test or 'collection'})", text)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, None]:
        self.current = item.nodeid
        try:
            yield
        finally:
            self.current = None
            self._restore_logging()

    def pytest_runtest_call(self, item: pytest.Item) -> None:
        if item.nodeid in self.exempt:
            tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
            if isinstance(tmp_path, Path):
                self.exempt_dirs.append(tmp_path.resolve())

    def _restore_logging(self) -> None:
        """Undo what a test's in-process run of the command line configured (uws_adapter.logs), so
        that the next test is seen at DEBUG again."""
        from uws_adapter.logs import StderrHandler

        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
            root.removeHandler(handler)
        logging.getLogger("uws_adapter").setLevel(logging.DEBUG)
        if self._handler not in root.handlers:
            root.addHandler(self._handler)

    # What is searched --------------------------------------------------------------------------------

    def saw_record(self, logger: str, text: str) -> None:
        test = self.current
        if test is not None and test in self.exempt:
            return
        with self._lock:
            self.counts["records"] += 1
            if self.secrets is None:
                self.pending.append((logger, text, test))
                return
        self._search(f"log record of {logger} ({test or 'outside any test'})", text)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid in self.exempt or self.secrets is None:
            return  # (no secrets known: pytest-xdist's controller, whose workers search their reports)
        for title, content in report.sections:
            self.counts["sections"] += 1
            self._search(f"{title} of {report.nodeid}", content)

    def pytest_warning_recorded(self, warning_message: Any, nodeid: str) -> None:
        if nodeid not in self.exempt:
            self._search(f"warning in {nodeid or 'the session'}", str(warning_message.message))

    def _search(self, place: str, text: str) -> None:
        for secret, name in (self.secrets or {}).items():
            if secret in text:
                with self._lock:
                    self.findings.setdefault((place, name), _excerpt(text, secret, name))

    def _search_files(self) -> None:
        if self.basetemp is None or not self.basetemp.is_dir() or not self.secrets:
            return
        patterns = [(name, encoding, secret.encode(encoding)) for secret, name in self.secrets.items()
                    for encoding in _ENCODINGS]  # fmt: skip
        for path in sorted(self.basetemp.rglob("*")):
            if path.is_symlink() or not path.is_file() or path.suffix in INPUT_SUFFIXES:
                continue
            resolved = path.resolve()
            if any(folder == resolved or folder in resolved.parents for folder in self.exempt_dirs):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            self.counts["files"] += 1
            for name, encoding, pattern in patterns:
                at = data.find(pattern)
                if at >= 0:
                    shown = data[max(0, at - 60) : at + len(pattern) + 60].replace(pattern, f"<{name}>".encode())
                    place = f"file {path.relative_to(self.basetemp)} ({encoding})"
                    self.findings.setdefault((place, name), repr(shown)[2:-1])

    # The verdict -------------------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        logging.getLogger("uws_adapter").setLevel(self._level)
        self._search_files()
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # a pytest-xdist worker: the controller gives the verdict
            workeroutput["secret_scan"] = {
                "secrets": len(self.secrets or {}),
                "counts": dict(self.counts),
                "findings": [[place, name, excerpt] for (place, name), excerpt in self.findings.items()],
            }
        if self.findings and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """pytest-xdist's controller: a worker's findings and counts become the session's."""
        output = getattr(node, "workeroutput", {}).get("secret_scan")
        if not output:
            return
        with self._lock:
            self.workers_secrets = max(self.workers_secrets, int(output["secrets"]))
            for key, count in output["counts"].items():
                self.counts[key] += int(count)
            for place, name, excerpt in output["findings"]:
                self.findings.setdefault((f"{place} [{node.gateway.id}]", name), excerpt)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        secrets = max(len(self.secrets or {}), self.workers_secrets)
        searched = (
            f"{secrets} secrets in {self.counts['records']:,} log records, {self.counts['sections']:,} captured "
            f"outputs and {self.counts['files']:,} files"
        )
        if not self.findings:
            terminalreporter.write_line(f"secret scan: none of {searched}")
            return
        terminalreporter.section("secret scan", sep="=", red=True, bold=True)
        terminalreporter.write_line(f"{len(self.findings)} finding(s) of {searched}:")
        for (place, name), excerpt in sorted(self.findings.items())[:_SHOWN_FINDINGS]:
            terminalreporter.write_line(f"- {name} in {place}: ...{excerpt}...")
        if len(self.findings) > _SHOWN_FINDINGS:
            terminalreporter.write_line(f"... and {len(self.findings) - _SHOWN_FINDINGS} more")
