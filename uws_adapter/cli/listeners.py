"""CLI commands for REST callback listeners: ``listeners register``, ``listeners list`` and
``listeners remove`` (RestClient.register_callback, callback_listeners, unregister_callback)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict

from uws_adapter.cli.options import Build, Default, Verbs
from uws_adapter.cli.provision import add_connection_options, connection_settings
from uws_adapter.config import connect as connect_backend
from uws_adapter.redaction import masked_url
from uws_adapter.rest.client import RestClient
from uws_adapter.settings.receiver import CALLBACK_PASSWORD_VARIABLE, CALLBACK_USERNAME_VARIABLE, check_credentials
from uws_adapter.settings.services import check_listener_url
from uws_adapter.wire import CALLBACK_SERVICES

#: The ``listeners`` group (uws_adapter.cli.main.COMMANDS).
_LISTENERS = Verbs(
    "Register, list and remove the REST callback listeners of an account (REST API; the settings come from "
    "--config and the environment, as for restore and suspend). A service registered through UWS must be "
    "unregistered there first.",
    common=lambda verb: add_connection_options(verb, rest_only=True),
)
COMMANDS: Dict[str, Build] = {"listeners": _LISTENERS}


@_LISTENERS.verb("register", "register URL as the listener of a callback service for an account")
def _register(register: argparse.ArgumentParser) -> None:
    register.description = (
        "Register URL as the listener of a callback service (default CarrierService) for ACCOUNT. The carrier "
        "sends the listener credentials in every callback; by default they are the ones the receiver checks "
        "($UWS_CALLBACK_USERNAME, $UWS_CALLBACK_PASSWORD). Without credentials the registration is refused unless "
        "--allow-anonymous."
    )
    register.add_argument("account", metavar="ACCOUNT", help="e.g. 0000123456-00001 (keep leading zeros)")
    register.add_argument("url", metavar="URL", help="the listener's full http(s) URL")
    register.add_argument("--service", choices=CALLBACK_SERVICES, default="CarrierService", help="the callback service")
    register.add_argument(
        "--listener-username", default=Default(CALLBACK_USERNAME_VARIABLE), metavar="NAME",
        help="username the callbacks carry",
    )  # fmt: skip
    register.add_argument(
        "--listener-password", default=Default(CALLBACK_PASSWORD_VARIABLE), metavar="PASSWORD",
        help="password the callbacks carry (prefer the variable: arguments show in ps)",
    )  # fmt: skip
    register.add_argument(
        "--allow-anonymous", action="store_true",
        help="register without credentials (the receiver must then run with --allow-anonymous, on a closed network)",
    )  # fmt: skip
    register.set_defaults(run=_run_register)


@_LISTENERS.verb("list", "the listeners registered for an account")
def _list(listing: argparse.ArgumentParser) -> None:
    listing.description = "Print the listeners of ACCOUNT."
    listing.add_argument("account", metavar="ACCOUNT")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_run_list)


@_LISTENERS.verb("remove", "remove the listener of a callback service for an account")
def _remove(remove: argparse.ArgumentParser) -> None:
    remove.description = "Remove the listener of a callback service (default CarrierService) for ACCOUNT."
    remove.add_argument("account", metavar="ACCOUNT")
    remove.add_argument("--service", choices=CALLBACK_SERVICES, default="CarrierService", help="the callback service")
    remove.set_defaults(run=_run_remove)


def _client(args: argparse.Namespace) -> RestClient:
    client = connect_backend(connection_settings(args))
    assert isinstance(client, RestClient)  # add_connection_options(rest_only=True) chose the REST backend
    return client


#: How to give a listener's credentials.
CREDENTIALS_FIX = (
    "give --listener-username and --listener-password (or set UWS_CALLBACK_USERNAME and UWS_CALLBACK_PASSWORD, "
    "as for the receiver), or --allow-anonymous for a receiver that checks none"
)


def _run_register(args: argparse.Namespace) -> int:
    url = check_listener_url(args.url, "URL")
    refused = "no callback credentials: a receiver that checks them (the default) would refuse every callback with 401"
    check_credentials(
        "--listener-username", args.listener_username, args.listener_password, CREDENTIALS_FIX,
        refuse_none=None if args.allow_anonymous else refused,
    )  # fmt: skip
    with _client(args) as client:
        client.register_callback(
            args.account, args.service, url, username=args.listener_username, password=args.listener_password
        )
    sys.stdout.write(f"registered {args.service} listener for {args.account}\n")
    return 0


def _run_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.callback_listeners(args.account)
    if not found and not args.json:  # said on stderr: a script reading stdout sees no listener
        sys.stderr.write(
            f"no REST listener registered for {args.account} (a UWS registration is not listed here); "
            "register one with: uws-adapter listeners register ACCOUNT URL\n"
        )
    for listener in found:
        # A listener's URL may carry user:password@ (the carrier sends it back as registered): shown
        # as every URL is shown, so that a listing pasted into a ticket or a log holds no password.
        url = masked_url(listener.url, quoted=False)
        if args.json:
            sys.stdout.write(json.dumps({"account": listener.account, "service": listener.service, "url": url}) + "\n")
        else:
            sys.stdout.write(f"{listener.account}\t{listener.service}\t{url}\n")
    return 0


def _run_remove(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.unregister_callback(args.account, args.service)
    sys.stdout.write(f"removed {args.service} listener of {args.account}\n")
    return 0
