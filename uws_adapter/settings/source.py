"""Where settings come from, in one place: an INI file, the environment and the command line.

A service's settings are a frozen dataclass with a table of :class:`Option` (field name, its
environment variable, its converter, whether it is secret). :func:`gather` reads the file's section,
then the environment, then the overrides (the command line), converting and checking each value
where it was written, so that an error names that place: ``config file F line N: [receiver] port``,
``UWS_CALLBACK_MAX_BODY`` or ``--port``. No error shows a value read from a file or the environment
unless it is known not to be secret, nor the text of a line that does not parse.

Standard library only: the receiver's worker processes import this.
"""

from __future__ import annotations

import configparser
import io
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

from uws_adapter.errors import InputError, shown
from uws_adapter.localfiles import cannot_read, open_to_read
from uws_adapter.waits import LONGEST_WAIT

__all__ = [
    "CONFIG_VARIABLE",
    "SECTIONS",
    "Convert",
    "Loadable",
    "Option",
    "flag",
    "gather",
    "names",
    "number",
    "read_file",
    "relocated",
    "text",
    "whole",
]

#: The environment variable that names the settings file when no --config is given.
CONFIG_VARIABLE = "UWS_ADAPTER_CONFIG"
#: The sections a settings file may have: one per service. Any other is refused (a misspelled
#: section would otherwise be ignored, and its settings with it).
SECTIONS = ("uws-adapter", "receiver", "bridge", "emulator")
#: The largest settings file read: it holds a few dozen settings.
MAX_FILE_CHARACTERS = 1024 * 1024
#: What starts an inline comment in the settings file, after whitespace: a value cannot hold
#: " ;" or " #" (put such a password in the environment instead).
INLINE_COMMENTS = (";", "#")
#: A converter: ``convert(value, origin)`` (see :class:`Option`).
Convert = Callable[[Any, str], Any]
T = TypeVar("T", bound="Loadable")


@dataclass(frozen=True)
class Option:
    """One setting: the dataclass field ``name``, the environment ``variable`` that sets it (None:
    file and command line only), ``convert(value, origin)`` (text from a file or the environment,
    or a value from the command line or code; raises :class:`InputError` naming ``origin``), and
    whether it is ``secret`` (never shown: not in a repr, an error or --help)."""

    name: str
    variable: Optional[str] = None
    convert: Callable[[Any, str], Any] = lambda value, origin: text(value, origin)
    secret: bool = False


def relocated(exc: InputError, origin: str, fix: Optional[str] = None) -> InputError:
    """``exc`` (raised by a check that names the setting) as written at ``origin`` (with ``fix``, if given)."""
    return InputError(origin, exc.problem, fix or exc.fix, code=exc.code)


# Converters: each takes text (a file, the environment) or a value (code, the command line). ---------


def text(value: Any, origin: str) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value or None
    raise InputError(origin, f"is a {type(value).__name__}, not text", "give text")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def flag(value: Any, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise InputError(origin, "is not a yes/no setting", "write 1 or 0 (true/false, yes/no)")


def _numeric(value: Any, origin: str, parse: Callable[[str], Any], kinds: Tuple[type, ...], what: str, fix: str) -> Any:
    """``value``, or the text ``value`` parsed by ``parse``: a number of ``kinds`` (never a bool,
    nor NaN), else the error that it is not ``what``."""
    found: Any = value
    if isinstance(value, str):
        try:
            found = parse(value.strip())
        except ValueError:
            found = None
    if isinstance(found, bool) or not isinstance(found, kinds) or found != found:
        raise InputError(origin, f"{shown(value)} is not {what}", fix)
    return found


def whole(low: int, high: int, what: str = "a whole number", fix: str = "") -> Convert:
    """An integer from ``low`` to ``high``; an error says the range."""
    fix = fix or f"give {low:,} to {high:,}"

    def convert(value: Any, origin: str) -> int:
        number_: int = _numeric(value, origin, lambda text: int(text.replace("_", "")), (int,), what, fix)
        if not low <= number_ <= high:
            raise InputError(origin, f"{shown(number_)} is out of range", fix)
        return number_

    return convert


def number(
    low: float, high: float = LONGEST_WAIT, what: str = "a number of seconds", *, open_low: bool = False
) -> Convert:
    """A float from ``low`` (excluded with ``open_low``) to ``high``: by default a wait, which
    :mod:`uws_adapter.waits` bounds at a year, so that the library would not refuse it later."""
    bound = f"more than {low:g}" if open_low else f"{low:g} or more"
    limit = f"a year ({LONGEST_WAIT:,.0f})" if high == LONGEST_WAIT else f"{high:g}"
    fix = f"give {bound}" if high == math.inf else f"give {bound}, up to {limit}"

    def convert(value: Any, origin: str) -> float:
        number_: Any = _numeric(value, origin, float, (int, float), what, fix)
        try:
            seconds = float(number_)
        except OverflowError:  # an integer past any float (10**400): out of range, not a raw error
            seconds = math.inf if number_ > 0 else -math.inf
        if (seconds <= low if open_low else seconds < low) or seconds > high or math.isinf(seconds):
            big = isinstance(number_, int) and number_.bit_length() > 128
            # 'g' is short (1e+10) but rounds: 31536001 would read 3.1536e+07, a value in range
            written = format(seconds, "g")
            written = written if float(written) == seconds or math.isinf(seconds) else repr(seconds)
            raise InputError(origin, f"{shown(number_) if big else written} is out of range", fix)
        return seconds

    return convert


def names(choices: Optional[Sequence[str]] = None) -> Convert:
    """A tuple of names: a comma-separated line in a file, repeated options on the command line."""

    def convert(value: Any, origin: str) -> Tuple[str, ...]:
        items = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value or ())
        items = [item for item in items if item]
        for item in items:
            if choices is not None and item not in choices:
                raise InputError(origin, f"{shown(item)} is not one of them", "use " + ", ".join(choices))
        return tuple(items)

    return convert


def choice(*choices: str) -> Convert:
    def convert(value: Any, origin: str) -> str:
        chosen = value.strip().lower() if isinstance(value, str) else value
        if chosen not in choices:
            raise InputError(
                origin, f"{shown(value)} is not one of {', '.join(choices)}", "use " + " or ".join(choices)
            )
        return str(chosen)

    return convert


# The file. ------------------------------------------------------------------------------------------


def _plain_name(key: str) -> bool:
    return bool(key) and len(key) <= 40 and all(c.isascii() and (c.isalnum() or c in "_-.") for c in key)


def _syntax_error(path: Union[str, Path], exc: configparser.Error) -> InputError:
    """The parser's complaint without the offending line's text, which may hold a password."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        problem = f"line {exc.lineno} comes before any [section] header"
    elif isinstance(exc, configparser.ParsingError):
        numbers = [str(error[0]) for error in getattr(exc, "errors", ())] or [str(getattr(exc, "lineno", "?"))]
        problem = f"line {', '.join(numbers)} is not KEY = VALUE"
    elif isinstance(exc, configparser.DuplicateOptionError):
        problem = f"line {exc.lineno}: [{exc.section}] {exc.option} is set twice"
    elif isinstance(exc, configparser.DuplicateSectionError):
        problem = f"line {exc.lineno}: [{exc.section}] appears twice"
    else:
        problem = type(exc).__name__
    return InputError(
        f"config file {path}", problem, "write [SECTION] then KEY = VALUE lines (see the configuration guide)"
    )


def _scan(path: Union[str, Path], lines: List[str], parser: configparser.ConfigParser) -> Dict[Tuple[str, str], int]:
    """The line of each key, as configparser reads them (the last wins); a section header that
    is not one of :data:`SECTIONS` is refused, naming its line and the known sections."""
    found: Dict[Tuple[str, str], int] = {}
    section = None
    for number_, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or line[0] in " \t":
            continue  # blank, a comment, or a continuation of the value above
        if stripped.startswith("[") and "]" in stripped:
            section = stripped[1 : stripped.index("]")].strip()
            if section not in SECTIONS:
                named = f"[{section}]" if _plain_name(section) else "this section"
                known = ", ".join(f"[{name}]" for name in SECTIONS[:-1]) + f" or [{SECTIONS[-1]}]"
                raise InputError(
                    f"config file {path} line {number_}", f"{named} is not a known section", f"use {known}"
                )
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if section is not None and cut > 0:
            found[(section, parser.optionxform(line[:cut].strip()))] = number_
    return found


def read_file(path: Union[str, Path]) -> Dict[str, Dict[str, Tuple[str, int]]]:
    """Section -> key -> (text, line number) of the INI file at ``path``."""
    # Inline comments (" ; ..." or " # ...", after whitespace) are stripped, as the documented
    # example writes them: kept, they would become part of a login and fail it.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=INLINE_COMMENTS)
    # Refusals are raised outside the except blocks, so that not even their context (a
    # UnicodeDecodeError holds the whole file, a ParsingError the line) can show a secret.
    refusal: Optional[InputError] = None
    lines: List[str] = []
    try:
        with open_to_read(path, "r", encoding="utf-8-sig") as handle:
            text = handle.read(MAX_FILE_CHARACTERS + 1)  # bounded: /dev/zero was read until memory ran out
        if len(text) > MAX_FILE_CHARACTERS:
            over = f"{path} is over {MAX_FILE_CHARACTERS:,} characters: not a settings file"
            refusal = InputError("config file", over, "check the path")
        lines = io.StringIO(text).readlines()
    except OSError as exc:
        refusal = InputError("config file", cannot_read(path, exc), "check the path")
    except UnicodeDecodeError as exc:
        refusal = InputError("config file", f"{path} is not UTF-8 (byte {exc.start})", "save it as UTF-8")
    if refusal is None:
        try:
            parser.read_file(lines, source=str(path))
        except configparser.Error as exc:
            refusal = _syntax_error(path, exc)
    if refusal is not None:
        raise refusal
    where = _scan(path, lines, parser)
    return {
        section: {key: (value, where.get((section, key), 0)) for key, value in parser.items(section, raw=True)}
        for section in parser.sections()
    }


def config_path(path: Union[str, Path, None], environ: Mapping[str, str]) -> Union[str, Path, None]:
    if not isinstance(environ, Mapping):
        raise InputError("environ", f"a {type(environ).__name__} is not a mapping of variables", "pass os.environ")
    chosen = path if path is not None else environ.get(CONFIG_VARIABLE) or None
    # open() takes an int as a file descriptor: 0 read the standard input as settings, then closed it.
    if chosen is not None and (isinstance(chosen, bool) or not isinstance(chosen, (str, os.PathLike))):
        raise InputError("config file", f"a {type(chosen).__name__} is not a path", "give the settings file's path")
    if "\x00" in os.fspath(chosen) if chosen is not None else False:  # open()'s raw "embedded null byte"
        raise InputError("config file", f"{chosen!r} has a NUL in it", "give the settings file's path")
    return chosen


def gather(
    section: str,
    options: Sequence[Option],
    *,
    path: Union[str, Path, None] = None,
    environ: Optional[Mapping[str, str]] = None,
    overrides: Optional[Mapping[str, Tuple[Any, str]]] = None,
) -> Dict[str, Any]:
    """The values of ``options`` from ``[section]`` of the file at ``path`` (default
    ``$UWS_ADAPTER_CONFIG``), then the environment, then ``overrides`` (name -> (value, origin));
    each converted where it was written. Unset options are left out (the field's default)."""
    env = os.environ if environ is None else environ
    table = {option.name: option for option in options}
    values: Dict[str, Any] = {}
    chosen = config_path(path, env)
    if chosen is not None:
        for key, (value, line) in read_file(chosen).get(section, {}).items():
            where = f"config file {chosen} line {line or '?'}: [{section}]"
            if key not in table:
                # A mangled line ("password hunter2 = x") makes a key of a secret: name only plain keys.
                shown = key if _plain_name(key) else "this key"
                raise InputError(f"{where} {shown}", "unknown setting", "use " + ", ".join(table))
            values[key] = table[key].convert(value, f"{where} {key}")
    for option in options:
        if option.variable and env.get(option.variable):
            values[option.name] = option.convert(env[option.variable], option.variable)
    for name, (value, origin) in (overrides or {}).items():
        if value is not None:
            values[name] = table[name].convert(value, origin)
    return values


class Loadable:
    """What every settings dataclass shares: ``load`` (file, environment, overrides), the check
    of each field in ``__post_init__`` (for values given in code) and a repr without secrets."""

    SECTION: ClassVar[str] = ""
    OPTIONS: ClassVar[Tuple[Option, ...]] = ()

    @classmethod
    def load(
        cls: Type[T],
        path: Union[str, Path, None] = None,
        *,
        environ: Optional[Mapping[str, str]] = None,
        origins: Optional[Mapping[str, str]] = None,
        **overrides: Any,
    ) -> T:
        """Settings from ``[SECTION]`` of ``path`` (default ``$UWS_ADAPTER_CONFIG``), the
        environment, then ``overrides`` (None: not given); ``origins`` names where an override was
        written (an option such as ``--port``; default: the field's name)."""
        given = {name: (value, (origins or {}).get(name, name)) for name, value in overrides.items()}
        unknown = set(given) - {option.name for option in cls.OPTIONS}
        if unknown:
            raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}")
        return cls(**gather(cls.SECTION, cls.OPTIONS, path=path, environ=environ, overrides=given))

    def __post_init__(self) -> None:
        for option in self.OPTIONS:
            object.__setattr__(self, option.name, option.convert(getattr(self, option.name), option.name))
        self.check()

    def check(self) -> None:
        """Rules between fields (both a username and a password, or neither)."""

    def __repr__(self) -> str:  # secrets are shown as *** so that settings can be logged
        secret = {option.name for option in self.OPTIONS if option.secret}
        shown = []
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.name in secret and value is not None:
                value = "***"
            elif field.name == "db" and value is not None:  # a database URL may hold a password
                from uws_adapter.store import describe_store

                value = describe_store(str(value))
            elif isinstance(value, str) and "://" in value:  # user:password@, a token in the query
                from uws_adapter.redaction import masked_url

                shown.append(f"{field.name}={masked_url(value)}")
                continue
            shown.append(f"{field.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__
