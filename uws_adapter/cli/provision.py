"""CLI commands that build or send provisioning requests: ``envelope``, ``rest-body``, ``parse``,
``restore`` and ``suspend`` (on either backend)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Dict, List, Optional

from uws_adapter.callbacks.rest_json import parse_rest_callback, rest_callback_dict
from uws_adapter.callbacks.uws_render import render_callback
from uws_adapter.callbacks.uws_xml import parse_callback
from uws_adapter.cli.db import DB_VARIABLE, check_creatable, open_db
from uws_adapter.cli.options import CONFIG_HELP, Build, Default, Verbs, parsed
from uws_adapter.cli.preview import add_preview_option, count_text, describe_query, run_preview
from uws_adapter.config import (
    BACKENDS,
    ENVIRONMENT,
    MAX_DAILY_BUDGET,
    Settings,
    load_settings,
)
from uws_adapter.config import connect as connect_backend
from uws_adapter.errors import InputError, OutcomeUnknown
from uws_adapter.localfiles import cannot_read, open_to_read
from uws_adapter.model.actions import action_named
from uws_adapter.model.callbacks import REDACTED
from uws_adapter.model.devices import Device, read_devices_csv
from uws_adapter.model.selection import MAX_DEVICES_PER_REQUEST, CustomField, DeviceList, DeviceQuery, Selection, select
from uws_adapter.rest.body import rest_body
from uws_adapter.settings.source import relocated
from uws_adapter.store import describe_store
from uws_adapter.xmlsafe import MAX_BYTES, wide_encoding


def _add_selection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("devices (a list, or account/group with filters)")
    group.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="KIND:ID",
        help="a device, e.g. IMEI:990003420535573; several identifiers of one device joined with +",
    )
    group.add_argument("--devices-file", metavar="FILE", help="CSV rows kind,identifier (one device per row)")
    group.add_argument(
        "--account", help="account name, e.g. 0000123456-00001 (keep leading zeros); REST only with devices"
    )
    group.add_argument("--group", help="device group name")
    group.add_argument(
        "--service-plan", help="only devices on this service plan (REST: also on its own, every line on the plan)"
    )
    group.add_argument(
        "--custom-field", action="append", default=[], metavar="NAME=VALUE", help="e.g. CustomField2=SuperVend"
    )


def _add_billing(parser: argparse.ArgumentParser) -> None:
    billing = parser.add_mutually_exclusive_group()
    for flag, value in (("--with-billing", True), ("--without-billing", False)):
        help_text = f"REST only: withBilling {str(value).lower()}"
        billing.add_argument(flag, dest="with_billing", action="store_const", const=value, help=help_text)


def _selection(args: argparse.Namespace) -> Selection:
    devices: Optional[List[Device]] = None
    if args.device or args.devices_file:
        devices = parsed(args.device, Device.parse, "--device")
        if args.devices_file:
            # No more than one request takes: past it the file is not read on (nor held in memory).
            devices.extend(read_devices_csv(args.devices_file, max_devices=MAX_DEVICES_PER_REQUEST))
    fields = parsed(args.custom_field, CustomField.parse, "--custom-field")
    try:
        return select(devices, account=args.account, group=args.group, service_plan=args.service_plan,
                      custom_fields=fields)  # fmt: skip
    except InputError as exc:  # a refused value is named by the option it was typed in, not the model's field
        if exc.field not in _OPTION_OF:
            raise
        raise relocated(exc, _OPTION_OF[exc.field]) from None


#: the selection's fields by the options that give them
_OPTION_OF = {"account": "--account", "group": "--group", "service_plan": "--service-plan"}


def _envelope(envelope: argparse.ArgumentParser) -> None:
    envelope.description = (
        "Print a UWS ChangeDeviceState envelope for a selection (UWS has no withBilling: see rest-body)."
    )
    envelope.add_argument("action", choices=["restore", "suspend"])
    _add_selection(envelope)
    envelope.add_argument("--token", default=Default("UWS_TOKEN"), help="session token for the v2:token header")
    envelope.set_defaults(run=_run_envelope, with_billing=None)


def _rest_body_of(name: str) -> Build:
    def build(action: argparse.ArgumentParser) -> None:
        action.description = f"Print the REST JSON body of a {name}."
        _add_selection(action)
        if name == "suspend":
            _add_billing(action)
        action.set_defaults(run=_run_rest_body, with_billing=None)

    return build


_rest_body = Verbs(
    "Print the body of POST /m2m/v1/devices/actions/restore|suspend for the same options as envelope. A device list "
    "may carry --account here (UWS forbids it), and a service plan or custom fields may select on their own.",
    dest="action",
)
for _name in ("restore", "suspend"):
    _rest_body.verb(_name, f"the body of a {_name}")(_rest_body_of(_name))


def _parse(parse: argparse.ArgumentParser) -> None:
    parse.description = (
        "Parse a carrier callback, UWS SOAP XML or REST JSON (detected), and print the JSON form of the model, or "
        "convert it with --to."
    )
    parse.add_argument("file", metavar="FILE", help="the callback document, or - for standard input")
    parse.add_argument("--repair", action="store_true", help="mend end tags written </Name/> (old senders)")
    parse.add_argument("--to", choices=["soap", "rest"], help="print the callback in this format instead")
    parse.add_argument("--reveal-password", action="store_true", help="print the callback's password instead of ***")
    parse.set_defaults(run=_run_parse)


def _send_of(name: str) -> Build:
    def build(send: argparse.ArgumentParser) -> None:
        send.description = (
            f"{name.capitalize()} devices through the configured backend (UWS SOAP or REST) and print the RequestId. "
            "A selection by account, group or filter reaches every matching line, so it asks for confirmation "
            "unless --yes."
        )
        _add_selection(send)
        if name == "suspend":
            _add_billing(send)
        add_connection_options(send)
        send.add_argument(
            "--yes", action="store_true", help="do not ask before acting on an account, group, service plan or filter"
        )
        add_preview_option(send)
        send.add_argument(
            "--db", metavar="FILE|URL",
            help=f"record the request in this store (SQLite file or postgresql:// URL; default: the db setting, "
            f"${DB_VARIABLE}), for status and wait; a device list is then checked against the daily budget (its "
            "lines' actions of the last 24 hours counted from this store)",
        )  # fmt: skip
        send.add_argument(
            "--daily-budget", metavar="N",
            help=f"actions per line per 24 hours allowed with --db, 1 to {MAX_DAILY_BUDGET:,} (default: "
            f"${ENVIRONMENT['daily_budget']} or 5; 25 for accounts with the upgrade); 0 turns the guard off "
            "(said at start)",
        )  # fmt: skip
        send.add_argument(
            "--force", action="store_true",
            help="send a device list even if it takes lines over the daily budget (logged and recorded as forced)",
        )  # fmt: skip
        send.set_defaults(run=_run_send, action=name, with_billing=None)

    return build


#: The commands this module builds (uws_adapter.cli.main.COMMANDS).
COMMANDS: Dict[str, Build] = {
    "envelope": _envelope, "rest-body": _rest_body, "parse": _parse,
    "restore": _send_of("restore"), "suspend": _send_of("suspend"),
}  # fmt: skip


def add_connection_options(parser: argparse.ArgumentParser, *, rest_only: bool = False) -> None:
    """Where and how to reach the backend: the same options on restore, suspend and listeners."""
    connection = parser.add_argument_group("connection (defaults: --config file, then environment)")
    connection.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    if not rest_only:
        connection.add_argument("--backend", choices=BACKENDS, help=f"default: ${ENVIRONMENT['backend']} or soap")
        connection.add_argument(
            "--endpoint", metavar="URL", help=f"UWS base URL (default: ${ENVIRONMENT['soap_url']} or the carrier's)"
        )
    connection.add_argument(
        "--rest-url", metavar="URL", help=f"REST base URL (default: ${ENVIRONMENT['rest_url']} or the carrier's)"
    )
    connection.add_argument("--username", help=f"the UWS login (default: ${ENVIRONMENT['username']})")
    connection.add_argument("--password", help=f"default: ${ENVIRONMENT['password']} (prefer it: arguments show in ps)")
    if not rest_only:
        connection.add_argument(
            "--token",
            help="UWS only: use this session token instead of logging in; it wins over a login from the "
            f"settings file or the environment, and is refused beside --username/--password (default: "
            f"${ENVIRONMENT['token']}, used only when no login is configured)",
        )
    connection.add_argument(
        "--timeout",
        metavar="CONNECT,READ",
        help=f"seconds per connect and per read, one number for both (default: ${ENVIRONMENT['timeout']} or 10,120)",
    )
    connection.add_argument(
        "--deadline", metavar="SECONDS",
        help=f"for each whole exchange, answer included (default: ${ENVIRONMENT['deadline']} or 180)",
    )  # fmt: skip
    connection.add_argument(
        "--max-answer-bytes", metavar="BYTES",
        help=f"largest answer accepted, decompressed (default: ${ENVIRONMENT['max_answer_bytes']} or 1048576)",
    )  # fmt: skip
    if rest_only:
        parser.set_defaults(backend="rest", endpoint=None, token=None)


#: Settings field -> the option that gives it (the origin an error names).
_OPTIONS = {
    "backend": "--backend", "soap_url": "--endpoint", "rest_url": "--rest-url", "username": "--username",
    "password": "--password", "timeout": "--timeout", "deadline": "--deadline",
    "max_answer_bytes": "--max-answer-bytes", "daily_budget": "--daily-budget", "token": "--token", "db": "--db",
}  # fmt: skip


def connection_settings(args: argparse.Namespace) -> Settings:
    """The settings the connection options, --config and the environment describe, converted and
    checked once (a URL nothing can be sent to is bad input, refused before any I/O, naming the
    option). An explicit --token replaces a login from the file or the environment."""
    given = {name: getattr(args, option[2:].replace("-", "_"), None) for name, option in _OPTIONS.items()}
    settings = load_settings(args.config, origins=_OPTIONS, **given)
    if args.token:
        if args.username or args.password:
            raise InputError(
                "--token", "given with --username/--password", "give either a session token or a login, not both"
            )
        if settings.backend != "soap":
            raise InputError("--token", "is a UWS session token", "drop it for --backend rest (it logs in itself)")
        settings = replace(settings, username=None, password=None)
    return settings


def _run_envelope(args: argparse.Namespace) -> int:
    action = action_named(args.action, with_billing=args.with_billing)
    selection = _selection(args)
    if not args.token:
        raise InputError("--token", "a session token is required", "pass --token or set UWS_TOKEN")
    # Imported here: the REST commands of this module run without the UWS client (retiring UWS
    # deletes uws/ and this command), and without loading zeep.
    from uws_adapter.uws.envelope import build_envelope

    sys.stdout.write(build_envelope(action, selection, token=args.token).text + "\n")
    return 0


def _run_rest_body(args: argparse.Namespace) -> int:
    action = action_named(args.action, with_billing=args.with_billing)
    sys.stdout.write(json.dumps(rest_body(action, _selection(args)), indent=2) + "\n")
    return 0


def _read_document(name: str) -> bytes:
    limit = MAX_BYTES + 1  # one byte more than allowed, so that the parser reports the size
    if name == "-":
        return sys.stdin.buffer.read(limit)
    try:
        with open_to_read(name) as handle:
            data: bytes = handle.read(limit)
            return data
    except OSError as exc:
        raise InputError("FILE", cannot_read(name, exc), "check the path") from None


def is_xml(data: bytes) -> bool:
    """Whether ``data`` is an XML document rather than JSON: its first character but blanks, in
    the encoding its byte-order mark or its declaration's zero bytes say (UTF-8 otherwise), is
    "<". Anything else is read as JSON, so that JSON that is not an object ([1,2]) gets a JSON
    error, not an XML one. (An empty document is XML's to refuse.)"""
    encoding = wide_encoding(data) or "utf-8"
    head = data[:256].decode(encoding, errors="ignore").lstrip("\ufeff \t\r\n")
    return head[:1] in ("<", "")


def _run_parse(args: argparse.Namespace) -> int:
    data = _read_document(args.file)
    callback = parse_callback(data, repair=args.repair) if is_xml(data) else parse_rest_callback(data)
    if args.to is not None and callback.password and not args.reveal_password:
        callback = replace(callback, password=REDACTED)
    if args.to == "soap":
        sys.stdout.write(render_callback(callback).decode("utf-8") + "\n")
    elif args.to == "rest":
        sys.stdout.write(json.dumps(rest_callback_dict(callback), indent=2, ensure_ascii=False) + "\n")
    else:
        form = callback.to_dict(reveal_password=args.reveal_password)
        sys.stdout.write(json.dumps(form, indent=2, ensure_ascii=False) + "\n")
    return 0


def _confirm(args: argparse.Namespace, selection: Selection, settings: Settings) -> None:
    if args.yes or not isinstance(selection, DeviceQuery):
        return
    what = describe_query(selection)
    if not sys.stdin.isatty():
        raise InputError("--yes", f"{args.action} would reach every line of {what}", "pass --yes to confirm")
    counted = count_text(settings, selection)  # through the REST device list, when configured
    sys.stderr.write(f"{args.action} every line of {what}{f' ({counted})' if counted else ''}? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise InputError("confirmation", "not given", "nothing was sent")


def _run_send(args: argparse.Namespace) -> int:
    action = action_named(args.action, with_billing=args.with_billing)
    selection = _selection(args)
    settings = connection_settings(args)
    if args.preview:
        return run_preview(args.action, selection, settings)
    if settings.db:
        # The request log is created on first use: a path where none can be is bad input (exit 2),
        # refused before the confirmation and the login, as the receiver refuses it.
        check_creatable(settings.db)
    _confirm(args, selection, settings)
    store = open_db(settings.db) if settings.db else None
    try:
        # A session the client opens is logged out when the block ends: once the request is
        # answered (or has failed), never left to expire on the service.
        with connect_backend(settings, store=store) as client:
            if args.force and store is not None and isinstance(selection, DeviceList) and client.daily_budget:
                over = client.over_budget(selection.devices)
                if over:
                    sys.stderr.write(f"warning: --force: {len(over)} line(s) over the daily budget of "
                                     f"{settings.daily_budget}; sending anyway (recorded as forced)\n")  # fmt: skip
            try:
                request_id = client.change_device_state(action, selection, force=args.force)
            except OutcomeUnknown as unknown:
                raise outcome_unknown_error(unknown, settings.db) from None
            except InputError as exc:  # UWS has no withBilling: named by the option it was given as
                if exc.field != "with_billing":
                    raise
                flag = "--with-billing" if args.with_billing else "--without-billing"
                raise relocated(exc, flag, "drop it, or give --backend rest") from None
            sys.stdout.write(request_id + "\n")
            sys.stdout.flush()  # the RequestId is out before the logout's round trip
    finally:
        if store is not None:
            store.close()
    return 0


def outcome_unknown_error(unknown: OutcomeUnknown, db: Optional[str]) -> OutcomeUnknown:
    """``unknown``, its one line ending with the id the request was recorded under and the
    command that follows it (the carrier may have acted: never re-send blindly)."""
    if unknown.recorded_as is None:
        # The engine's text says already that the carrier may have acted, and what to check.
        text = f"{unknown}" + ("" if db else " (give --db to record such a request, and follow it with status)")
    else:
        shown = describe_store(db) if db else "the store"
        text = (
            f"{unknown}; recorded as {unknown.recorded_as} in {shown}: "
            f"'uws-adapter status {unknown.recorded_as} --db ...' and "
            f"'uws-adapter callbacks --device KIND:ID' show what arrives; do not send it again blindly"
        )
    told = OutcomeUnknown(text, request=unknown.request, http_status=unknown.http_status)
    told.recorded_as = unknown.recorded_as
    return told
