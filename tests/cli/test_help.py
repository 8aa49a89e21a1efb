"""Every command's --help, with every environment variable the package reads set to a secret-looking
value: no value of the environment ever appears (issue 20 item 1: `wait --help` printed
$UWS_CALLBACK_DB with its PostgreSQL password), and every command goes through the one formatter."""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import subprocess
import sys
from contextlib import redirect_stdout
from typing import Dict, Iterator, List, Tuple

import pytest

from uws_adapter.cli.main import COMMANDS as COMMAND_TABLE
from uws_adapter.cli.main import build_parser, main
from uws_adapter.cli.options import HelpFormatter
from uws_adapter.config import OPTIONS as CLIENT_OPTIONS
from uws_adapter.logs import FORMAT_VARIABLE, LEVEL_VARIABLE
from uws_adapter.settings.receiver import ReceiverSettings
from uws_adapter.settings.services import BridgeSettings, EmulatorSettings
from uws_adapter.settings.source import CONFIG_VARIABLE


def _commands(parser: argparse.ArgumentParser, prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[str, ...]]:
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not children:
        yield prefix
    for action in children:
        for name, sub in action.choices.items():
            yield from _commands(sub, (*prefix, name))


COMMANDS = sorted(_commands(build_parser()))


def _variables() -> Dict[str, str]:
    """Every variable a settings table names, and the others the CLI reads, each with a value
    that no help text could contain by chance."""
    names = {o.variable for o in CLIENT_OPTIONS if o.variable}
    for settings in (ReceiverSettings, BridgeSettings, EmulatorSettings):
        names |= {o.variable for o in settings.OPTIONS if o.variable}
    names |= {CONFIG_VARIABLE, LEVEL_VARIABLE, FORMAT_VARIABLE}
    values = {name: f"s3cret-{name.lower().replace('_', '-')}" for name in sorted(names)}
    values["UWS_CALLBACK_DB"] = "postgresql://uws:pg-pa55word@db.internal:5432/uws"
    values["UWS_BRIDGE_DB"] = "postgresql://bridge:bridge-pa55word@db.internal/bridge"
    return values


def test_the_commands_are_found() -> None:
    flat = {" ".join(c) for c in COMMANDS}
    assert {"wait", "receiver", "bridge", "emulator", "restore", "listeners register", "db upgrade"} <= flat


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help_never_shows_an_environment_value(command: Tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    values = _variables()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as ended:
        main([*command, "--help"])
    assert ended.value.code == 0
    text = out.getvalue()
    assert text.startswith(f"usage: uws-adapter {' '.join(command)}")
    leaked: List[str] = [name for name, value in values.items() if value in text]
    assert leaked == [], f"--help shows the value of {leaked}"
    for fragment in ("pa55word", "s3cret-", "db.internal"):
        assert fragment not in text


def test_every_command_uses_the_one_formatter() -> None:
    def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)

    assert {parser.formatter_class for parser in walk(build_parser())} == {HelpFormatter}


@pytest.mark.parametrize(
    ("command", "shown"),
    [(["wait"], "(default: $UWS_CALLBACK_DB or callbacks.db)"), (["receiver"], "(default: 8081)"),
     (["receiver"], "(default: $UWS_CALLBACK_USERNAME)"), (["bridge"], "(default: $UWS_BRIDGE_DB or bridge.db)"),
     (["receiver"], "(or $UWS_CALLBACK_ALLOW_ANONYMOUS=1)"), (["status"], "(default: $UWS_ADAPTER_LOG_LEVEL, else info)")],
    ids=["wait-db", "receiver-port", "receiver-username", "bridge-db", "receiver-anonymous", "status-log-level"],
)  # fmt: skip
def test_help_names_where_a_default_comes_from(command: List[str], shown: str) -> None:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        main([*command, "--help"])
    assert shown in " ".join(out.getvalue().split())


def test_the_command_table_names_what_each_module_builds() -> None:
    for module, named in COMMAND_TABLE.items():
        names = [name for name, _help in named]
        assert list(importlib.import_module(f"uws_adapter.cli.{module}").COMMANDS) == names, module


def test_the_lazy_parser_lists_every_command_as_the_whole_one_does() -> None:
    assert build_parser(lazy=True).format_help() == build_parser().format_help()


def test_a_command_imports_only_its_own_module() -> None:
    """``--help`` imports no command's module, and ``status`` (the store) neither zeep, requests nor a
    server: a start of the command line stays cheap (a fresh interpreter, so this is a process)."""
    probe = (
        "import sys\nfrom uws_adapter.cli.main import main\n"
        "for argv in (['--help'], ['status', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "    print(sorted(m for m in sys.modules if m.startswith(('uws_adapter.cli.', 'zeep', 'requests', 'waitress',"
        " 'uvicorn', 'importlib.metadata')) and m.count('.') < 3), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    after_help, after_status = (ast.literal_eval(line) for line in done.stderr.splitlines()[-2:])
    assert after_help == ["uws_adapter.cli.main", "uws_adapter.cli.options"]
    assert after_status == ["uws_adapter.cli.db", "uws_adapter.cli.main", "uws_adapter.cli.options",
                            "uws_adapter.cli.tracking"]  # fmt: skip
