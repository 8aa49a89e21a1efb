"""Write docs/cli-reference.md from the CLI's own argparse parsers, so the reference cannot drift.

    python docs/gen_cli.py            # rewrite docs/cli-reference.md
    python docs/gen_cli.py --check    # exit 1 (with a diff) if the committed page differs

``tests/test_docs.py`` runs the check, so a parser change without a regenerated page fails the suite.
The page is built from the parser objects (options, metavars, groups, help texts, defaults), never
from ``--help`` output, whose wrapping depends on the terminal.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

__all__ = ["PAGE", "main", "render"]

PAGE = Path(__file__).resolve().parent / "cli-reference.md"
#: usage lines are wrapped at this width, whatever the terminal
USAGE_WIDTH = 100
#: environment variables that may feed a default; cleared while the parser is built, so the page is
#: the same on every machine
_ENV_PREFIXES = ("UWS_", "THINGSPACE_")


def _escape(text: str) -> str:
    """Help text as Markdown text inside a table cell: nothing in it is markup."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*_[]|":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


def _help_text(action: argparse.Action, prog: str) -> str:
    """The help string as argparse would print it (``%(default)s`` and friends filled in)."""
    if not action.help:
        return "one of: " + ", ".join(map(str, action.choices)) if action.choices else ""
    params: Dict[str, object] = dict(vars(action), prog=prog)
    for name in list(params):
        if params[name] is argparse.SUPPRESS:
            del params[name]
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(choice) for choice in action.choices or ())
    return str(action.help) % params


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _invocation(action: argparse.Action) -> str:
    if not action.option_strings:
        if action.metavar is not None:
            return str(action.metavar)
        return "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar
    if metavar is None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return ", ".join(f"{option} {metavar}" for option in action.option_strings)


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[Tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: str(choice.help or "") for choice in action._choices_actions}
            seen: List[int] = []
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # an alias names the same parser again
                    seen.append(id(sub))
                    yield name, helps.get(name, ""), sub


def _section(parser: argparse.ArgumentParser, depth: int, out: List[str]) -> None:
    out += [f"{'#' * depth} `{parser.prog}`", ""]
    if parser.description:
        out += [_escape(parser.description), ""]
    out += ["```text", _usage(parser), "```", ""]
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        ]
        if not actions:
            continue
        # Python 3.9's argparse titles the optionals "optional arguments", 3.10's "options": one page for both.
        title = "options" if group is parser._optionals else group.title or "options"
        out += [f"**{_escape(title)}**", "", "| | |", "|---|---|"]
        for action in actions:
            out.append(f"| `{_invocation(action)}` | {_escape(_help_text(action, parser.prog))} |")
        out.append("")
    subs = list(_subcommands(parser))
    if subs:
        out += ["| command | |", "|---|---|"]
        for name, text, sub in subs:
            anchor = sub.prog.replace(" ", "-")
            out.append(f"| [`{name}`](#{anchor}) | {_escape(text)} |")
        out.append("")
        for _name, _text, sub in subs:
            _section(sub, depth + 1, out)


def render(parser: Optional[argparse.ArgumentParser] = None) -> str:
    """The whole page for ``parser`` (default: the CLI's, built with no UWS_* / THINGSPACE_* in the
    environment)."""
    if parser is None:
        saved = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
        for key in saved:
            del os.environ[key]
        try:
            from uws_adapter.cli.main import build_parser

            parser = build_parser()
        finally:
            os.environ.update(saved)
    out = [
        "# CLI reference",
        "",
        "<!-- Generated by docs/gen_cli.py from the argparse parsers; do not edit by hand. -->",
        "",
        "Every command and option of `uws-adapter`, generated from the parsers themselves (the same",
        "text as `--help`). A default read from the environment is named (`$UWS_...`), and a secret's",
        "is never shown. For what the commands do together, see [the command-line guide](cli.md).",
        "",
    ]
    _section(parser, 2, out)
    return "\n".join(out).rstrip() + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args == ["--check"]:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(PAGE), "generated", lineterm="")
        sys.stderr.write("\n".join(diff) + "\n")
        sys.stderr.write(f"{PAGE.name} is out of date: run python docs/gen_cli.py\n")
        return 1
    if args:
        sys.stderr.write("usage: python docs/gen_cli.py [--check]\n")
        return 2
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
