"""The ``uws-adapter`` command line.

Every failure prints one line on stderr and exits non-zero (2 for bad input, 1 for anything else);
set ``UWS_ADAPTER_DEBUG=1`` to see the traceback of an unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import List, NoReturn, Optional, Sequence, Tuple

from . import __version__
from .actions import action_named
from .callback_json import parse_rest_callback, rest_callback_dict
from .callback_xml import parse_callback, render_callback
from .client import UwsClient
from .devices import Device, read_devices_csv
from .emulator import DEFAULT_ACCOUNT, EmulatedDevice, Emulator, generated_devices
from .envelope import build_envelope
from .errors import DocumentError, InputError, TransportError, UwsAdapterError
from .receiver import Receiver, server_options
from .selection import CustomField, DeviceQuery, Selection, select
from .store import Store
from .tracking import run_demo, summary, wait_for
from .wire import UWS_BASE_URL
from .xmlsafe import MAX_BYTES

PROG = "uws-adapter"
EXIT_INPUT = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not usage text plus a message."""

    def error(self, message: str) -> NoReturn:
        raise InputError(self.prog, message, f"see '{self.prog} --help'")


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
    group.add_argument("--account", help="account name, e.g. 0000123456-00001 (keep leading zeros)")
    group.add_argument("--group", help="device group name")
    group.add_argument("--service-plan", help="only devices on this service plan")
    group.add_argument(
        "--custom-field", action="append", default=[], metavar="NAME=VALUE", help="e.g. CustomField2=SuperVend"
    )


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Verizon ThingSpace UWS SOAP and REST provisioning adapter.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

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
    billing = envelope.add_mutually_exclusive_group()
    billing.add_argument(
        "--with-billing", dest="with_billing", action="store_const", const=True, help="REST only; refused for SOAP"
    )
    billing.add_argument("--without-billing", dest="with_billing", action="store_const", const=False)
    envelope.set_defaults(run=_run_envelope)

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
            help=f"{name} devices through UWS and print the RequestId",
            description=f"Send ChangeDeviceState {name.capitalize()} to UWS and print the RequestId. A selection by "
            "account, group or filter reaches every matching line, so it asks for confirmation unless --yes.",
        )
        _add_selection(send)
        connection = send.add_argument_group("connection")
        connection.add_argument(
            "--endpoint",
            default=os.environ.get("UWS_ENDPOINT", UWS_BASE_URL),
            help="UWS base URL (default: $UWS_ENDPOINT or the carrier's)",
        )
        connection.add_argument("--username", default=os.environ.get("UWS_USERNAME"), help="default: $UWS_USERNAME")
        connection.add_argument(
            "--password",
            default=os.environ.get("UWS_PASSWORD"),
            help="default: $UWS_PASSWORD (prefer it: arguments show in ps)",
        )
        connection.add_argument(
            "--token", default=os.environ.get("UWS_TOKEN"), help="use this session token instead of logging in"
        )
        connection.add_argument("--timeout", default="10,120", metavar="CONNECT,READ", help="seconds (default 10,120)")
        send.add_argument("--yes", action="store_true", help="do not ask before acting on an account, group or filter")
        send.add_argument("--db", metavar="FILE", help="record the request in this store, for status and wait")
        send.set_defaults(run=_run_send, action=name)

    emulator = commands.add_parser(
        "emulator",
        help="run the UWS emulator on loopback",
        description="Run a UWS emulator (SOAP, callbacks) until Ctrl-C.",
    )
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8080)
    emulator.add_argument("--devices", type=int, default=100, metavar="N", help="generated Active devices (IMEI+ICCID)")
    emulator.add_argument("--devices-file", metavar="FILE", help="CSV devices instead (kind,identifier rows)")
    emulator.add_argument("--listener", metavar="URL", help="callback listener for the emulated account")
    emulator.add_argument(
        "--user", default="uws-user:uws-password", metavar="NAME:PASSWORD", help="the login it accepts"
    )
    emulator.add_argument("--callback-spacing", type=float, default=300.0, metavar="SECONDS", help="between re-sends")
    emulator.add_argument("--session-idle", type=float, default=1200.0, metavar="SECONDS")
    emulator.add_argument("--daily-budget", type=int, default=5, metavar="N", help="actions per line per day")
    emulator.set_defaults(run=_run_emulator)

    receiver = commands.add_parser(
        "receiver",
        help="receive callbacks into an SQLite store (needs the receiver extra: waitress)",
        description="Receive UWS SOAP and REST JSON callbacks, store them durably, acknowledge after commit.",
    )
    receiver.add_argument("--host", default="127.0.0.1")
    receiver.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    receiver.add_argument("--db", default="callbacks.db", metavar="FILE", help="SQLite store (default callbacks.db)")
    receiver.add_argument(
        "--username", default=os.environ.get("UWS_CALLBACK_USERNAME"), help="default: $UWS_CALLBACK_USERNAME"
    )
    receiver.add_argument(
        "--password", default=os.environ.get("UWS_CALLBACK_PASSWORD"), help="default: $UWS_CALLBACK_PASSWORD"
    )
    receiver.add_argument(
        "--previous-password",
        default=os.environ.get("UWS_CALLBACK_PREVIOUS_PASSWORD"),
        help="also accepted, while rotating",
    )
    receiver.add_argument("--threads", type=int, default=16, help="waitress worker threads")
    receiver.add_argument("--max-body", type=int, default=MAX_BYTES, metavar="BYTES")
    receiver.add_argument(
        "--commit",
        choices=["group", "each"],
        default="group",
        help="each: one commit per callback (a benchmark baseline)",
    )
    receiver.set_defaults(run=_run_receiver)

    status = commands.add_parser("status", help="where a request stands, from the store")
    status.add_argument("request_id", metavar="REQUEST_ID")
    status.add_argument("--db", default="callbacks.db", metavar="FILE")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_run_status)

    listing = commands.add_parser("callbacks", help="list stored callbacks")
    listing.add_argument("--db", default="callbacks.db", metavar="FILE")
    listing.add_argument("--request-id", metavar="REQUEST_ID")
    listing.add_argument("--json", action="store_true", help="one JSON object per line (the JSON form)")
    listing.set_defaults(run=_run_callbacks)

    wait = commands.add_parser("wait", help="wait with a progress bar until every device of a request has a callback")
    wait.add_argument("request_id", metavar="REQUEST_ID")
    wait.add_argument("--db", default="callbacks.db", metavar="FILE")
    wait.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS")
    wait.set_defaults(run=_run_wait)

    demo = commands.add_parser(
        "demo", help="end to end on loopback: emulator, receiver, suspend and restore a few thousand devices"
    )
    demo.add_argument("--devices", type=int, default=3000, metavar="N")
    demo.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS", help="per phase")
    demo.set_defaults(run=_run_demo)
    return parser


def _run_envelope(args: argparse.Namespace) -> int:
    action = action_named(args.action, with_billing=args.with_billing)
    selection = _selection(args)
    if not args.token:
        raise InputError("--token", "a session token is required", "pass --token or set UWS_TOKEN")
    request = build_envelope(action, selection, token=args.token)
    sys.stdout.write(request.text + "\n")
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


def _timeout(text: str) -> Tuple[float, float]:
    try:
        connect, read = (float(part) for part in text.split(","))
    except ValueError:
        raise InputError("--timeout", f"{text!r} is not CONNECT,READ seconds", "write e.g. 10,120") from None
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
    action = action_named(args.action)
    selection = _selection(args)
    _confirm(args, selection)
    if not args.token and not (args.username and args.password):
        raise InputError("--username", "no credentials", "pass --username and set UWS_PASSWORD, or pass --token")
    timeout = _timeout(args.timeout)
    store = Store(args.db) if args.db else None
    client = UwsClient(
        base_url=args.endpoint,
        username=args.username,
        password=args.password,
        token=args.token,
        timeout=timeout,
        store=store,
    )
    try:
        sys.stdout.write(client.change_device_state(action, selection) + "\n")
    finally:
        if store is not None:
            store.close()
    return 0


def _run_emulator(args: argparse.Namespace) -> int:
    name, sep, password = args.user.partition(":")
    if not sep or not name:
        raise InputError("--user", f"{args.user!r} is not NAME:PASSWORD", "write e.g. uws-user:secret")
    if args.devices_file:
        lines = [EmulatedDevice(device) for device in read_devices_csv(args.devices_file)]
    else:
        lines = generated_devices(args.devices)
    emulator = Emulator(
        host=args.host, port=args.port, devices=lines, users={name: password}, session_idle=args.session_idle,
        daily_budget=args.daily_budget, callback_spacing=args.callback_spacing,
    )  # fmt: skip
    if args.listener:
        emulator.register_listener(DEFAULT_ACCOUNT, args.listener)
    with emulator:
        sys.stdout.write(f"UWS emulator at {emulator.base_url} ({len(lines)} devices, account {DEFAULT_ACCOUNT})\n")
        sys.stdout.flush()
        threading.Event().wait()  # until Ctrl-C
    return 0


def _run_receiver(args: argparse.Namespace) -> int:
    try:
        from waitress.server import create_server
    except ImportError:
        raise InputError("receiver", "waitress is not installed", "pip install 'uws-adapter[receiver]'") from None
    if bool(args.username) != bool(args.password):
        raise InputError("--username", "give both a username and a password, or neither", "set UWS_CALLBACK_PASSWORD")
    with Store(args.db, batch=args.commit == "group") as store:
        app = Receiver(store, username=args.username, password=args.password, previous_password=args.previous_password,
                       max_body=args.max_body)  # fmt: skip
        server = create_server(app, **server_options(app, host=args.host, port=args.port, threads=args.threads))
        sys.stdout.write(f"receiver on http://{args.host}:{server.effective_port}/ storing into {args.db}\n")
        sys.stdout.flush()
        try:
            server.run()
        finally:
            server.close()
            app.close()
    return 0


def _existing_store(path: str) -> Store:
    if not os.path.isfile(path):
        raise InputError("--db", f"no store at {path}", "point --db at the receiver's SQLite file")
    return Store(path)


def _run_status(args: argparse.Namespace) -> int:
    with _existing_store(args.db) as store:
        status = store.status(args.request_id)
    if status.total == 0:
        raise InputError("REQUEST_ID", f"nothing known of {args.request_id}", "check the id and --db")
    if args.json:
        form = {"request_id": status.request_id, "action": status.action, "total": status.total,
                "succeeded": list(status.succeeded), "failed": status.failed, "pending": list(status.pending),
                "complete": status.complete}  # fmt: skip
        sys.stdout.write(json.dumps(form, indent=2) + "\n")
    else:
        sys.stdout.write(summary(status) + "\n")
    return 0


def _run_callbacks(args: argparse.Namespace) -> int:
    with _existing_store(args.db) as store:
        for event in store.iter_events(request_id=args.request_id):
            cb = event.callback
            if args.json:
                sys.stdout.write(json.dumps({"id": event.id, "attempts": event.attempts, **cb.to_dict()}) + "\n")
            else:
                devices = "+".join(f"{d.kind}:{d.identifier}" for d in cb.devices)
                fault = f" {cb.fault.code}" if cb.fault else ""
                changed = " (a re-send differed)" if event.differs else ""
                sys.stdout.write(
                    f"{event.id}\t{cb.request_id}\t{devices}\t{cb.action}\t{cb.status}{fault}\t"
                    f"x{event.attempts}{changed}\n"
                )
    return 0


def _run_wait(args: argparse.Namespace) -> int:
    with _existing_store(args.db) as store:
        statuses = wait_for(store, [args.request_id], timeout=args.timeout, out=sys.stderr)
    status = statuses[args.request_id]
    sys.stdout.write(summary(status) + "\n")
    if not status.complete:
        raise TransportError(f"{len(status.pending):,} devices still without a callback after {args.timeout:g} s")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    try:
        import waitress  # noqa: F401  # the demo runs the receiver on it
    except ImportError:
        raise InputError("demo", "waitress is not installed", "pip install 'uws-adapter[receiver]'") from None
    return 0 if run_demo(args.devices, timeout=args.timeout) else EXIT_FAILURE


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        status: int = args.run(args)
        return status
    except InputError as exc:
        _say(f"error: {exc}")
        return EXIT_INPUT
    except DocumentError as exc:
        _say(f"error: {exc}")
        return EXIT_INPUT
    except UwsAdapterError as exc:
        _say(f"error: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing useful is left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:  # the promise: no traceback unless asked for
        if os.environ.get("UWS_ADAPTER_DEBUG"):
            raise
        _say(f"unexpected {type(exc).__name__}: {exc} (set UWS_ADAPTER_DEBUG=1 for a traceback)")
        return EXIT_FAILURE


def _say(line: str) -> None:
    sys.stderr.write(f"{PROG}: {' '.join(line.split())}\n")
