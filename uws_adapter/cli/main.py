"""The ``uws-adapter`` command line.

Every failure prints one line on stderr and exits non-zero (2 for bad input, 1 for anything else);
set ``UWS_ADAPTER_DEBUG=1`` to see the traceback of an unexpected failure. The commands live in
:mod:`uws_adapter.cli.provision` (envelope, rest-body, parse, restore, suspend),
:mod:`uws_adapter.cli.services` (emulator, receiver, bridge), :mod:`uws_adapter.cli.tracking`
(status, callbacks, wait, demo) and :mod:`uws_adapter.cli.listeners` (listeners register, list,
remove).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn, Optional, Sequence

from uws_adapter import __version__
from uws_adapter.cli import db as cli_db
from uws_adapter.cli import dead_letters as cli_dead_letters
from uws_adapter.cli import doctor as cli_doctor
from uws_adapter.cli import listeners as cli_listeners
from uws_adapter.cli import provision as cli_provision
from uws_adapter.cli import services as cli_services
from uws_adapter.cli import tracking as cli_tracking
from uws_adapter.cli import wsdl as cli_wsdl
from uws_adapter.cli.options import HelpFormatter, help_with_default, resolve_defaults
from uws_adapter.errors import DocumentError, InputError, UwsAdapterError
from uws_adapter.logs import add_logging_options, configure_from_options

PROG = "uws-adapter"
EXIT_INPUT = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not usage text plus a message; and every command's
    help goes through the one formatter (cli/options.py), whatever a command asks for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # The line already starts with "uws-adapter: error:"; name the command, not the program again.
        command = self.prog[len(PROG) :].strip() or "arguments"
        raise InputError(command, message, f"see '{self.prog} --help'")


def _finish(parser: argparse.ArgumentParser) -> None:
    """Every command has a description, and every command that runs takes --log-level and
    --log-format (nested commands, as rest-body restore, included)."""
    leaf = True
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            leaf = False
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None and helps.get(name):
                    sub.description = str(helps[name])[:1].upper() + str(helps[name])[1:] + "."
                _finish(sub)
    if leaf and parser.prog != PROG:
        add_logging_options(parser)
    for option in parser._actions:
        # Written into the help (not only when printing), so that the generated reference says it too.
        option.help = help_with_default(option)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Verizon ThingSpace UWS SOAP and REST provisioning adapter.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for module in (
        cli_provision,
        cli_services,
        cli_tracking,
        cli_db,
        cli_dead_letters,
        cli_listeners,
        cli_wsdl,
        cli_doctor,
    ):
        module.add_commands(commands)
    _finish(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:  # a bare call: the usage and the commands, once, then exit 2
        sys.stderr.write(build_parser().format_help())
        return EXIT_INPUT
    try:
        args = build_parser().parse_args(arguments)
        resolve_defaults(args)
        configure_from_options(args)
        status: int = args.run(args)
        return status
    except InputError as exc:
        _say(f"error: {exc}")
        return EXIT_INPUT
    except DocumentError as exc:
        _say(f"error: {exc}")
        return EXIT_INPUT
    except UwsAdapterError as exc:
        _say(f"error: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing useful is left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:  # the promise: no traceback unless asked for
        if os.environ.get("UWS_ADAPTER_DEBUG"):
            raise
        _say(f"unexpected {type(exc).__name__}: {exc} (set UWS_ADAPTER_DEBUG=1 for a traceback)")
        return EXIT_FAILURE


def _say(line: str) -> None:
    sys.stderr.write(f"{PROG}: {' '.join(line.split())}\n")
