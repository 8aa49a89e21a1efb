"""The ``receiver`` command's run, on waitress (WSGI threads) or uvicorn (asyncio, in worker
processes that read their settings from a private file); its options are in :mod:`.services`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import logging
import os
import socket
import sys
from typing import Any, Dict, Iterator

from uws_adapter import metrics, runfiles
from uws_adapter.cli.db import check_creatable, open_db
from uws_adapter.cli.options import load_from_options
from uws_adapter.cli.running import access_log, bind, connection_limits, serve, servers, starting, stopping_on_signals
from uws_adapter.errors import InputError, UwsAdapterError, install_hint
from uws_adapter.logs import worker_environment
from uws_adapter.receiver.app import check_login_text, server_options
from uws_adapter.receiver.wsgi import build_receiver
from uws_adapter.settings.receiver import WORKER_SETTINGS_VARIABLE, ReceiverSettings, worker_failure
from uws_adapter.store import describe_store

__all__ = ["WORKER_FOLDER_PREFIX", "listening_socket", "multiprocess", "run_receiver"]

#: The uvicorn receiver's private folder of one run (its workers' settings file).
WORKER_FOLDER_PREFIX = "uws-adapter-receiver-"


def run_receiver(args: argparse.Namespace) -> int:
    settings = load_from_options(ReceiverSettings, args)
    check_login_text(settings.username, settings.password, settings.previous_password)
    check_creatable(settings.db)
    server = settings.server
    if server == "auto":
        server = "uvicorn" if importlib.util.find_spec("uvicorn") is not None else "waitress"
    if server == "uvicorn":
        return _run_uvicorn(settings)
    if settings.workers != 1:
        raise InputError("--workers", "applies to --server uvicorn only", "use --threads with waitress")
    limits = connection_limits(settings)
    # waitress warns at every queued request; under a burst of callbacks that is the normal state.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    with starting(settings.db) as started, open_db(settings.db, batch=settings.commit == "group") as store:
        app = build_receiver(store, settings)
        options = server_options(app, host=settings.host, port=settings.port, threads=settings.threads)
        try:
            waitress = bind(lambda: servers().waitress_server(access_log(app, "receiver"), limits, **options), settings)
        except UwsAdapterError:
            app.close()
            raise
        started()
        settings.announce()
        where = f"http://{settings.host}:{waitress.effective_port}/"
        serve(waitress, app, f"receiver (waitress) on {where} storing into {describe_store(settings.db)}")
    return 0


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound and listening, as uvicorn binds its own (SO_REUSEADDR, inheritable for its workers):
    made here so that a failure is one line before anything else, and the banner comes after it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _run_uvicorn(settings: ReceiverSettings) -> int:
    try:
        import uvicorn
    except ImportError:
        raise InputError("--server", "uvicorn is not installed", install_hint("receiver")) from None
    from uws_adapter.receiver.asgi import server_config

    limits = connection_limits(settings)
    sock = bind(lambda: listening_socket(settings.host, settings.port), settings)
    port = sock.getsockname()[1]
    # The workers build the receiver from a private file (0600, in a 0700 folder of this run,
    # removed at exit), never from passwords copied into the environment; they log as this process.
    with (
        starting(settings.db) as started,
        runfiles.run_folder(WORKER_FOLDER_PREFIX) as folder,
        _worker_environment({WORKER_SETTINGS_VARIABLE: str(settings.write_private(folder)), **worker_environment()}),
    ):
        try:
            open_db(settings.db).close()  # create (SQLite) or check (PostgreSQL) the schema once, before the workers
            app = "uws_adapter.serving.access:receiver_worker"  # the receiver with its access log
            # log_config None: uvicorn's own lines go through our handler and format (its access log stays off).
            options = server_config(
                factory=True, workers=settings.workers, host=settings.host, port=port, log_config=None
            )
            config = uvicorn.Config(app, **{**options, **servers().uvicorn_options(limits)})
            server = uvicorn.Server(config)
            settings.announce()
            workers = f"{settings.workers} worker{'s' if settings.workers > 1 else ''}"
            sys.stdout.write(
                f"receiver (uvicorn, {workers}) on http://{settings.host}:{port}/ "
                f"storing into {describe_store(settings.db)}\n"
            )
            sys.stdout.flush()
            started()
            # uvicorn serves on the socket bound above (as uvicorn.run does for several workers).
            with stopping_on_signals():
                if settings.workers == 1:
                    server.run(sockets=[sock])
                    if not server.started:
                        raise UwsAdapterError("receiver: uvicorn did not start (its reason is on the lines above)")
                else:
                    # Worker processes report their metrics through files in one folder, made (and removed) per run.
                    with metrics.multiprocess_dir():
                        multiprocess(config, server, sock)
                    failed = worker_failure(folder)  # said once here, not by each worker
                    if failed is not None:
                        raise failed
                    # Workers that close their SQLite stores at the same instant each see the other
                    # still connected, and neither folds the WAL back in: opened and closed once
                    # more here, as the last connection, the store is left as one file.
                    open_db(settings.db).close()
            # uvicorn returns once a signal stopped it (its workers closed their stores first): the
            # same end as the waitress receiver's.
            raise KeyboardInterrupt
        finally:
            sock.close()


@contextlib.contextmanager
def _worker_environment(values: Dict[str, str]) -> Iterator[None]:
    """``values`` in the environment the worker processes inherit, for this run only."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def multiprocess(config: Any, server: Any, sock: socket.socket) -> None:
    from uvicorn.supervisors import Multiprocess

    supervisor: Any = Multiprocess
    # Older uvicorn releases take the target; later ones make each worker's server themselves.
    if "target" in inspect.signature(Multiprocess.__init__).parameters:
        supervisor(config, target=server.run, sockets=[sock]).run()
    else:
        supervisor(config, sockets=[sock]).run()
