"""CLI commands that run a service until Ctrl-C: ``emulator``, ``receiver`` and ``bridge``.

Each reads its settings object (:mod:`uws_adapter.settings`) from --config, the environment and
its options, once; Ctrl-C or SIGTERM closes what it opened and exits 130 (see main.py).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import inspect
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Sequence, Tuple, TypeVar

from uws_adapter import metrics, runfiles
from uws_adapter.cli.db import add_db_option, check_creatable, open_db
from uws_adapter.cli.options import Build, load_from_options, settings_defaults
from uws_adapter.edge import SOAP_BASE
from uws_adapter.errors import InputError, UwsAdapterError, install_hint
from uws_adapter.logs import worker_environment
from uws_adapter.receiver.app import check_login_text, server_options
from uws_adapter.receiver.wsgi import build_receiver
from uws_adapter.redaction import masked_url
from uws_adapter.settings.receiver import WORKER_SETTINGS_VARIABLE, ReceiverSettings
from uws_adapter.settings.services import BridgeSettings, EmulatorSettings, login_pair
from uws_adapter.settings.source import CONFIG_VARIABLE
from uws_adapter.store import describe_store, is_postgres_url
from uws_adapter.wire import CALLBACK_SERVICES

if TYPE_CHECKING:
    from uws_adapter.bridge.app import Bridge
    from uws_adapter.config import Settings
    from uws_adapter.rest.client import RestClient

#: The exit status of a service stopped by Ctrl-C or SIGTERM (the shell's for SIGINT).
EXIT_INTERRUPTED = 130
#: The uvicorn receiver's private folder of one run (its workers' settings file).
WORKER_FOLDER_PREFIX = "uws-adapter-receiver-"
logger = logging.getLogger("uws_adapter.cli")
T = TypeVar("T")


def _serving() -> Any:
    """The bounded-serving module (it needs the receiver extra: waitress, uvicorn, httptools)."""
    try:
        from uws_adapter.serving import limits as serving
    except ImportError:
        raise InputError(
            "waitress/uvicorn/httptools", "the receiver extra is not installed", install_hint("receiver")
        ) from None
    return serving


def _limits(settings: Any) -> Any:
    serving = _serving()
    limits = serving.ConnectionLimits(
        max_connections=settings.max_connections, idle_timeout=settings.idle_timeout,
        header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
    )  # fmt: skip
    serving.ensure_descriptors(limits)
    return limits


# The options of each service: (flags, keyword arguments). Each option's dest is its settings
# field; the defaults shown in --help come from the settings (uws_adapter/settings/), and the
# values are converted and checked there, once, naming the option.
Spec = Tuple[Tuple[str, ...], Dict[str, Any]]


#: --listener-soap-action of the emulator and the bridge (the trade-off: docs/interop.md).
LISTENER_SOAP_ACTION_HELP = (
    "the SOAPAction header of each callback to {0} (default: none, as before). A WCF listener whose "
    'operation has a specific Action needs exactly that value; an empty one ("") breaks ASMX listeners '
    "routed by SOAPAction (see docs/interop.md)"
)


def _o(flag: str, text: str, **options: Any) -> Spec:
    return (flag,), {"help": text, **options}


_COMMON: List[Spec] = [
    _o("--config", f"INI settings file (default: ${CONFIG_VARIABLE}); see docs/configuration.md", metavar="FILE"),
    _o("--host", "address to listen on"),
]
_PORT = _o("--port", "0 picks a free port")
_THREADS = _o("--threads", "waitress worker threads")
_CONNECTIONS: List[Spec] = [
    _o("--max-connections", "open connections per server process; at the limit an idle one (else the one whose "
       "request has been arriving longest, over 1 s) is closed to make room, or the newcomer gets 503", metavar="N"),
    _o("--idle-timeout", "keep-alive wait for the next request", metavar="SECONDS"),
    _o("--header-timeout", "deadline for a request's headers, from its first byte (or the connection)",
       metavar="SECONDS"),
    _o("--body-timeout", "deadline for a request's body, from the end of its headers", metavar="SECONDS"),
]  # fmt: skip
_REPAIR = _o(
    "--repair", "mend an end tag written </Name/> in SOAP callbacks, as in the carrier's documented example "
    "(counted and logged; without it such callbacks are refused with 400)", action="store_true",
)  # fmt: skip
_HANDLER_LEASE = _o(
    "--handler-lease", "how long a claimed handler run (a relay) is this instance's before another may take it; at "
    "least twice a relay's deadline (30 s)", metavar="SECONDS",
)  # fmt: skip
_EMULATOR: List[Spec] = [
    _PORT,
    _o("--devices", "generated Active devices (IMEI+ICCID)", metavar="N"),
    _o("--devices-file", "CSV devices instead (kind,identifier rows)", metavar="FILE"),
    _o("--listener", "UWS (SOAP) callback listener for the emulated account", metavar="URL"),
    _o("--listener-username", "username written into each callback to --listener (the receiver reads the same "
       "variable)", metavar="NAME"),
    _o("--listener-password", "password written into each callback to --listener (prefer the variable: arguments "
       "show in ps)", metavar="PASSWORD"),
    _o("--listener-soap-action", LISTENER_SOAP_ACTION_HELP.format("--listener"), metavar="ACTION"),
    _o("--user", "the login it accepts (default: uws-user:uws-password)", metavar="NAME:PASSWORD"),
    _o("--client", "the REST OAuth2 keys it accepts (default: ts-client:ts-secret)", metavar="ID:SECRET"),
    _o("--callback-spacing", "between re-sends", metavar="SECONDS"),
    _o("--session-idle", "a session's idle expiry", metavar="SECONDS"),
    _o("--daily-budget", "actions per line per day, 1 to 1,000,000", metavar="N"),
    _THREADS,
    # Seeding: each attribute is handed out from the first line on, in the order given (see seed_lines).
    _o("--group", "put the next COUNT lines (default: all the rest) in device group NAME; repeat for more groups",
       action="append", metavar="NAME[:COUNT]"),
    _o("--service-plan", "give the next COUNT lines (default: all the rest) service plan PLAN (lines have "
       "'M2M Flex' otherwise)", action="append", metavar="PLAN[:COUNT]"),
    _o("--custom-field", "set custom field NAME (CustomField1..5) to VALUE on the next COUNT lines (default: all "
       "the rest)", action="append", metavar="NAME=VALUE[:COUNT]"),
]  # fmt: skip
_CALLBACK_LOGIN: List[Spec] = [
    _o("--username", "callback username"),
    _o("--password", "callback password (prefer the variable: arguments show in ps)"),
]
_RECEIVER: List[Spec] = [
    _PORT,
    *_CALLBACK_LOGIN,
    _o("--previous-password", "also accepted, while rotating"),
    _o("--allow-anonymous", "store callbacks without checking credentials (only on a closed network; logged at "
       "start)", action="store_true"),
    _REPAIR,
    _HANDLER_LEASE,
    _o("--dead-letter-rate", "refused documents kept per second, after a burst of 100 (the rest are counted)",
       metavar="N"),
    _o("--dead-letter-max-bytes", "total size the dead letters may hold", metavar="BYTES"),
    _o("--server", "uvicorn (asyncio, the fast one; auto picks it when installed) or waitress (WSGI threads)",
       choices=["auto", "uvicorn", "waitress"]),
    _o("--workers", "uvicorn worker processes, 1 to 64 (2 on a 2-core machine)"),
    _THREADS,
    _o("--max-body", "largest callback accepted", metavar="BYTES"),
    _o("--commit", "each: one commit per callback (a benchmark baseline)", choices=["group", "each"]),
    *_CONNECTIONS,
]  # fmt: skip
_BRIDGE: List[Spec] = [
    _PORT,
    _o("--legacy-login", "the UWS login legacy systems use with the bridge", metavar="NAME:PASSWORD"),
    _o("--legacy-listener", "the legacy system's SOAP callback listener", metavar="URL"),
    _o("--legacy-listener-login", "credentials written into relayed callbacks", metavar="NAME:PASSWORD"),
    _o("--listener-soap-action", LISTENER_SOAP_ACTION_HELP.format("--legacy-listener"), metavar="ACTION"),
    *_CALLBACK_LOGIN,
    _o("--register", "register the bridge as REST listener of ACCOUNT (repeatable)", metavar="ACCOUNT",
       action="append"),
    _o("--replace", "with --register: replace another REST listener of the account (logged, and shown at start); "
       "without it the start is refused", action="store_true"),
    _o("--service", "with --register (default CarrierService)", action="append", choices=CALLBACK_SERVICES),
    _o("--public-url", "the bridge's address as the carrier and legacy systems see it", metavar="URL"),
    _o("--allowed-host", "without --public-url, a Host the WSDL's address may name (repeatable; default: the "
       "listen address's names, e.g. 127.0.0.1:PORT and localhost:PORT for a loopback bind)", action="append",
       metavar="NAME:PORT"),
    _o("--lockout-seconds", "the longest a client address that keeps failing legacy LogIns must wait before its "
       "next (0: no bound)", metavar="SECONDS"),
    _o("--trusted-proxy", "a reverse proxy in front of the bridge (address or network, repeatable): the LogIn "
       "throttle keys its requests by the client its X-Forwarded-For names", action="append",
       metavar="ADDRESS[/BITS]"),
    _o("--unlock", argparse.SUPPRESS, metavar="NAME"),  # nothing is locked in the store any more
    _THREADS,
    _REPAIR,
    _HANDLER_LEASE,
    *_CONNECTIONS,
]  # fmt: skip


def _add(parser: argparse.ArgumentParser, specs: Sequence[Spec]) -> None:
    for flags, options in specs:
        parser.add_argument(*flags, **options)


def _emulator(emulator: argparse.ArgumentParser) -> None:
    emulator.description = "Run a carrier emulator (UWS SOAP, REST M2M, callbacks) until Ctrl-C."
    _add(emulator, [*_COMMON, *_EMULATOR])
    settings_defaults(emulator, EmulatorSettings)
    emulator.set_defaults(run=_run_emulator)


def _receiver(receiver: argparse.ArgumentParser) -> None:
    receiver.description = (
        "Receive UWS SOAP and REST JSON callbacks, store them durably, acknowledge after commit. Ctrl-C (or "
        f"SIGTERM) closes the store and exits {EXIT_INTERRUPTED}."
    )
    _add(receiver, _COMMON)
    add_db_option(receiver)
    _add(receiver, _RECEIVER)
    settings_defaults(receiver, ReceiverSettings)
    receiver.set_defaults(run=_run_receiver)


def _bridge(bridge: argparse.ArgumentParser) -> None:
    bridge.description = (
        "A UWS SOAP façade (our WSDL) that performs each call on the REST API, and relays REST callbacks to the "
        "legacy system's SOAP listener until acknowledged. REST credentials come from [uws-adapter] of --config / "
        f"${CONFIG_VARIABLE} and the environment, as for restore and suspend."
    )
    _add(bridge, _COMMON)
    add_db_option(bridge, "bridge.db", variable="UWS_BRIDGE_DB", what="store and relay outbox")
    _add(bridge, _BRIDGE)
    settings_defaults(bridge, BridgeSettings)
    bridge.set_defaults(run=_run_bridge)


#: The commands this module builds (uws_adapter.cli.main.COMMANDS).
COMMANDS: Dict[str, Build] = {"emulator": _emulator, "receiver": _receiver, "bridge": _bridge}


def _run_emulator(args: argparse.Namespace) -> int:
    # Imported here, as in _run_bridge: a receiver's process (the one most often started) loads
    # neither the emulator nor requests.
    from uws_adapter.emulator.core import DEFAULT_ACCOUNT, EmulatedDevice, generated_devices
    from uws_adapter.emulator.http import Emulator
    from uws_adapter.emulator.lines import MAX_GENERATED, seed_lines, seeds
    from uws_adapter.model.devices import read_devices_csv

    settings = load_from_options(EmulatorSettings, args)
    name, password = login_pair(settings.user)
    client_id, secret = login_pair(settings.client)
    if settings.devices_file:
        # The same bound as --devices: the inventory is held in memory.
        lines = [EmulatedDevice(d) for d in read_devices_csv(settings.devices_file, max_devices=MAX_GENERATED)]
    else:
        lines = generated_devices(settings.devices)
    seeding = seeds(groups=list(settings.group), service_plans=list(settings.service_plan),
                    custom_fields=list(settings.custom_field))  # fmt: skip
    seed_lines(lines, seeding)
    emulator = _bind(
        lambda: Emulator(
            host=settings.host, port=settings.port, devices=lines, users={name: password},
            clients={client_id: secret}, session_idle=settings.session_idle, daily_budget=settings.daily_budget,
            callback_spacing=settings.callback_spacing, threads=settings.threads,
            middleware=lambda wsgi: _access_log(wsgi, "emulator"),
        ),
        settings,
    )  # fmt: skip
    with _stopping_on_signals(), emulator:  # closed (its socket too) if the listener is refused
        if settings.listener:
            emulator.register_listener(
                DEFAULT_ACCOUNT, settings.listener, settings.listener_username or "", settings.listener_password or "",
                soap_action=settings.listener_soap_action,
            )  # fmt: skip
        sys.stdout.write(
            f"emulator: UWS at {emulator.base_url}, REST at {emulator.rest_url} "
            f"({len(lines)} devices, account {DEFAULT_ACCOUNT})\n"
        )
        sys.stdout.flush()
        threading.Event().wait()  # until Ctrl-C
    return 0


# Start-up: bad input is exit 2 before anything is made; a failure to listen is exit 1; either way
# one line, no banner, and no database file left behind. ----------------------------------------


@contextlib.contextmanager
def _starting(path: str) -> Iterator[Callable[[], None]]:
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


def _bind(make: Callable[[], T], settings: Any) -> T:
    """``make()``, which binds a socket at ``settings.host``, ``.port``; its OSError as one line naming the option."""
    try:
        return make()
    except OSError as exc:
        raise _bind_error(exc, settings.host, settings.port) from None


@contextlib.contextmanager
def _stopping_on_signals() -> Iterator[None]:
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


def _run_receiver(args: argparse.Namespace) -> int:
    settings = load_from_options(ReceiverSettings, args)
    check_login_text(settings.username, settings.password, settings.previous_password)
    check_creatable(settings.db)
    server = settings.server
    if server == "auto":
        server = "uvicorn" if importlib.util.find_spec("uvicorn") is not None else "waitress"
    if server == "uvicorn":
        return _run_uvicorn_receiver(settings)
    if settings.workers != 1:
        raise InputError("--workers", "applies to --server uvicorn only", "use --threads with waitress")
    limits = _limits(settings)
    # waitress warns at every queued request; under a burst of callbacks that is the normal state.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    with _starting(settings.db) as started, open_db(settings.db, batch=settings.commit == "group") as store:
        app = build_receiver(store, settings)
        options = server_options(app, host=settings.host, port=settings.port, threads=settings.threads)
        try:
            waitress = _bind(
                lambda: _serving().waitress_server(_access_log(app, "receiver"), limits, **options), settings
            )
        except UwsAdapterError:
            app.close()
            raise
        started()
        settings.announce()
        where = f"http://{settings.host}:{waitress.effective_port}/"
        _serve(waitress, app, f"receiver (waitress) on {where} storing into {describe_store(settings.db)}")
    return 0


def _listening_socket(host: str, port: int) -> socket.socket:
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


def _run_uvicorn_receiver(settings: ReceiverSettings) -> int:
    try:
        import uvicorn
    except ImportError:
        raise InputError("--server", "uvicorn is not installed", install_hint("receiver")) from None
    from uws_adapter.receiver.asgi import server_config

    limits = _limits(settings)
    sock = _bind(lambda: _listening_socket(settings.host, settings.port), settings)
    port = sock.getsockname()[1]
    # The workers build the receiver from a private file (0600, in a 0700 folder of this run,
    # removed at exit), never from passwords copied into the environment; they log as this process.
    with (
        _starting(settings.db) as started,
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
            config = uvicorn.Config(app, **{**options, **_serving().uvicorn_options(limits)})
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
            with _stopping_on_signals():
                if settings.workers == 1:
                    server.run(sockets=[sock])
                    if not server.started:
                        raise UwsAdapterError("receiver: uvicorn did not start (its reason is on the lines above)")
                else:
                    # Worker processes report their metrics through files in one folder, made (and removed) per run.
                    with metrics.multiprocess_dir():
                        _multiprocess(config, server, sock)
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


def _multiprocess(config: Any, server: Any, sock: socket.socket) -> None:
    from uvicorn.supervisors import Multiprocess

    supervisor: Any = Multiprocess
    # Older uvicorn releases take the target; later ones make each worker's server themselves.
    if "target" in inspect.signature(Multiprocess.__init__).parameters:
        supervisor(config, target=server.run, sockets=[sock]).run()
    else:
        supervisor(config, sockets=[sock]).run()


def _access_log(app: Any, service: str) -> Any:
    """``app`` logging one line per request on ``uws_adapter.<service>.access``."""
    _serving()  # the receiver extra, with a clear message when it is missing
    from uws_adapter.serving.access import AccessLog

    return AccessLog(app, service)


def _serve(server: Any, app: Any, announcement: str) -> None:
    """Say where the service listens (first line of stdout), then serve until Ctrl-C or SIGTERM;
    the application (and its store) is closed either way, and the end is the same as uvicorn's:
    an interruption (exit 130)."""
    sys.stdout.write(announcement + "\n")
    sys.stdout.flush()
    try:
        with _stopping_on_signals():
            server.run()  # waitress returns (rather than raising) when Ctrl-C stops it
    finally:
        server.close()
        app.close()
    raise KeyboardInterrupt


def _rest_settings(args: argparse.Namespace) -> Settings:
    """The bridge's REST login: [uws-adapter] of the same settings file, and the environment."""
    from uws_adapter.config import load_settings, unset

    rest = replace(load_settings(getattr(args, "config", None)), backend="rest")
    missing = unset(rest)
    if missing:
        raise InputError(
            "REST credentials", f"incomplete: {', '.join(missing)} not set",
            "set them, or client_id, client_secret, username and password in [uws-adapter] of --config",
        )  # fmt: skip
    return rest


def _run_bridge(args: argparse.Namespace) -> int:
    from uws_adapter.bridge.address import listen_names
    from uws_adapter.bridge.app import Bridge, LegacyRelay
    from uws_adapter.config import connect as connect_backend
    from uws_adapter.rest.client import RestClient

    settings = load_from_options(BridgeSettings, args)
    check_creatable(settings.db)
    if settings.unlock:
        raise InputError(
            "--unlock",
            "no legacy login is locked in the store: failed LogIns are throttled per client address in the running "
            "bridge's memory",
            "restart the bridge to clear the throttle",
        )
    limits = _limits(settings)
    legacy_name, legacy_password = login_pair(settings.legacy_login or "")
    rest_settings = _rest_settings(args)
    relay = None
    if settings.legacy_listener:
        listener = login_pair(settings.legacy_listener_login) if settings.legacy_listener_login else (None, None)
        relay = LegacyRelay(
            settings.legacy_listener, username=listener[0], password=listener[1],
            soap_action=settings.listener_soap_action,
        )  # fmt: skip
    with _starting(settings.db) as started, open_db(settings.db) as store:
        rest = connect_backend(rest_settings, store=store)
        assert isinstance(rest, RestClient)
        app = Bridge(
            rest, store, legacy_users={legacy_name: legacy_password}, relay=relay,
            callback_username=settings.username, callback_password=settings.password,
            public_url=settings.public_url, lockout=settings.lockout_seconds or None, repair=settings.repair,
            handler_lease=settings.handler_lease, trusted_proxies=settings.trusted_proxy,
        )  # fmt: skip
        options = app.server_options(host=settings.host, port=settings.port, threads=settings.threads)
        server: Any = None
        try:
            server = _bind(lambda: _serving().waitress_server(_access_log(app, "bridge"), limits, **options), settings)
            app.allow_hosts(list(settings.allowed_host) or listen_names(settings.host, server.effective_port))
            address = settings.public_url or f"http://{settings.host}:{server.effective_port}"
            replaced = register_bridge(app, rest, settings, f"{address}/callbacks")
        except Exception:
            if server is not None:
                server.close()
            app.close()
            raise
        started()
        shown = describe_store(settings.db)
        banner = f"bridge: UWS at {address}{SOAP_BASE}, REST callbacks at {address}/callbacks, store {shown}"
        _serve(server, app, banner + "".join(f"; {line}" for line in replaced))
    return 0


def register_bridge(app: Bridge, rest: RestClient, settings: BridgeSettings, url: str) -> List[str]:
    """Register the bridge at ``url`` as the REST listener of each --register account. Another
    listener of the account for the same service is replaced only with --replace (logged, and
    returned for the banner); without it the start is refused, naming the listener."""
    services = settings.service or ("CarrierService",)
    replaced: List[str] = []
    for account in settings.register:
        current = {listener.service: listener.url for listener in rest.callback_listeners(account)}
        for service in services:
            other = current.get(service)
            if not other or other == url:
                continue
            if not settings.replace:
                raise InputError(
                    "--register", f"{account} already has a {service} listener, {masked_url(other)}",
                    "pass --replace to replace it with the bridge (or remove it: uws-adapter listeners remove)",
                )  # fmt: skip
            logger.warning("--replace: the %s listener of %s was %s; the bridge replaces it", service, account,
                           masked_url(other))  # fmt: skip
            replaced.append(f"replaced the {service} listener of {account} (was {masked_url(other)})")
        app.register(account, url, services)
    return replaced
