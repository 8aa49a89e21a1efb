"""CLI commands that follow requests in the store: ``status``, ``callbacks``, ``wait`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from uws_adapter.cli.db import add_db_option, open_db
from uws_adapter.errors import InputError, TransportError
from uws_adapter.store import Backend
from uws_adapter.tracking import DEFAULT_SETTLE, SETTLED, TIMED_OUT, summary, wait_for

EXIT_FAILURE = 1


def add_commands(commands: Any) -> None:
    status = commands.add_parser("status", help="where a request stands, from the store")
    status.add_argument("request_id", metavar="REQUEST_ID")
    add_db_option(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_run_status)

    listing = commands.add_parser("callbacks", help="list stored callbacks")
    add_db_option(listing)
    listing.add_argument("--request-id", metavar="REQUEST_ID")
    listing.add_argument("--json", action="store_true", help="one JSON object per line (the JSON form)")
    listing.set_defaults(run=_run_callbacks)

    wait = commands.add_parser(
        "wait",
        help="wait until every listed device of a request has a callback (or an open-ended one settles)",
        description="Wait for a request's callbacks. A device-list request is complete when every listed "
        "device has a callback (exit 0). An account, group or filter request has no known total: it is "
        "settled when no callback has come for --settle seconds (exit 3), never complete. Exit 1 when "
        "--timeout passes first.",
    )
    wait.add_argument("request_id", metavar="REQUEST_ID")
    add_db_option(wait)
    wait.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS")
    wait.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE,
        metavar="SECONDS",
        help="for account, group and filter requests: quiet time after the last callback that ends the wait",
    )
    wait.set_defaults(run=_run_wait)

    demo = commands.add_parser(
        "demo", help="end to end on loopback: emulator, receiver, suspend and restore a few thousand devices"
    )
    demo.add_argument("--devices", type=int, default=3000, metavar="N", help="emulated lines (1 to 10,000)")
    demo.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS", help="per phase")
    demo.add_argument("--backend", choices=["soap", "rest"], default="soap", help="the API the demo provisions over")
    demo.set_defaults(run=_run_demo)


def _existing_store(location: str) -> Backend:
    return open_db(location, must_exist=True)


def _run_status(args: argparse.Namespace) -> int:
    with _existing_store(args.db) as store:
        status = store.status(args.request_id)
    if not status.known:
        raise InputError("REQUEST_ID", f"nothing known of {args.request_id}", "check the id and --db")
    if args.json:
        form = {"request_id": status.request_id, "action": status.action, "open_ended": status.open_ended,
                "total": None if status.open_ended else status.total, "callbacks": status.callbacks,
                "succeeded": list(status.succeeded), "failed": status.failed, "pending": list(status.pending),
                "complete": status.complete, "sent_at": status.sent_at,
                "last_callback_at": status.last_callback_at}  # fmt: skip
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
    if args.timeout < 0 or args.settle < 0:
        raise InputError("--timeout", "cannot be negative", "give seconds")
    with _existing_store(args.db) as store:
        if not store.status(args.request_id).known:
            raise InputError("REQUEST_ID", f"nothing known of {args.request_id}", "check the id and --db")
        ended, statuses = wait_for(store, [args.request_id], timeout=args.timeout, settle=args.settle, out=sys.stderr)
    status = statuses[args.request_id]
    sys.stdout.write(summary(status, settled=ended == SETTLED) + "\n")
    if ended == TIMED_OUT:
        missing = (
            f"{len(status.pending):,} devices still without a callback"
            if not status.open_ended
            else f"callbacks still arriving less than {args.settle:g} s apart"
        )
        raise TransportError(f"{missing} after {args.timeout:g} s")
    return ended


def _run_demo(args: argparse.Namespace) -> int:
    try:
        import waitress  # noqa: F401  # the demo runs the receiver on it
    except ImportError:
        raise InputError("demo", "waitress is not installed", "pip install 'uws-adapter[receiver]'") from None
    if not 1 <= args.devices <= 10_000:
        raise InputError("--devices", f"{args.devices} is out of range", "give 1 to 10,000 lines")
    if args.timeout <= 0:
        raise InputError("--timeout", "must be positive", "give seconds per phase")
    from uws_adapter.demo import run_demo

    return 0 if run_demo(args.devices, timeout=args.timeout, backend=args.backend) else EXIT_FAILURE
