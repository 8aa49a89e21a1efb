"""``uws-adapter ARGS`` called in the test's own process, for the tests about what a command does
(its output, its exit status, its one-line errors) rather than about the process: starting
``python -m uws_adapter`` costs a fresh interpreter and the package's imports, about a third of a
second of CPU each, and the suite ran some two hundred of them.

:func:`run_in_process` answers what :func:`subprocess.run` would (a ``CompletedProcess`` with the
exit status and both streams as text), with the same inputs: the arguments, the working folder and
the whole environment. What stays a real process: signals, a service that serves, a start that
fails after binding (its socket is left to the exit), the installed script, a command's standard
input as a pipe or a terminal. A command that has not returned after :data:`LIMIT` seconds is
stopped and fails its test.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import List, Mapping, Optional, Sequence, Union

from uws_adapter import logs
from uws_adapter.cli.main import main

__all__ = ["run_in_process", "without"]

#: A command that has not returned after this long is stopped (a service that started instead of
#: refusing to would otherwise block the test for good): the test fails, naming the command.
LIMIT = 120


class _Overran(BaseException):  # not an Exception: main() must not turn it into an exit status
    pass


def _overran(signum: int, frame: Optional[FrameType]) -> None:
    _fired.append(signum)  # said even if what was running catches every exception (a server's loop may)
    raise _Overran()


_fired: List[int] = []


class _Stream(io.TextIOWrapper):
    """A text stream over bytes, as a pipe's would be (with ``.buffer``, never a terminal)."""

    def __init__(self, text: str = "") -> None:
        super().__init__(io.BytesIO(text.encode()), encoding="utf-8", newline=None, write_through=True)

    def value(self) -> str:
        self.flush()
        buffer = self.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue().decode("utf-8", "replace").replace("\r\n", "\n")


def run_in_process(
    args: Sequence[str], cwd: Union[str, Path], environ: Mapping[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``main(args)`` in folder ``cwd`` with exactly ``environ`` as the environment and ``stdin``
    as standard input; everything it changes (streams, folder, environment, logging) is put back."""
    saved_environ = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    root, package = logging.getLogger(), logging.getLogger("uws_adapter")
    saved_logging = (list(root.handlers), root.level, package.level, dict(logs._chosen))
    out, err = _Stream(), _Stream()
    try:
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = _Stream(stdin), out, err
        _fired.clear()
        timed = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
        previous = signal.signal(signal.SIGALRM, _overran) if timed else None
        if timed:
            signal.alarm(LIMIT)
        try:
            status = main(list(args))
        except SystemExit as exc:  # --help, --version
            status = _exit_status(exc.code)
        except _Overran:
            raise AssertionError(f"uws-adapter {' '.join(args)} still running after {LIMIT} s") from None
        finally:
            if timed:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, previous)
        if _fired:
            raise AssertionError(f"uws-adapter {' '.join(args)} still running after {LIMIT} s")
        return subprocess.CompletedProcess(["uws-adapter", *args], status, out.value(), err.value())
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        handlers, root_level, package_level, chosen = saved_logging
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(root_level)
        package.setLevel(package_level)
        logs._chosen.clear()
        logs._chosen.update(chosen)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def without(prefixes: Sequence[str], names: Sequence[str] = (), **extra: str) -> Mapping[str, str]:
    """This process's environment less the variables named or starting with ``prefixes``, plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if k not in names and not (prefixes and k.startswith(tuple(prefixes)))}
    return {**kept, **extra}
