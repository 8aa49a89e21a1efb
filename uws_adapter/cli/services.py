"""CLI commands that run a service until Ctrl-C: ``emulator``, ``receiver`` and ``bridge``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import inspect
import logging
import os
import socket
import sys
import threading
from typing import Any, Callable, Tuple, TypeVar

from uws_adapter import metrics
from uws_adapter.bridge.address import listen_names
from uws_adapter.bridge.app import Bridge, LegacyRelay
from uws_adapter.bridge.sessions import DEFAULT_LOCKOUT, unlock
from uws_adapter.callbacks.uws_render import check_soap_action
from uws_adapter.cli.db import add_db_option, open_db
from uws_adapter.config import CONFIG_VARIABLE, load_settings
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, EmulatedDevice, generated_devices, listener_url_problem
from uws_adapter.emulator.http import Emulator
from uws_adapter.emulator.lines import seed_lines, seeds
from uws_adapter.errors import InputError, UwsAdapterError
from uws_adapter.logs import add_logging_options, configure_from_options, worker_environment
from uws_adapter.model.devices import read_devices_csv
from uws_adapter.receiver.app import DeadLetterBudget, Receiver, server_options
from uws_adapter.rest.client import RestClient
from uws_adapter.store import describe_store, is_postgres_url
from uws_adapter.wire import CALLBACK_SERVICES
from uws_adapter.xmlsafe import MAX_BYTES

T = TypeVar("T")


#: --listener-soap-action of the emulator and the bridge (the trade-off: docs/interop.md).
LISTENER_SOAP_ACTION_HELP = (
    "the SOAPAction header of each callback to {0} (default: none, as before). A WCF listener whose "
    'operation has a specific Action needs exactly that value; an empty one ("") breaks ASMX listeners '
    "routed by SOAPAction (see docs/interop.md)"
)


def _pair(text: str, option: str) -> Tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise InputError(option, "is not NAME:PASSWORD", "write e.g. legacy-user:secret")
    return name, password


def _serving() -> Any:
    """The bounded-serving module (it needs the receiver extra: waitress, uvicorn, httptools)."""
    try:
        from uws_adapter.serving import limits as serving
    except ImportError:
        raise InputError(
            "waitress/uvicorn/httptools", "the receiver extra is not installed", "pip install 'uws-adapter[receiver]'"
        ) from None
    return serving


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Connection bounds, the same options on every service (see uws_adapter/serving/limits.py)."""
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        metavar="N",
        help="open connections per server process (default 1000); at the limit an idle one (else the "
        "one whose request has been arriving longest, over 1 s) is closed to make room, or the newcomer gets 503",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="keep-alive wait for the next request (default 5)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="deadline for a request's headers, from its first byte (or the connection) (default 10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="deadline for a request's body, from the end of its headers (default 30)",
    )


def _limits(args: argparse.Namespace) -> Any:
    serving = _serving()
    limits = serving.ConnectionLimits(
        max_connections=args.max_connections, idle_timeout=args.idle_timeout,
        header_timeout=args.header_timeout, body_timeout=args.body_timeout,
    )  # fmt: skip
    serving.ensure_descriptors(limits)
    return limits


def add_commands(commands: Any) -> None:
    emulator = commands.add_parser(
        "emulator",
        help="run the carrier emulator (UWS SOAP and REST) on loopback",
        description="Run a carrier emulator (UWS SOAP, REST M2M, callbacks) until Ctrl-C.",
    )
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8080)
    emulator.add_argument("--devices", type=int, default=100, metavar="N", help="generated Active devices (IMEI+ICCID)")
    emulator.add_argument("--devices-file", metavar="FILE", help="CSV devices instead (kind,identifier rows)")
    emulator.add_argument("--listener", metavar="URL", help="UWS (SOAP) callback listener for the emulated account")
    emulator.add_argument(
        "--listener-username",
        default=os.environ.get("UWS_CALLBACK_USERNAME"),
        metavar="NAME",
        help="username written into each callback to --listener (default: $UWS_CALLBACK_USERNAME, which the "
        "receiver reads too)",
    )
    emulator.add_argument(
        "--listener-password",
        default=os.environ.get("UWS_CALLBACK_PASSWORD"),
        metavar="PASSWORD",
        help="password written into each callback to --listener (default: $UWS_CALLBACK_PASSWORD, which the "
        "receiver reads too; prefer it: arguments show in ps)",
    )
    emulator.add_argument(
        "--listener-soap-action",
        metavar="ACTION",
        help=LISTENER_SOAP_ACTION_HELP.format("--listener"),
    )
    emulator.add_argument(
        "--user", default="uws-user:uws-password", metavar="NAME:PASSWORD", help="the login it accepts"
    )
    emulator.add_argument(
        "--client", default="ts-client:ts-secret", metavar="ID:SECRET", help="the REST OAuth2 keys it accepts"
    )
    emulator.add_argument("--callback-spacing", type=float, default=300.0, metavar="SECONDS", help="between re-sends")
    emulator.add_argument("--session-idle", type=float, default=1200.0, metavar="SECONDS")
    emulator.add_argument("--daily-budget", type=int, default=5, metavar="N", help="actions per line per day")
    emulator.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    # Seeding: each attribute is handed out from the first line on, in the order given (see seed_lines).
    emulator.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME[:COUNT]",
        help="put the next COUNT lines (default: all the rest) in device group NAME; repeat for more groups",
    )
    emulator.add_argument(
        "--service-plan",
        action="append",
        default=[],
        metavar="PLAN[:COUNT]",
        help="give the next COUNT lines (default: all the rest) service plan PLAN (lines have 'M2M Flex' otherwise)",
    )
    emulator.add_argument(
        "--custom-field",
        action="append",
        default=[],
        metavar="NAME=VALUE[:COUNT]",
        help="set custom field NAME (CustomField1..5) to VALUE on the next COUNT lines (default: all the rest)",
    )
    add_logging_options(emulator)
    emulator.set_defaults(run=_run_emulator)

    receiver = commands.add_parser(
        "receiver",
        help="receive callbacks into an SQLite store (needs the receiver extra: waitress)",
        description="Receive UWS SOAP and REST JSON callbacks, store them durably, acknowledge after commit.",
    )
    receiver.add_argument("--host", default="127.0.0.1")
    receiver.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    add_db_option(receiver)
    _add_callback_credentials(receiver)
    receiver.add_argument(
        "--previous-password",
        default=os.environ.get("UWS_CALLBACK_PREVIOUS_PASSWORD"),
        help="also accepted, while rotating (default: $UWS_CALLBACK_PREVIOUS_PASSWORD)",
    )
    receiver.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="store callbacks without checking credentials (only on a closed network; logged at start)",
    )
    _add_repair(receiver)
    receiver.add_argument(
        "--dead-letter-rate",
        type=float,
        default=2.0,
        metavar="N",
        help="refused documents kept per second, after a burst of 100 (default 2; the rest are counted)",
    )
    receiver.add_argument(
        "--dead-letter-max-bytes",
        type=int,
        default=256 * 1024 * 1024,
        metavar="BYTES",
        help="total size the dead letters may hold (default 256 MiB)",
    )
    receiver.add_argument(
        "--server",
        choices=["auto", "uvicorn", "waitress"],
        default="auto",
        help="uvicorn (asyncio, the fast one; auto picks it when installed) or waitress (WSGI threads)",
    )
    receiver.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (2 on a 2-core machine)")
    receiver.add_argument("--threads", type=int, default=16, help="waitress worker threads")
    receiver.add_argument("--max-body", type=int, default=MAX_BYTES, metavar="BYTES")
    receiver.add_argument(
        "--commit",
        choices=["group", "each"],
        default="group",
        help="each: one commit per callback (a benchmark baseline)",
    )
    _add_connection_options(receiver)
    add_logging_options(receiver)
    receiver.set_defaults(run=_run_receiver)

    bridge = commands.add_parser(
        "bridge",
        help="serve the UWS SOAP API to legacy systems and carry it out on the REST API",
        description="A UWS SOAP façade (our WSDL) that performs each call on the REST API, and relays REST "
        "callbacks to the legacy system's SOAP listener until acknowledged. REST credentials come from "
        f"--config / ${CONFIG_VARIABLE} and the environment, as for restore and suspend.",
    )
    bridge.add_argument("--host", default="127.0.0.1")
    bridge.add_argument("--port", type=int, default=8082)
    add_db_option(bridge, "bridge.db", variable="UWS_BRIDGE_DB", what="store and relay outbox")
    bridge.add_argument("--config", metavar="FILE", help="INI settings file with the REST credentials")
    bridge.add_argument(
        "--legacy-login",
        default=os.environ.get("UWS_BRIDGE_LEGACY_LOGIN"),
        metavar="NAME:PASSWORD",
        help="the UWS login legacy systems use with the bridge (default: $UWS_BRIDGE_LEGACY_LOGIN)",
    )
    bridge.add_argument("--legacy-listener", metavar="URL", help="the legacy system's SOAP callback listener")
    bridge.add_argument(
        "--legacy-listener-login",
        default=os.environ.get("UWS_BRIDGE_LISTENER_LOGIN"),
        metavar="NAME:PASSWORD",
        help="credentials written into relayed callbacks (default: $UWS_BRIDGE_LISTENER_LOGIN)",
    )
    bridge.add_argument(
        "--listener-soap-action",
        metavar="ACTION",
        help=LISTENER_SOAP_ACTION_HELP.format("--legacy-listener"),
    )
    _add_callback_credentials(bridge)
    bridge.add_argument(
        "--register", metavar="ACCOUNT", action="append", default=[], help="register the bridge as REST listener"
    )
    bridge.add_argument(
        "--service",
        action="append",
        choices=CALLBACK_SERVICES,
        default=[],
        help="with --register (default CarrierService)",
    )
    bridge.add_argument(
        "--public-url", metavar="URL", help="the bridge's address as the carrier and legacy systems see it"
    )
    bridge.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME:PORT",
        help="without --public-url, a Host the WSDL's address may name (repeatable; default: the listen "
        "address's names, e.g. 127.0.0.1:PORT and localhost:PORT for a loopback bind)",
    )
    bridge.add_argument(
        "--lockout-seconds",
        type=float,
        default=DEFAULT_LOCKOUT,
        metavar="SECONDS",
        help=f"how long five failed legacy logins in a row lock that login (default {DEFAULT_LOCKOUT:.0f}; "
        "0: until --unlock)",
    )
    bridge.add_argument(
        "--unlock", metavar="NAME", help="clear the legacy login NAME's lockout in --db, then exit (no server)"
    )
    bridge.add_argument("--threads", type=int, default=16, help="waitress worker threads")
    _add_repair(bridge)
    _add_connection_options(bridge)
    add_logging_options(bridge)
    bridge.set_defaults(run=_run_bridge)


def _add_callback_credentials(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--username",
        default=os.environ.get("UWS_CALLBACK_USERNAME"),
        help="callback username (default: $UWS_CALLBACK_USERNAME)",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("UWS_CALLBACK_PASSWORD"),
        help="callback password (default: $UWS_CALLBACK_PASSWORD)",
    )


def _run_emulator(args: argparse.Namespace) -> int:
    configure_from_options(args)
    _check_port(args.port)
    name, password = _pair(args.user, "--user")
    client_id, secret = _pair(args.client, "--client")
    if args.listener:
        problem = listener_url_problem(args.listener)
        if problem is not None:
            raise InputError("--listener", problem, "give an http(s) URL with a host, e.g. http://127.0.0.1:8081/")
        check_soap_action(args.listener_soap_action, "--listener-soap-action")
        if bool(args.listener_username) != bool(args.listener_password):
            raise InputError(
                "--listener-username", "give both a username and a password, or neither", "set both, or neither"
            )
    elif args.listener_soap_action is not None:
        raise InputError("--listener-soap-action", "is for callbacks to --listener", "give --listener too")
    if args.devices_file:
        lines = [EmulatedDevice(device) for device in read_devices_csv(args.devices_file)]
    else:
        lines = generated_devices(args.devices)
    seed_lines(lines, seeds(groups=args.group, service_plans=args.service_plan, custom_fields=args.custom_field))
    emulator = _bind(
        lambda: Emulator(
            host=args.host, port=args.port, devices=lines, users={name: password}, clients={client_id: secret},
            session_idle=args.session_idle, daily_budget=args.daily_budget, callback_spacing=args.callback_spacing,
            threads=args.threads, middleware=lambda wsgi: _access_log(wsgi, "emulator"),
        ),
        args.host, args.port,
    )  # fmt: skip
    if args.listener:
        emulator.register_listener(
            DEFAULT_ACCOUNT,
            args.listener,
            args.listener_username or "",
            args.listener_password or "",
            soap_action=args.listener_soap_action,
        )
    with emulator:
        sys.stdout.write(
            f"emulator: UWS at {emulator.base_url}, REST at {emulator.rest_url} "
            f"({len(lines)} devices, account {DEFAULT_ACCOUNT})\n"
        )
        sys.stdout.flush()
        threading.Event().wait()  # until Ctrl-C
    return 0


# Start-up: bad input is exit 2 before anything is made; a failure to listen is exit 1; either way
# one line, no banner, and no database file left behind. ----------------------------------------


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise InputError("--port", f"{port} is out of range", "give 1 to 65535, or 0 to pick a free port")


def _check_db(path: str) -> None:
    """A database the service can create or open: named as given, never its companion files.
    (A postgresql:// URL is checked when it is opened.)"""
    if is_postgres_url(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError("--db", f"the folder of the database {path} does not exist", "create it, or give another path")
    if os.path.isdir(path):
        raise InputError("--db", f"{path} is a folder, not a database file", "give a file name")
    if not os.access(folder, os.W_OK):
        raise InputError("--db", f"cannot write in the folder of the database {path}", "give a writable place")


def _new_store(path: str) -> bool:
    """True when starting would create the SQLite file at ``path`` (then a failed start removes it)."""
    return not is_postgres_url(path) and not os.path.exists(path)


def _remove_new_store(path: str) -> None:
    """The files a start that failed created (it found no database there before)."""
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


def _bind(make: Callable[[], T], host: str, port: int) -> T:
    """``make()``, which binds a listening socket; its OSError as one line naming the option."""
    try:
        return make()
    except OSError as exc:
        raise _bind_error(exc, host, port) from None


def _add_repair(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--repair",
        action="store_true",
        help="mend an end tag written </Name/> in SOAP callbacks, as in the carrier's documented example "
        "(counted and logged; without it such callbacks are refused with 400)",
    )


def _run_receiver(args: argparse.Namespace) -> int:
    configure_from_options(args)
    _check_port(args.port)
    _check_db(args.db)
    if bool(args.username) != bool(args.password):
        raise InputError("--username", "give both a username and a password, or neither", "set UWS_CALLBACK_PASSWORD")
    if not args.username and not args.allow_anonymous:
        raise InputError(
            "--username",
            "a receiver without callback credentials would store callbacks from anyone",
            "give --username and --password (or UWS_CALLBACK_USERNAME/UWS_CALLBACK_PASSWORD), "
            "or --allow-anonymous on a closed network",
        )
    if args.dead_letter_rate < 0 or args.dead_letter_max_bytes < 0:
        raise InputError("--dead-letter-rate", "cannot be negative", "use --dead-letter-max-bytes 0 to keep none")
    server = args.server
    if server == "auto":
        server = "uvicorn" if importlib.util.find_spec("uvicorn") is not None else "waitress"
    if server == "uvicorn":
        return _run_uvicorn_receiver(args)
    if args.workers != 1:
        raise InputError("--workers", "applies to --server uvicorn only", "use --threads with waitress")
    limits = _limits(args)
    # waitress warns at every queued request; under a burst of callbacks that is the normal state.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    created, started = _new_store(args.db), False
    try:
        with open_db(args.db, batch=args.commit == "group") as store:
            app = Receiver(store, username=args.username, password=args.password,
                           previous_password=args.previous_password, max_body=args.max_body,
                           allow_anonymous=args.allow_anonymous, repair=args.repair,
                           dead_letters=DeadLetterBudget(per_second=args.dead_letter_rate,
                                                         max_total=args.dead_letter_max_bytes))  # fmt: skip
            options = server_options(app, host=args.host, port=args.port, threads=args.threads)
            try:
                server = _bind(
                    lambda: _serving().waitress_server(_access_log(app, "receiver"), limits, **options),
                    args.host,
                    args.port,
                )
            except UwsAdapterError:
                app.close()
                raise
            started = True
            _warn_anonymous(args)
            where = f"http://{args.host}:{server.effective_port}/"
            _serve(server, app, f"receiver (waitress) on {where} storing into {describe_store(args.db)}")
    finally:
        if created and not started:
            _remove_new_store(args.db)
    return 0


def _warn_anonymous(args: argparse.Namespace) -> None:
    """Said once the receiver listens (a start that fails says only why)."""
    if args.allow_anonymous:
        logging.getLogger("uws_adapter.receiver").warning(
            "--allow-anonymous: callbacks are stored without checking any credentials"
        )


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


def _run_uvicorn_receiver(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise InputError("--server", "uvicorn is not installed", "pip install 'uws-adapter[receiver]'") from None
    from uws_adapter.receiver.asgi import server_config

    limits = _limits(args)
    if not 1 <= args.workers <= 64:
        raise InputError("--workers", f"{args.workers} is out of range", "use 1 to 64 (2 on a 2-core machine)")
    # The workers are separate processes that build the application from the environment.
    settings = {
        "UWS_CALLBACK_DB": args.db,
        "UWS_CALLBACK_MAX_BODY": str(args.max_body),
        "UWS_CALLBACK_COMMIT": args.commit,
        "UWS_CALLBACK_USERNAME": args.username,
        "UWS_CALLBACK_PASSWORD": args.password,
        "UWS_CALLBACK_PREVIOUS_PASSWORD": args.previous_password,
        "UWS_CALLBACK_ALLOW_ANONYMOUS": "1" if args.allow_anonymous else None,
        "UWS_CALLBACK_REPAIR": "1" if args.repair else None,
        "UWS_CALLBACK_DEAD_LETTER_RATE": str(args.dead_letter_rate),
        "UWS_CALLBACK_DEAD_LETTER_MAX_BYTES": str(args.dead_letter_max_bytes),
        **worker_environment(args),  # the workers log as this process does
    }
    for name, value in settings.items():
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    sock = _bind(lambda: _listening_socket(args.host, args.port), args.host, args.port)
    port = sock.getsockname()[1]
    created, started = _new_store(args.db), False
    try:
        open_db(args.db).close()  # create (SQLite) or check (PostgreSQL) the schema once, before the workers start
        app = "uws_adapter.serving.access:receiver_worker"  # the receiver with its access log
        # log_config None: uvicorn's own lines go through our handler and format (its access log stays off).
        options = server_config(factory=True, workers=args.workers, host=args.host, port=port, log_config=None)
        config = uvicorn.Config(app, **{**options, **_serving().uvicorn_options(limits)})
        server = uvicorn.Server(config)
        _warn_anonymous(args)
        sys.stdout.write(
            f"receiver (uvicorn, {args.workers} worker{'s' if args.workers > 1 else ''}) on "
            f"http://{args.host}:{port}/ storing into {describe_store(args.db)}\n"
        )
        sys.stdout.flush()
        started = True
        # uvicorn serves on the socket bound above (as uvicorn.run does for several workers).
        if args.workers == 1:
            server.run(sockets=[sock])
            if not server.started:
                raise UwsAdapterError("receiver: uvicorn did not start (its reason is on the lines above)")
        else:
            # Worker processes report their metrics through files in one folder, made (and removed) per run.
            with metrics.multiprocess_dir():
                _multiprocess(config, server, sock)
    finally:
        sock.close()
        if created and not started:
            _remove_new_store(args.db)
    return 0


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
    """Say where the service listens (first line of stdout), then serve until Ctrl-C."""
    sys.stdout.write(announcement + "\n")
    sys.stdout.flush()
    try:
        server.run()
    finally:
        server.close()
        app.close()


def _unlock_bridge_login(args: argparse.Namespace) -> int:
    with open_db(args.db) as store:
        cleared = unlock(store, args.unlock)
    shown = describe_store(args.db)
    sys.stdout.write(f"bridge: {'unlocked' if cleared else 'nothing to unlock for'} that login in {shown}\n")
    return 0


def _run_bridge(args: argparse.Namespace) -> int:
    configure_from_options(args)
    _check_db(args.db)
    if args.unlock:
        return _unlock_bridge_login(args)
    _check_port(args.port)
    if args.lockout_seconds < 0:
        raise InputError("--lockout-seconds", f"{args.lockout_seconds} is negative", "give seconds, or 0")
    limits = _limits(args)
    if not args.legacy_login:
        raise InputError("--legacy-login", "no legacy login", "pass NAME:PASSWORD or set UWS_BRIDGE_LEGACY_LOGIN")
    legacy_name, legacy_password = _pair(args.legacy_login, "--legacy-login")
    if not (args.username and args.password):
        raise InputError(
            "--username", "the bridge needs callback credentials", "set UWS_CALLBACK_USERNAME and _PASSWORD"
        )
    if args.register and not args.public_url:
        raise InputError("--public-url", "--register needs the address the carrier calls back", "pass --public-url")
    settings = load_settings(args.config)
    if not (settings.client_id and settings.client_secret and settings.username and settings.password):
        raise InputError(
            "REST credentials",
            "incomplete",
            "set THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET, UWS_USERNAME, UWS_PASSWORD",
        )
    relay = None
    if args.legacy_listener:
        listener = (
            _pair(args.legacy_listener_login, "--legacy-listener-login") if args.legacy_listener_login else (None, None)
        )
        soap_action = check_soap_action(args.listener_soap_action, "--listener-soap-action")
        relay = LegacyRelay(args.legacy_listener, username=listener[0], password=listener[1], soap_action=soap_action)
    elif args.listener_soap_action is not None:
        raise InputError(
            "--listener-soap-action", "is for callbacks to --legacy-listener", "give --legacy-listener too"
        )
    created, started = _new_store(args.db), False
    try:
        with open_db(args.db) as store:
            rest = RestClient(
                base_url=settings.rest_url, client_id=settings.client_id, client_secret=settings.client_secret,
                username=settings.username, password=settings.password, timeout=settings.timeout, store=store,
                deadline=settings.deadline, max_answer_bytes=settings.max_answer_bytes,
            )  # fmt: skip
            rest.daily_budget = settings.daily_budget  # the budget guard (daily_budget, UWS_ADAPTER_DAILY_BUDGET)
            app = Bridge(
                rest, store, legacy_users={legacy_name: legacy_password}, relay=relay,
                callback_username=args.username, callback_password=args.password, public_url=args.public_url,
                lockout=args.lockout_seconds or None, repair=args.repair,
            )  # fmt: skip
            options = app.server_options(host=args.host, port=args.port, threads=args.threads)
            server: Any = None
            try:
                server = _bind(
                    lambda: _serving().waitress_server(_access_log(app, "bridge"), limits, **options),
                    args.host,
                    args.port,
                )
                app.allow_hosts(args.allowed_host or listen_names(args.host, server.effective_port))
                address = args.public_url or f"http://{args.host}:{server.effective_port}"
                for account in args.register:
                    app.register(account, f"{address}/callbacks", args.service or ["CarrierService"])
            except Exception:
                if server is not None:
                    server.close()
                app.close()
                raise
            started = True
            shown = describe_store(args.db)
            _serve(
                server, app, f"bridge: UWS at {address}/api/v2, REST callbacks at {address}/callbacks, store {shown}"
            )
    finally:
        if created and not started:
            _remove_new_store(args.db)
    return 0
