"""Logging: the package's loggers, and the one place where the command line configures them.

The library never configures logging. Each subsystem logs to its own logger under ``uws_adapter``
and the ``uws_adapter`` logger has a :class:`logging.NullHandler`, so a program that uses the
library sees nothing until it configures logging itself (``logging.basicConfig(level="INFO")``
shows the services' access lines and warnings).

``uws_adapter.receiver``, ``.bridge``, ``.emulator``
    the services: refusals with their reasons, handler failures and relay retries, dropped callbacks;
``uws_adapter.receiver.access``, ``.bridge.access``, ``.emulator.access``
    one line per request (:mod:`uws_adapter.serving.access`), when the command line serves them;
``uws_adapter.store``, ``.serving``, ``.transport``, ``.cli``
    the store, connection limits, the clients' retries and lost answers, the command line;
``uws_adapter.wire`` (DEBUG)
    the SOAP and JSON documents the clients send and receive, secrets redacted.

Every command of the command line takes ``--log-level`` and ``--log-format text|json``
(:func:`add_logging_options`, :func:`configure_from_options`, called once for every command); the
services hand the same choice to their worker processes through :data:`LEVEL_VARIABLE` and
:data:`FORMAT_VARIABLE` (:func:`worker_environment`, :func:`configure_from_environment`).

Standard library only: receiver workers import this without the clients' dependencies.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from uws_adapter.errors import InputError

#: Levels the options accept, and what they mean to :mod:`logging`.
LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
#: The environment variables a service's worker processes are configured from (and the options' defaults).
LEVEL_VARIABLE = "UWS_ADAPTER_LOG_LEVEL"
FORMAT_VARIABLE = "UWS_ADAPTER_LOG_FORMAT"
#: The logger of the clients' documents (DEBUG).
WIRE = "uws_adapter.wire"

# Line breaks and other control characters of attacker-chosen text (a path, a header, a document)
# are shown escaped, so that no request can write a line of its own into a log. str.translate is
# one pass over the text.
_ESCAPES: Dict[int, str] = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})
# The attributes every LogRecord has: the rest were given as ``extra=`` and are the structured fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def printable(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, control characters and line breaks escaped."""
    cut = text[:limit]
    # Every character _ESCAPES maps is one str.isprintable refuses (Cc, Zl, Zp), so printable text
    # (nearly every line: an access line's message, a method, a path) is returned as it is, found by
    # one pass in C where translate looks each character up in the dict.
    if not cut.isprintable():
        cut = cut.translate(_ESCAPES)
    return cut + "..." if len(text) > limit else cut


class Throttled:
    """One log line per ``every`` seconds at most about an event that can recur without bound (a
    refusal, a letter not kept, letters rotated out), with how many happened since the last line as
    the text's last argument: an attacker who makes the event happen must not flood the log."""

    def __init__(
        self,
        logger: logging.Logger,
        text: str,
        level: int = logging.WARNING,
        *,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.text, self.level, self.every, self.clock = logger, text, level, every, clock
        self.since = 0
        self._logged_at: Optional[float] = None
        self._lock = threading.Lock()

    def note(self, *args: object, count: int = 1) -> None:
        """Count ``count`` more events; log ``text % (*args, count since the last line)`` when a line is due."""
        now = self.clock()
        with self._lock:
            self.since += count
            if self._logged_at is not None and now - self._logged_at < self.every:
                return
            since, self.since, self._logged_at = self.since, 0, now
        self.logger.log(self.level, self.text, *args, since)


def fields(record: logging.LogRecord) -> Dict[str, Any]:
    """The structured fields of ``record`` (what was logged with ``extra=``)."""
    return {name: value for name, value in vars(record).items() if name not in _STANDARD and not name.startswith("_")}


# The last second formatted, and its text: strftime costs more than the rest of an access line's
# format, and a busy service logs many lines a second. One tuple, replaced whole (thread-safe).
_second: Tuple[int, str] = (-1, "")


def _stamp(created: float, msecs: float) -> str:
    global _second
    second = int(created)
    cached, text = _second
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{int(msecs):03d}Z"


def _text_line(created: float, msecs: float, level: str, name: str, message: str) -> str:
    # The one shape of a text line, whether a record was made for it or not (StderrHandler.write_line).
    return f"{_stamp(created, msecs)} {level} {name} {printable(message, 100_000)}"


class TextFormatter(logging.Formatter):
    """``2026-11-30T06:10:00.123Z INFO uws_adapter.receiver.access "POST /" 200 ...``: one line
    per record (the message's control characters escaped), then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = _text_line(record.created, record.msecs, record.levelname, record.name, record.getMessage())
        details = self._details(record)
        return f"{line}\n{details}" if details else line

    def _details(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the record's
    structured fields, and ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            "time": _stamp(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in fields(record).items():
            entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test's capture, a redirect)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def write_line(self, level: int, name: str, message: str) -> None:
        """What :meth:`emit` writes for a record of ``level`` on logger ``name`` with ``message``
        (formatted as text), without the record: for a caller that found this handler to be the
        only one its record would reach (:func:`text_handler`). A record holds the process's id (a
        system call), its thread's and its process's names, which a text line never shows."""
        self.write_lines([self.text_line(level, name, message)])

    @staticmethod
    def text_line(level: int, name: str, message: str) -> str:
        """The line :meth:`write_line` writes, stamped now, for :meth:`write_lines` to write later."""
        created = time.time()
        return _text_line(created, (created - int(created)) * 1000, logging.getLevelName(level), name, message)

    def write_lines(self, lines: List[str]) -> None:
        """``lines`` (from :meth:`text_line`) in one write and one flush: a caller that logs many
        lines at once (the access lines of the requests one event-loop iteration answered) makes
        one system call for them, not one each."""
        self.acquire()  # as Handler.handle does around emit
        try:
            stream = sys.stderr
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except Exception:
            for line in lines:
                self.handleError(logging.makeLogRecord({"msg": line}))
        finally:
            self.release()


def text_handler(logger: logging.Logger, level: int) -> Optional[StderrHandler]:
    """The handler a record of ``level`` (enabled) on ``logger`` would reach, when it is the only
    one, a :class:`StderrHandler` writing :class:`TextFormatter` lines, and nothing on the way (a
    filter, another handler, a record factory of the program's) could see the record or change it:
    then :meth:`StderrHandler.write_line` writes the same line without a record. None otherwise
    (log as usual)."""
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    found: Optional[StderrHandler] = None
    current: Optional[logging.Logger] = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if level < handler.level or type(handler) is logging.NullHandler:
                continue
            if (
                found is not None or type(handler) is not StderrHandler or handler.filters
                or type(handler.formatter) is not TextFormatter
            ):  # fmt: skip
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


def configure_logging(
    level: str = "info", log_format: str = "text", *, origins: Tuple[str, str] = ("--log-level", "--log-format")
) -> logging.Handler:
    """Log to stderr in ``log_format`` (text or json): the package's records from ``level`` up,
    other libraries' (waitress, uvicorn, urllib3) from WARNING up. Replaces what an earlier call
    installed; for the command line and programs, never called by the library itself. A bad value
    is named by where it was written (``origins``: the option, or the environment variable)."""
    chosen = LEVELS.get((level or "").strip().lower())
    if chosen is None:
        raise InputError(origins[0], f"{printable(str(level), 40)!r} is not a level", "use " + ", ".join(LEVELS))
    kind = (log_format or "").strip().lower()
    if kind not in FORMATS:
        raise InputError(origins[1], f"{printable(str(log_format), 40)!r} is not a format", "use text or json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if kind == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(max(chosen, logging.WARNING))
    logging.getLogger("uws_adapter").setLevel(chosen)
    _chosen.update({LEVEL_VARIABLE: level.strip().lower(), FORMAT_VARIABLE: kind})
    return handler


#: What the last configure_logging chose, for the worker processes (worker_environment).
_chosen: Dict[str, str] = {}


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``. No default is read here (help never shows a value
    of the environment's): :func:`configure_from_options` takes the option, else the variable,
    else info and text."""
    group = parser.add_argument_group("logging (to stderr)")
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        help=f"debug, info, warning or error (default: ${LEVEL_VARIABLE}, else info); "
        f"debug adds the documents sent and received ({WIRE}), secrets redacted",
    )
    group.add_argument(
        "--log-format",
        metavar="FORMAT",
        help=f"text (one line a record) or json (one object a line) (default: ${FORMAT_VARIABLE}, else text)",
    )


def _pick(
    given: Optional[str], option: str, variable: str, default: str, environ: Mapping[str, str]
) -> Tuple[str, str]:
    if given:
        return given, option
    if environ.get(variable):
        return environ[variable], variable
    return default, option


def configure_from_options(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> logging.Handler:
    """:func:`configure_logging` with the options :func:`add_logging_options` added: each from
    its option, else its environment variable, else info and text."""
    env = os.environ if environ is None else environ
    level, level_origin = _pick(getattr(args, "log_level", None), "--log-level", LEVEL_VARIABLE, "info", env)
    kind, kind_origin = _pick(getattr(args, "log_format", None), "--log-format", FORMAT_VARIABLE, "text", env)
    return configure_logging(level, kind, origins=(level_origin, kind_origin))


def worker_environment() -> Dict[str, str]:
    """The environment that makes worker processes log as this process was configured to
    (see :func:`configure_from_environment`)."""
    return dict(_chosen)


def configure_from_environment(environ: Optional[Mapping[str, str]] = None) -> Optional[logging.Handler]:
    """In a service's worker process: :func:`configure_logging` as :data:`LEVEL_VARIABLE` and
    :data:`FORMAT_VARIABLE` say, when either is set (None, and nothing configured, otherwise)."""
    environ = os.environ if environ is None else environ
    level, log_format = environ.get(LEVEL_VARIABLE), environ.get(FORMAT_VARIABLE)
    if not level and not log_format:
        return None
    return configure_logging(level or "info", log_format or "text", origins=(LEVEL_VARIABLE, FORMAT_VARIABLE))
