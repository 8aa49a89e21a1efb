"""CLI commands that build or send provisioning requests: ``envelope``, ``rest-body``, ``parse``,
``restore`` and ``suspend`` (on either backend)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, List, Optional, Tuple

from uws_adapter.callbacks.rest_json import parse_rest_callback, rest_callback_dict
from uws_adapter.callbacks.uws_render import render_callback
from uws_adapter.callbacks.uws_xml import parse_callback
from uws_adapter.cli.db import DB_VARIABLE, open_db
from uws_adapter.config import BACKENDS, CONFIG_VARIABLE, ENVIRONMENT, load_settings
from uws_adapter.config import connect as connect_backend
from uws_adapter.errors import InputError
from uws_adapter.model.actions import action_named
from uws_adapter.model.devices import Device, read_devices_csv
from uws_adapter.model.selection import CustomField, DeviceList, DeviceQuery, Selection, select
from uws_adapter.provisioning.base import Provisioner
from uws_adapter.rest.body import rest_body
from uws_adapter.soap.client import UwsClient
from uws_adapter.soap.envelope import build_envelope
from uws_adapter.xmlsafe import MAX_BYTES


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
    group.add_argument("--service-plan", help="only devices on this service plan")
    group.add_argument(
        "--custom-field", action="append", default=[], metavar="NAME=VALUE", help="e.g. CustomField2=SuperVend"
    )


def _add_billing(parser: argparse.ArgumentParser) -> None:
    billing = parser.add_mutually_exclusive_group()
    billing.add_argument(
        "--with-billing", dest="with_billing", action="store_const", const=True, help="suspend only; REST only"
    )
    billing.add_argument("--without-billing", dest="with_billing", action="store_const", const=False)


def _selection(args: argparse.Namespace) -> Selection:
    devices: Optional[List[Device]] = None
    if args.device or args.devices_file:
        devices = []
        for text in args.device:
            try:
                devices.append(Device.parse(text))
            except InputError as exc:
                raise exc.within("--device ") from None
        if args.devices_file:
            devices.extend(read_devices_csv(args.devices_file))
    fields = []
    for text in args.custom_field:
        try:
            fields.append(CustomField.parse(text))
        except InputError as exc:
            raise exc.within("--custom-field ") from None
    return select(devices, account=args.account, group=args.group, service_plan=args.service_plan, custom_fields=fields)


def add_commands(commands: Any) -> None:
    envelope = commands.add_parser(
        "envelope", help="print a ChangeDeviceState SOAP envelope", description="Print a ChangeDeviceState envelope."
    )
    envelope.add_argument("action", choices=["restore", "suspend"])
    _add_selection(envelope)
    envelope.add_argument(
        "--token",
        default=os.environ.get("UWS_TOKEN"),
        help="session token for the v2:token header (default: $UWS_TOKEN)",
    )
    _add_billing(envelope)
    envelope.set_defaults(run=_run_envelope)

    body = commands.add_parser(
        "rest-body",
        help="print the REST JSON body of a restore or suspend",
        description="Print the body of POST /m2m/v1/devices/actions/restore|suspend for the same options as "
        "envelope. A device list may carry --account here (UWS forbids it).",
    )
    body.add_argument("action", choices=["restore", "suspend"])
    _add_selection(body)
    _add_billing(body)
    body.set_defaults(run=_run_rest_body)

    parse = commands.add_parser(
        "parse",
        help="parse a callback (UWS SOAP or REST JSON) and print its JSON form",
        description="Parse a carrier callback, UWS SOAP XML or REST JSON (detected), and print the JSON "
        "form of the model, or convert it with --to.",
    )
    parse.add_argument("file", metavar="FILE", help="the callback document, or - for standard input")
    parse.add_argument("--repair", action="store_true", help="mend end tags written </Name/> (old senders)")
    parse.add_argument("--to", choices=["soap", "rest"], help="print the callback in this format instead")
    parse.add_argument("--reveal-password", action="store_true", help="print the callback's password instead of ***")
    parse.set_defaults(run=_run_parse)

    for name in ("restore", "suspend"):
        send = commands.add_parser(
            name,
            help=f"{name} devices (UWS or REST) and print the RequestId",
            description=f"{name.capitalize()} devices through the configured backend (UWS SOAP or REST) and print "
            "the RequestId. A selection by account, group or filter reaches every matching line, so it asks for "
            "confirmation unless --yes.",
        )
        _add_selection(send)
        if name == "suspend":
            _add_billing(send)
        connection = send.add_argument_group("connection (defaults: --config file, then environment)")
        connection.add_argument("--config", metavar="FILE", help=f"INI settings file (default: ${CONFIG_VARIABLE})")
        connection.add_argument("--backend", choices=BACKENDS, help=f"default: ${ENVIRONMENT['backend']} or soap")
        connection.add_argument(
            "--endpoint", help=f"UWS base URL (default: ${ENVIRONMENT['soap_url']} or the carrier's)"
        )
        connection.add_argument(
            "--rest-url", help=f"REST base URL (default: ${ENVIRONMENT['rest_url']} or the carrier's)"
        )
        connection.add_argument("--username", help=f"default: ${ENVIRONMENT['username']}")
        connection.add_argument(
            "--password", help=f"default: ${ENVIRONMENT['password']} (prefer it: arguments show in ps)"
        )
        connection.add_argument("--token", default=os.environ.get("UWS_TOKEN"), help="UWS only: use this session token")
        connection.add_argument(
            "--timeout",
            metavar="CONNECT,READ",
            help=f"seconds per connect and per read (default: ${ENVIRONMENT['timeout']} or 10,120)",
        )
        connection.add_argument(
            "--deadline", type=float, metavar="SECONDS",
            help=f"for each whole exchange, answer included (default: ${ENVIRONMENT['deadline']} or 180)",
        )  # fmt: skip
        connection.add_argument(
            "--max-answer-bytes", type=int, metavar="BYTES",
            help=f"largest answer accepted, decompressed (default: ${ENVIRONMENT['max_answer_bytes']} or 1048576)",
        )  # fmt: skip
        send.add_argument("--yes", action="store_true", help="do not ask before acting on an account, group or filter")
        send.add_argument(
            "--db", metavar="FILE|URL",
            help=f"record the request in this store (SQLite file or postgresql:// URL; default: the db setting, "
            f"${DB_VARIABLE}), for status and wait; a device list is then checked against the daily budget (its "
            "lines' actions of the last 24 hours counted from this store)",
        )  # fmt: skip
        send.add_argument(
            "--daily-budget", type=int, metavar="N",
            help=f"actions per line per 24 hours allowed with --db (default: ${ENVIRONMENT['daily_budget']} or 5; "
            "25 for accounts with the upgrade)",
        )  # fmt: skip
        send.add_argument(
            "--force", action="store_true",
            help="send a device list even if it takes lines over the daily budget (logged and recorded as forced)",
        )  # fmt: skip
        send.set_defaults(run=_run_send, action=name, with_billing=None)


def _run_envelope(args: argparse.Namespace) -> int:
    action = action_named(args.action, with_billing=args.with_billing)
    selection = _selection(args)
    if not args.token:
        raise InputError("--token", "a session token is required", "pass --token or set UWS_TOKEN")
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
        with open(name, "rb") as handle:
            return handle.read(limit)
    except OSError as exc:
        raise InputError("FILE", f"cannot read {name}: {exc.strerror}", "check the path") from None


def _run_parse(args: argparse.Namespace) -> int:
    data = _read_document(args.file)
    is_json = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    callback = parse_rest_callback(data) if is_json else parse_callback(data, repair=args.repair)
    if args.to == "soap":
        sys.stdout.write(render_callback(callback).decode("utf-8") + "\n")
    elif args.to == "rest":
        sys.stdout.write(json.dumps(rest_callback_dict(callback), indent=2, ensure_ascii=False) + "\n")
    else:
        form = callback.to_dict(reveal_password=args.reveal_password)
        sys.stdout.write(json.dumps(form, indent=2, ensure_ascii=False) + "\n")
    return 0


def parse_timeout(text: str, option: str = "--timeout") -> Tuple[float, float]:
    try:
        connect, read = (float(part) for part in text.split(","))
    except ValueError:
        raise InputError(option, f"{text!r} is not CONNECT,READ seconds", "write e.g. 10,120") from None
    return connect, read


def _confirm(args: argparse.Namespace, selection: Selection) -> None:
    if args.yes or not isinstance(selection, DeviceQuery):
        return
    what = ", ".join(
        f"{label} {value}"
        for label, value in (
            ("account", selection.account),
            ("group", selection.group),
            ("plan", selection.service_plan),
        )
        if value
    )
    if not sys.stdin.isatty():
        raise InputError("--yes", f"{args.action} would reach every line of {what}", "pass --yes to confirm")
    sys.stderr.write(f"{args.action} every line of {what}? Type yes to go on: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() != "yes":
        raise InputError("confirmation", "not given", "nothing was sent")


def _run_send(args: argparse.Namespace) -> int:
    action = action_named(args.action, with_billing=args.with_billing)
    selection = _selection(args)
    settings = load_settings(
        args.config, backend=args.backend, soap_url=args.endpoint, rest_url=args.rest_url, username=args.username,
        password=args.password, timeout=parse_timeout(args.timeout) if args.timeout else None,
        deadline=args.deadline, max_answer_bytes=args.max_answer_bytes, daily_budget=args.daily_budget,
    )  # fmt: skip
    _confirm(args, selection)
    location = args.db or settings.db
    store = open_db(location) if location else None
    try:
        if settings.backend == "soap" and args.token and not (settings.username and settings.password):
            client: Provisioner = UwsClient(
                base_url=settings.soap_url, token=args.token, timeout=settings.timeout, deadline=settings.deadline,
                max_answer_bytes=settings.max_answer_bytes, store=store,
            )  # fmt: skip
        else:
            client = connect_backend(settings, store=store)
        client.daily_budget = settings.daily_budget
        if args.force and store is not None and isinstance(selection, DeviceList):
            over = client.over_budget(selection.devices)
            if over:
                sys.stderr.write(f"warning: --force: {len(over)} line(s) over the daily budget of "
                                 f"{settings.daily_budget}; sending anyway (recorded as forced)\n")  # fmt: skip
        sys.stdout.write(client.change_device_state(action, selection, force=args.force) + "\n")
    finally:
        if store is not None:
            store.close()
    return 0
