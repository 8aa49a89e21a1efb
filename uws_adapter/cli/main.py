"""The ``uws-adapter`` command line.

Every failure prints one line on stderr and exits non-zero (2 for bad input, 1 for anything else);
set ``UWS_ADAPTER_DEBUG=1`` to see the traceback of an unexpected failure. The commands live in
:mod:`uws_adapter.cli.provision` (envelope, rest-body, parse, restore, suspend),
:mod:`uws_adapter.cli.services` (emulator, receiver, bridge) and :mod:`uws_adapter.cli.tracking`
(status, callbacks, wait, demo).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Optional, Sequence

from uws_adapter import __version__
from uws_adapter.cli import db as cli_db
from uws_adapter.cli import provision as cli_provision
from uws_adapter.cli import services as cli_services
from uws_adapter.cli import tracking as cli_tracking
from uws_adapter.errors import DocumentError, InputError, UwsAdapterError

PROG = "uws-adapter"
EXIT_INPUT = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not usage text plus a message."""

    def error(self, message: str) -> NoReturn:
        raise InputError(self.prog, message, f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Verizon ThingSpace UWS SOAP and REST provisioning adapter.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for module in (cli_provision, cli_services, cli_tracking, cli_db):
        module.add_commands(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
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
