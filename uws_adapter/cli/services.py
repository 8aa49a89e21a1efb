"""CLI commands that run a service until Ctrl-C: ``emulator``, ``receiver`` and ``bridge``."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import socket
import sys
import threading
from typing import Any, Tuple

from uws_adapter import metrics
from uws_adapter.bridge.address import listen_names
from uws_adapter.bridge.app import Bridge, LegacyRelay
from uws_adapter.bridge.sessions import DEFAULT_LOCKOUT, unlock
from uws_adapter.cli.db import add_db_option, open_db
from uws_adapter.config import CONFIG_VARIABLE, load_settings
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, EmulatedDevice, Emulator, generated_devices
from uws_adapter.emulator.lines import seed_lines, seeds
from uws_adapter.errors import InputError
from uws_adapter.logs import add_logging_options, configure_from_options, worker_environment
from uws_adapter.model.devices import read_devices_csv
from uws_adapter.receiver.app import DeadLetterBudget, Receiver, server_options
from uws_adapter.rest.client import RestClient
from uws_adapter.store import describe_store
from uws_adapter.wire import CALLBACK_SERVICES
from uws_adapter.xmlsafe import MAX_BYTES


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
        help="also accepted, while rotating",
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
    name, password = _pair(args.user, "--user")
    client_id, secret = _pair(args.client, "--client")
    if args.devices_file:
        lines = [EmulatedDevice(device) for device in read_devices_csv(args.devices_file)]
    else:
        lines = generated_devices(args.devices)
    seed_lines(lines, seeds(groups=args.group, service_plans=args.service_plan, custom_fields=args.custom_field))
    emulator = Emulator(
        host=args.host, port=args.port, devices=lines, users={name: password}, clients={client_id: secret},
        session_idle=args.session_idle, daily_budget=args.daily_budget, callback_spacing=args.callback_spacing,
        threads=args.threads, middleware=lambda wsgi: _access_log(wsgi, "emulator"),
    )  # fmt: skip
    if args.listener:
        emulator.register_listener(DEFAULT_ACCOUNT, args.listener)
    with emulator:
        sys.stdout.write(
            f"emulator: UWS at {emulator.base_url}, REST at {emulator.rest_url} "
            f"({len(lines)} devices, account {DEFAULT_ACCOUNT})\n"
        )
        sys.stdout.flush()
        threading.Event().wait()  # until Ctrl-C
    return 0


def _add_repair(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--repair",
        action="store_true",
        help="mend an end tag written </Name/> in SOAP callbacks, as in the carrier's documented example "
        "(counted and logged; without it such callbacks are refused with 400)",
    )


def _run_receiver(args: argparse.Namespace) -> int:
    configure_from_options(args)
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
    if args.allow_anonymous:
        logging.getLogger("uws_adapter.receiver").warning(
            "--allow-anonymous: callbacks are stored without checking any credentials"
        )
        sys.stderr.write("warning: --allow-anonymous: callbacks are stored without checking any credentials\n")
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
    with open_db(args.db, batch=args.commit == "group") as store:
        app = Receiver(store, username=args.username, password=args.password, previous_password=args.previous_password,
                       max_body=args.max_body, allow_anonymous=args.allow_anonymous, repair=args.repair,
                       dead_letters=DeadLetterBudget(per_second=args.dead_letter_rate,
                                                     max_total=args.dead_letter_max_bytes))  # fmt: skip
        options = server_options(app, host=args.host, port=args.port, threads=args.threads)
        server = _serving().waitress_server(_access_log(app, "receiver"), limits, **options)
        shown = describe_store(args.db)
        _serve(server, app, f"receiver (waitress) on http://{args.host}:{server.effective_port}/ storing into {shown}")
    return 0


def _run_uvicorn_receiver(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise InputError("--server", "uvicorn is not installed", "pip install 'uws-adapter[receiver]'") from None
    from uws_adapter.receiver.asgi import server_config

    limits = _limits(args)
    if not 1 <= args.workers <= 64:
        raise InputError("--workers", f"{args.workers} is out of range", "use 1 to 64 (2 on a 2-core machine)")
    open_db(args.db).close()  # create (SQLite) or check (PostgreSQL) the schema once, before the workers start
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
    port = args.port or _free_port(args.host)  # printed before the workers start
    sys.stdout.write(
        f"receiver (uvicorn, {args.workers} worker{'s' if args.workers > 1 else ''}) on http://{args.host}:{port}/ "
        f"storing into {describe_store(args.db)}\n"
    )
    sys.stdout.flush()
    # uvicorn binds the socket itself (a socket passed by descriptor would lose TCP_NODELAY, and
    # with it the latency); its workers share it.
    app = "uws_adapter.serving.access:receiver_worker"  # the receiver with its access log
    # log_config None: uvicorn's own lines go through our handler and format (its access log stays off).
    options = server_config(factory=True, workers=args.workers, host=args.host, port=port, log_config=None)
    # Worker processes report their metrics through files in one folder, made (and removed) per run.
    with metrics.multiprocess_dir() if args.workers > 1 else contextlib.nullcontext():
        uvicorn.run(app, **{**options, **_serving().uvicorn_options(limits)})
    return 0


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


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _unlock_bridge_login(args: argparse.Namespace) -> int:
    with open_db(args.db) as store:
        cleared = unlock(store, args.unlock)
    shown = describe_store(args.db)
    sys.stdout.write(f"bridge: {'unlocked' if cleared else 'nothing to unlock for'} that login in {shown}\n")
    return 0


def _run_bridge(args: argparse.Namespace) -> int:
    configure_from_options(args)
    if args.unlock:
        return _unlock_bridge_login(args)
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
        relay = LegacyRelay(args.legacy_listener, username=listener[0], password=listener[1])
    with open_db(args.db) as store:
        rest = RestClient(
            base_url=settings.rest_url, client_id=settings.client_id, client_secret=settings.client_secret,
            username=settings.username, password=settings.password, timeout=settings.timeout, store=store,
            deadline=settings.deadline, max_answer_bytes=settings.max_answer_bytes,
        )  # fmt: skip
        rest.daily_budget = settings.daily_budget  # the budget guard (daily_budget, UWS_ADAPTER_DAILY_BUDGET)
        app = Bridge(
            rest, store, legacy_users={legacy_name: legacy_password}, relay=relay, callback_username=args.username,
            callback_password=args.password, public_url=args.public_url, lockout=args.lockout_seconds or None,
            repair=args.repair,
        )  # fmt: skip
        options = app.server_options(host=args.host, port=args.port, threads=args.threads)
        server = _serving().waitress_server(_access_log(app, "bridge"), limits, **options)
        app.allow_hosts(args.allowed_host or listen_names(args.host, server.effective_port))
        address = args.public_url or f"http://{args.host}:{server.effective_port}"
        for account in args.register:
            app.register(account, f"{address}/callbacks", args.service or ["CarrierService"])
        _serve(
            server,
            app,
            f"bridge: UWS at {address}/api/v2, REST callbacks at {address}/callbacks, store {describe_store(args.db)}",
        )
    return 0
