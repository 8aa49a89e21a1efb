"""CLI commands that run a service until Ctrl-C: ``emulator``, ``receiver`` and ``bridge``.

Each reads its settings object (:mod:`uws_adapter.settings`) from --config, the environment and
its options, once; Ctrl-C or SIGTERM closes what it opened and exits 130 (see main.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

from uws_adapter.cli.db import add_db_option, check_creatable, open_db
from uws_adapter.cli.options import CONFIG_HELP, Build, load_from_options, settings_defaults
from uws_adapter.cli.receiver import run_receiver
from uws_adapter.cli.running import (
    EXIT_INTERRUPTED,
    access_log,
    bind,
    connection_limits,
    serve,
    servers,
    starting,
    stopping_on_signals,
)
from uws_adapter.edge import SOAP_BASE
from uws_adapter.errors import InputError
from uws_adapter.redaction import masked_url
from uws_adapter.settings.receiver import ReceiverSettings
from uws_adapter.settings.services import DEFAULT_DEVICES, BridgeSettings, EmulatorSettings, login_pair
from uws_adapter.settings.source import CONFIG_VARIABLE
from uws_adapter.store import describe_store
from uws_adapter.wire import CALLBACK_SERVICES

if TYPE_CHECKING:
    from uws_adapter.bridge.app import Bridge
    from uws_adapter.config import Settings
    from uws_adapter.rest.client import RestClient

logger = logging.getLogger("uws_adapter.cli")


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
    _o("--config", CONFIG_HELP, metavar="FILE"),
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
    _o("--devices", f"generated Active devices (IMEI+ICCID) (default: {DEFAULT_DEVICES})", metavar="N"),
    _o("--devices-file", "CSV devices instead (kind,identifier rows; not with --devices)", metavar="FILE"),
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
    receiver.set_defaults(run=run_receiver)


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
        lines = generated_devices(DEFAULT_DEVICES if settings.devices is None else settings.devices)
    seeding = seeds(groups=list(settings.group), service_plans=list(settings.service_plan),
                    custom_fields=list(settings.custom_field))  # fmt: skip
    seed_lines(lines, seeding)
    emulator = bind(
        lambda: Emulator(
            host=settings.host, port=settings.port, devices=lines, users={name: password},
            clients={client_id: secret}, session_idle=settings.session_idle, daily_budget=settings.daily_budget,
            callback_spacing=settings.callback_spacing, threads=settings.threads,
            middleware=lambda wsgi: access_log(wsgi, "emulator"),
        ),
        settings,
    )  # fmt: skip
    with stopping_on_signals(), emulator:  # closed (its socket too) if the listener is refused
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
    limits = connection_limits(settings)
    legacy_name, legacy_password = login_pair(settings.legacy_login or "")
    rest_settings = _rest_settings(args)
    relay = None
    if settings.legacy_listener:
        listener = login_pair(settings.legacy_listener_login) if settings.legacy_listener_login else (None, None)
        relay = LegacyRelay(
            settings.legacy_listener, username=listener[0], password=listener[1],
            soap_action=settings.listener_soap_action,
        )  # fmt: skip
    with starting(settings.db) as started, open_db(settings.db) as store:
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
            server = bind(lambda: servers().waitress_server(access_log(app, "bridge"), limits, **options), settings)
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
        serve(server, app, banner + "".join(f"; {line}" for line in replaced))
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
