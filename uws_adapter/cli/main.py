"""The ``uws-adapter`` command line.

Every failure prints one line on stderr and exits non-zero (2 for bad input, 1 for anything else);
set ``UWS_ADAPTER_DEBUG=1`` to see the traceback of an unexpected failure.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from typing import Any, Dict, NoReturn, Optional, Sequence, Tuple, cast

from uws_adapter.cli.options import HelpFormatter, help_with_default, resolve_defaults
from uws_adapter.errors import DocumentError, InputError, ServiceFault, UwsAdapterError, fault_fix
from uws_adapter.logs import add_logging_options, configure_from_options

PROG = "uws-adapter"
EXIT_INPUT = 2
EXIT_FAILURE = 1

#: Every command by the module of ``uws_adapter.cli`` that builds its parser (the module's
#: ``COMMANDS`` maps the name to a function that fills the parser in), with its help, which the
#: top-level ``--help`` lists in this order. A module is imported only when one of its commands is
#: chosen (or the whole parser is built, for the reference), so that ``status`` does not import zeep
#: and the servers: the command line starts in a fraction of the time.
COMMANDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "provision": (
        ("envelope", "print a ChangeDeviceState SOAP envelope"),
        ("rest-body", "print the REST JSON body of a restore or suspend"),
        ("parse", "parse a callback (UWS SOAP or REST JSON) and print its JSON form"),
        ("restore", "restore devices (UWS or REST) and print the RequestId"),
        ("suspend", "suspend devices (UWS or REST) and print the RequestId"),
    ),
    "services": (
        ("emulator", "run the carrier emulator (UWS SOAP and REST) on loopback"),
        ("receiver", "receive callbacks into a store (needs the receiver extra: waitress, uvicorn)"),
        ("bridge", "serve the UWS SOAP API to legacy systems and carry it out on the REST API"),
    ),
    "tracking": (
        ("status", "where a request stands, from the store"),
        ("callbacks", "list stored callbacks"),
        ("wait", "wait until every listed device of a request has a callback (or an open-ended one settles)"),
        ("demo", "end to end on loopback: emulator, receiver, suspend and restore a few thousand devices"),
    ),
    "db": (("db", "the store's schema: upgrade it, or show its version"),),
    "dead_letters": (
        ("dead-letters", "list, show, export or purge the dead letters (refused documents, given-up relays)"),
    ),
    "listeners": (("listeners", "register, list and remove REST callback listeners"),),
    "wsdl": (("wsdl", "compare the WSDL we ship with the one a service publishes"),),
    "doctor": (
        ("doctor", "check URLs, TLS, logins, WSDL, callback listeners, store and clock before the first request"),
    ),
}


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

    def parse_args(self, args: Optional[Sequence[str]] = None, namespace: None = None) -> argparse.Namespace:  # type: ignore[override]
        # argparse reports a command's unknown option from the top-level parser ("arguments: ...;
        # see 'uws-adapter --help'"): report it from the command it was given to, with the
        # option it most resembles (--prot: did you mean --port?).
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            chosen = _chosen(self, parsed)
            chosen.error(f"unrecognized arguments: {' '.join(extras)}{_resembles(chosen, extras)}")
        return parsed


def _chosen(parser: argparse.ArgumentParser, parsed: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost command ``parsed`` chose (``listeners list``), else ``parser`` itself."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices.get(getattr(parsed, action.dest, None) or "")
            return parser if sub is None else _chosen(sub, parsed)
    return parser


def _resembles(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """The hint " (did you mean --port?)" for the first unknown option close to one of ``parser``'s, else ""."""
    options = [name for action in parser._actions for name in action.option_strings if name.startswith("--")]
    for extra in extras:
        if extra.startswith("--"):
            close = difflib.get_close_matches(extra.partition("=")[0], options, n=1)
            if close:
                return f" (did you mean {close[0]}?)"
    return ""


def _finish(parser: argparse.ArgumentParser) -> None:
    """Every command gets a description, and every command that runs --log-level and --log-format."""
    leaf = True
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            leaf = False
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None and helps.get(name):
                    sub.description = str(helps[name])[:1].upper() + str(helps[name])[1:] + "."
                if not isinstance(action, _Commands):  # the top level's are finished once built
                    _finish(sub)
    if leaf and parser.prog != PROG:
        add_logging_options(parser)
    for option in parser._actions:
        # Written into the help (not only when printing), so that the generated reference says it too.
        option.help = help_with_default(option)


class _Version(argparse._VersionAction):
    """``--version``, with the version looked up only when asked for (importlib.metadata is slow to import)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:  # fmt: skip
        from uws_adapter import __version__

        self.version = f"{PROG} {__version__}"
        super().__call__(parser, namespace, values, option_string)


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The top-level commands: each parser stays empty until its command is chosen, then its
    module (:data:`COMMANDS`) is imported and fills it in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules: Dict[str, str] = {}

    def build(self, name: str) -> None:
        module = self.modules.pop(name, None)
        if module is not None:
            sub = self.choices[name]
            importlib.import_module(f"uws_adapter.cli.{module}").COMMANDS[name](sub)
            _finish(sub)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:  # fmt: skip
        self.build(values[0])  # an unknown name is left to argparse's own message
        super().__call__(parser, namespace, values, option_string)


def build_parser(*, lazy: bool = False) -> argparse.ArgumentParser:
    """The command line's parser: every command built (for the reference and the tests), or with
    ``lazy`` only the one that is chosen (:data:`COMMANDS`)."""
    parser = _Parser(prog=PROG, description="Verizon ThingSpace UWS SOAP and REST provisioning adapter.")
    parser.add_argument("--version", action=_Version)
    commands = cast(
        _Commands, parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, action=_Commands)
    )
    commands.required = True
    for module, named in COMMANDS.items():
        for name, text in named:
            commands.add_parser(name, help=text)
            commands.modules[name] = module
    _finish(parser)
    if not lazy:
        for name in list(commands.modules):
            commands.build(name)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:  # a bare call: the usage and the commands, once, then exit 2
        sys.stderr.write(build_parser(lazy=True).format_help())
        return EXIT_INPUT
    try:
        args = build_parser(lazy=True).parse_args(arguments)
        resolve_defaults(args)
        configure_from_options(args)
        status: int = args.run(args)
        return status
    except UwsAdapterError as exc:
        fix = fault_fix(exc) if isinstance(exc, ServiceFault) else None
        _say(f"error: {exc}" + (f"; {fix}" if fix else ""))
        return EXIT_INPUT if isinstance(exc, (InputError, DocumentError)) else EXIT_FAILURE
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
