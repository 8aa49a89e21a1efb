"""How every command's options meet the settings: one help formatter, defaults that say where a
value would come from, and the options of a service handed to its settings object
(:mod:`uws_adapter.settings`) with the option's name as their origin.

No option's default is read from the environment when the parser is built: ``--help`` could print
it (a ``postgresql://`` URL with its password did). A :class:`Default` is resolved after parsing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar

from uws_adapter.errors import InputError
from uws_adapter.settings.source import CONFIG_VARIABLE, Loadable

__all__ = [
    "CONFIG_HELP", "Build", "Default", "HelpFormatter", "Verbs", "help_with_default", "load_from_options",
    "option_name", "parsed", "resolve_defaults", "settings_defaults",
]  # fmt: skip

T = TypeVar("T", bound=Loadable)
V = TypeVar("V")
#: What fills in a command's parser (its description, options and what it runs).
Build = Callable[[argparse.ArgumentParser], None]
#: ``--config``'s help, on every command that reads the settings file.
CONFIG_HELP = f"INI settings file (default: ${CONFIG_VARIABLE}); see docs/configuration.md"
#: Words that mark an option whose default is never shown, whatever it is.
SECRET_WORDS = ("password", "token", "secret", "login")


class Default:
    """An option's default: the environment ``variable`` (if any), else ``value``. Its text (what
    --help shows) names the variable, never what the variable holds."""

    def __init__(self, variable: Optional[str], value: Any = None) -> None:
        self.variable = variable
        self.value = value

    def __str__(self) -> str:
        shown = "" if self.value in (None, "", ()) else default_text(self.value)
        if self.variable:
            return f"${self.variable}, else {shown}" if shown else f"${self.variable}"
        return shown

    __repr__ = __str__

    def resolve(self, environ: Optional[Mapping[str, str]] = None) -> Any:
        env = os.environ if environ is None else environ
        return (env.get(self.variable) if self.variable else None) or self.value


def help_with_default(action: argparse.Action) -> Optional[str]:
    """The one rule for an option's help: it ends with its default, unless the help already says
    it, the option is secret, or it has none."""
    text = action.help
    default = action.default
    if (
        text == argparse.SUPPRESS
        or not action.option_strings
        or "default" in (text or "")
        or default in (None, False, [], (), argparse.SUPPRESS)
        or (not isinstance(default, Default) and any(word in action.dest for word in SECRET_WORDS))
        or str(default) == ""
    ):
        return text
    # Written out here, not left to argparse's %(default)s: 300.0 seconds reads as 300.
    return f"{text or ''} (default: {default_text(default).replace('%', '%%')})".strip()


def default_text(value: object) -> str:
    """A default as help shows it: a whole number of seconds without its ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """The one formatter of every command: :func:`help_with_default`."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        return help_with_default(action)


class Verbs:
    """What builds a command group (``db``, ``listeners``): its ``description`` and its required
    sub-commands, each declared by :meth:`verb` where its parser is built, listed in that order; the
    one chosen goes to ``dest``; ``common`` adds, after each verb's own options, those every verb takes."""

    def __init__(
        self, description: str, *, dest: str = "verb", metavar: str = "ACTION", common: Optional[Build] = None
    ) -> None:
        self.description = description
        self.dest = dest
        self.metavar = metavar
        self.common = common
        self._table: List[Tuple[str, str, Build]] = []

    def verb(self, name: str, text: str) -> Callable[[Build], Build]:
        """Declares the verb ``name``, listed with ``text``: a decorator of the function that builds it."""

        def declare(build: Build) -> Build:
            self._table.append((name, text, build))
            return build

        return declare

    def __call__(self, parser: argparse.ArgumentParser) -> None:
        parser.description = self.description
        actions = parser.add_subparsers(dest=self.dest, metavar=self.metavar, parser_class=type(parser))
        actions.required = True
        for name, text, build_verb in self._table:
            verb = actions.add_parser(name, help=text)
            build_verb(verb)
            if self.common is not None:
                self.common(verb)


def parsed(texts: Sequence[str], parse: Callable[[str], V], option: str) -> List[V]:
    """Each value given to ``option``, parsed; an error names the option."""
    values = []
    for text in texts:
        try:
            values.append(parse(text))
        except InputError as exc:
            raise exc.within(f"{option} ") from None
    return values


def option_name(dest: str) -> str:
    """The option a settings field is given with (``max_body`` -> ``--max-body``)."""
    return "--" + dest.replace("_", "-")


def settings_defaults(parser: argparse.ArgumentParser, settings: Type[Loadable]) -> None:
    """The defaults of ``parser``'s options that are ``settings``' fields, from its table: the
    environment variable and the field's default (a secret's never). The command's options are
    then handed to ``settings`` (:func:`load_from_options`)."""
    table = {option.name: option for option in settings.OPTIONS}
    defaults = {field.name: field.default for field in dataclasses.fields(settings)}  # type: ignore[arg-type]
    for action in parser._actions:
        option = table.get(action.dest)
        if option is None or not action.option_strings:
            continue
        value = None if option.secret else defaults.get(action.dest)
        if isinstance(action, (argparse._StoreTrueAction, argparse._AppendAction)):
            if option.variable and "$" not in (action.help or ""):
                action.help = f"{action.help or ''} (or ${option.variable}=1)".strip()
            action.default = None  # a flag given or not, a list given or not: the settings decide
            continue
        action.default = Default(option.variable, value)
    parser.set_defaults(settings_class=settings)


def resolve_defaults(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> None:
    """After parsing: each :class:`Default` left in ``args`` becomes its value - or None for a
    command with a settings object, which reads the environment itself (after the file)."""
    has_settings = getattr(args, "settings_class", None) is not None
    for name, value in vars(args).items():
        if isinstance(value, Default):
            setattr(args, name, None if has_settings else value.resolve(environ))


def load_from_options(settings: Type[T], args: argparse.Namespace, **extra: Any) -> T:
    """``settings`` from ``--config`` (else ``$UWS_ADAPTER_CONFIG``), the environment and the
    options given on the command line (a flag not given, an option left out: not given)."""
    values = {option.name: getattr(args, option.name, None) for option in settings.OPTIONS}
    given = {name: value for name, value in values.items() if value is not None and value is not False and value != []}
    given.update(extra)
    origins = {name: option_name(name) for name in given}
    return settings.load(getattr(args, "config", None), origins=origins, **given)
