"""Opening a local file named on the command line or in the settings (a devices file, a settings
file, a document to parse, a WSDL) so that opening it never waits.

Why: ``open()`` of a FIFO blocks until some process opens it for writing, so ``--devices-file
some.fifo`` or ``--config some.fifo`` hung for ever, printing nothing. Opened without blocking, a
FIFO no one writes to reads as empty at once (and each reader then says what an empty file
lacks); one with a writer (``--devices-file <(grep ... lines.csv)``, a pipe) is read as before,
since the descriptor is made blocking again once open. Regular files are unaffected.

Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Union

__all__ = ["cannot_read", "open_to_read", "without_login"]


def open_to_read(path: Union[str, Path], mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """``open(path, mode, **kwargs)`` for reading, without waiting for a FIFO's writer. Raises
    what ``open`` raises (``OSError``; ``ValueError`` for a NUL in the path)."""
    if "w" in mode or "a" in mode or "+" in mode or "x" in mode:
        raise ValueError(f"open_to_read opens for reading only, not {mode!r}")
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    if not nonblocking:  # no FIFOs to wait on here (Windows)
        return open(path, mode, **kwargs)
    descriptor = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_CLOEXEC", 0))
    try:
        os.set_blocking(descriptor, True)
        return open(descriptor, mode, **kwargs)
    except BaseException:
        os.close(descriptor)
        raise


def without_login(rest: str, mask: str = "***") -> str:
    """``rest`` (a URL after its ``scheme://``) with its user and password, if any, as ``mask``: the
    one rule for every URL we show. Up to the last "@" whatever it holds (a "/", "?" or "#" typed
    unescaped in a password ends the authority for a parser, and the rest of the password was
    shown), unless that "@" is in the path of a host without one. Here, below every other module,
    so that a file's name is masked as a URL is."""
    at = rest.rfind("@")
    if at >= 0 and (":" in rest[:at] or "/" not in rest[:at]):
        return mask + rest[at:]
    return rest


def cannot_read(path: Union[str, Path], exc: OSError) -> str:
    """The one way a file that cannot be read is said: ``cannot read NAME: REASON``. A URL given
    where a file's path was wanted (``https://user:password@host/x``, which ``Path`` writes with
    one slash) is shown with its user and password as ``***``: it was echoed whole."""
    name = str(path)
    scheme, separator, rest = name.partition(":/")
    rest = rest.lstrip("/")
    masked = without_login(rest)
    if separator and scheme.isalpha() and masked != rest:
        name = f"{scheme}://{masked}"
    return f"cannot read {name}: {exc.strerror or type(exc).__name__}"
