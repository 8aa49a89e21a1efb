"""How a service command (``emulator``, ``receiver``, ``bridge``) starts (bad input exit 2 before
anything is made, a failure to listen exit 1, no database file left behind), serves, and ends
(Ctrl-C or SIGTERM, exit 130).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import threading
from typing import Any, Callable, Iterator, TypeVar

from uws_adapter.errors import InputError, UwsAdapterError, install_hint
from uws_adapter.store import is_postgres_url

__all__ = [
    "EXIT_INTERRUPTED", "access_log", "bind", "connection_limits", "serve", "servers", "starting",
    "stopping_on_signals",
]  # fmt: skip

T = TypeVar("T")


#: The exit status of a service stopped by Ctrl-C or SIGTERM (the shell's for SIGINT).
EXIT_INTERRUPTED = 130


def servers() -> Any:
    """The serving package, its bounded servers loaded (they need the receiver extra: waitress,
    uvicorn, httptools)."""
    try:
        import uws_adapter.serving.bounded_uvicorn
        import uws_adapter.serving.bounded_waitress
    except ImportError:
        raise InputError(
            "waitress/uvicorn/httptools", "the receiver extra is not installed", install_hint("receiver")
        ) from None
    return uws_adapter.serving


def connection_limits(settings: Any) -> Any:
    serving = servers()
    limits = serving.ConnectionLimits(
        max_connections=settings.max_connections, idle_timeout=settings.idle_timeout,
        header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
    )  # fmt: skip
    serving.limits.ensure_descriptors(limits)
    return limits


@contextlib.contextmanager
def starting(path: str) -> Iterator[Callable[[], None]]:
    """Around a service's start, which calls what this yields once it is up: a SQLite file the
    start created at ``path`` (there was none) is removed with its companion files if it fails."""
    created, up = not is_postgres_url(path) and not os.path.exists(path), []
    try:
        yield lambda: up.append(True)
    finally:
        if created and not up:
            for suffix in ("", "-wal", "-shm", "-journal", ".writelock"):
                with contextlib.suppress(OSError):
                    os.remove(path + suffix)


def _bind_error(exc: OSError, host: str, port: int) -> UwsAdapterError:
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        problem = f"cannot listen on {host} ({exc.strerror or exc})"
        return InputError("--host", problem, "give an address of this machine")
    if exc.errno == errno.EADDRINUSE:
        return UwsAdapterError(f"--port: {where} is already in use; stop what listens there, or give another --port")
    if exc.errno == errno.EACCES:
        return UwsAdapterError(f"--port: no permission to listen on {where}; use a port above 1023")
    return UwsAdapterError(f"cannot listen on {where}: {exc.strerror or exc}")


def bind(make: Callable[[], T], settings: Any) -> T:
    """``make()``, which binds a socket at ``settings.host``, ``.port``; its OSError as one line naming the option."""
    try:
        return make()
    except OSError as exc:
        raise _bind_error(exc, settings.host, settings.port) from None


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """SIGTERM (a service manager's stop) and SIGINT end the service as Ctrl-C does: the store
    closed, exit 130. SIGINT too, because a service started with ``&`` by a script inherits it
    ignored, and would outlive a ``kill -INT`` (uvicorn's own handlers take both, ignored or not).
    (Outside the main thread, as in tests that run a command in a thread, nothing changes.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def access_log(app: Any, service: str) -> Any:
    """``app`` logging one line per request on ``uws_adapter.<service>.access``."""
    servers()  # the receiver extra, with a clear message when it is missing
    from uws_adapter.serving.access import AccessLog

    return AccessLog(app, service)


def serve(server: Any, app: Any, announcement: str) -> None:
    """Say where the service listens (first line of stdout), then serve until Ctrl-C or SIGTERM;
    the application (and its store) is closed either way, and the end is uvicorn's (exit 130)."""
    sys.stdout.write(announcement + "\n")
    sys.stdout.flush()
    try:
        with stopping_on_signals():
            server.run()  # waitress returns (rather than raising) when Ctrl-C stops it
    finally:
        server.close()
        app.close()
    raise KeyboardInterrupt
