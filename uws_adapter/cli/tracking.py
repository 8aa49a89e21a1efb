"""CLI commands that follow requests in the store: ``status``, ``callbacks``, ``wait`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, Optional, Set

from uws_adapter.cli.db import add_db_option, open_db
from uws_adapter.cli.main import EXIT_FAILURE
from uws_adapter.cli.options import Build, parsed
from uws_adapter.errors import InputError, TransportError, install_hint
from uws_adapter.model.devices import Device, identity
from uws_adapter.settings.source import number, whole
from uws_adapter.store import describe_store
from uws_adapter.store.interfaces import RequestStatus, StoredEvent, Tracking
from uws_adapter.tracking import (
    COMPLETE,
    DEFAULT_SETTLE,
    NOTHING_ARRIVED,
    NOTHING_ARRIVED_HINT,
    SETTLED,
    TIMED_OUT,
    iso_time,
    plural,
    shown_device,
    summary,
    wait_for,
)


def _status(status: argparse.ArgumentParser) -> None:
    status.description = (
        "Where a request stands, from the store: by the RequestId the carrier gave, or the id a request whose "
        "outcome is unknown was recorded under (outcome-unknown:...). Devices are written as --device takes them; "
        "--json times are ISO 8601 UTC."
    )
    status.add_argument("request_id", metavar="REQUEST_ID")
    add_db_option(status)
    status.add_argument("--json", action="store_true", help="print JSON (times in ISO 8601 UTC)")
    status.set_defaults(run=_run_status)


def _callbacks(listing: argparse.ArgumentParser) -> None:
    listing.description = (
        "List stored callbacks, oldest first, under a header row (or one JSON object per line). At most --limit "
        "are printed; the last line then says how to see the next ones (--after)."
    )
    add_db_option(listing)
    listing.add_argument("--request-id", metavar="REQUEST_ID", help="only this request's callbacks")
    listing.add_argument(
        "--device", metavar="KIND:ID", help="only callbacks about this device (any of its identifiers, joined with +)"
    )
    listing.add_argument("--limit", default="100", metavar="N", help="print at most N callbacks, 1 to 100,000")
    listing.add_argument("--after", default="0", metavar="ID", help="start after the callback with this id (paging)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line (the JSON form)")
    listing.set_defaults(run=_run_callbacks)


def _wait(wait: argparse.ArgumentParser) -> None:
    wait.description = (
        f"Wait for a request's callbacks. A device-list request is complete when every listed device has a callback "
        f"(exit {COMPLETE}). An account, group or filter request has no known total: it is settled when no callback "
        f"has come for --settle seconds (exit {SETTLED}), never complete; if not one callback came, exit "
        f"{NOTHING_ARRIVED}, with what to check. Exit {TIMED_OUT} when --timeout passes first."
    )
    wait.add_argument("request_id", metavar="REQUEST_ID")
    add_db_option(wait)
    wait.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS", help="how long to wait at most")
    wait.add_argument(
        "--settle", type=float, default=DEFAULT_SETTLE, metavar="SECONDS",
        help="for account, group and filter requests: quiet time after the last callback that ends the wait",
    )  # fmt: skip
    wait.set_defaults(run=_run_wait)


def _demo(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--devices", type=int, default=3000, metavar="N", help="emulated lines (1 to 10,000)")
    demo.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS", help="per phase")
    demo.add_argument("--backend", choices=["soap", "rest"], default="soap", help="the API the demo provisions over")
    demo.set_defaults(run=_run_demo)


#: The commands this module builds (uws_adapter.cli.main.COMMANDS).
COMMANDS: Dict[str, Build] = {"status": _status, "callbacks": _callbacks, "wait": _wait, "demo": _demo}


def _run_status(args: argparse.Namespace) -> int:
    with open_db(args.db, must_exist=True) as store:
        status = _known(store, args.request_id)
    if args.json:
        form = {"request_id": status.request_id, "action": status.action, "open_ended": status.open_ended,
                "total": None if status.open_ended else status.total, "callbacks": status.callbacks,
                "succeeded": [shown_device(d) for d in status.succeeded],
                "failed": {shown_device(d): code for d, code in status.failed.items()},
                "pending": [shown_device(d) for d in status.pending], "complete": status.complete,
                "sent_at": iso_time(status.sent_at), "last_callback_at": iso_time(status.last_callback_at)}  # fmt: skip
        sys.stdout.write(json.dumps(form, indent=2) + "\n")
    else:
        sys.stdout.write(summary(status) + "\n")
    return 0


def _known(store: Tracking, request_id: str) -> RequestStatus:
    status = store.status(request_id)
    if not status.known:
        raise InputError("REQUEST_ID", f"nothing known of {request_id}", "check the id and --db")
    return status


#: The columns of ``callbacks``' rows.
CALLBACK_HEADER = "ID\tREQUEST_ID\tDEVICE\tACTION\tSTATUS\tDELIVERIES"


def _run_callbacks(args: argparse.Namespace) -> int:
    limit = whole(1, 100_000, "a number of callbacks")(args.limit, "--limit")
    after = whole(0, 2**62, "a callback id")(args.after, "--after")
    wanted: Optional[Set[str]] = None
    if args.device:
        (device,) = parsed([args.device], Device.parse, "--device")
        wanted = {identity(i.kind, i.identifier) for i in device.identifiers}
    shown, last, more = 0, after, False
    with open_db(args.db, must_exist=True) as store:
        for event in store.iter_events(request_id=args.request_id, after_id=after):
            if wanted is not None and not any(identity(d.kind, d.identifier) in wanted for d in event.callback.devices):
                continue
            if shown == limit:
                more = True
                break
            if shown == 0 and not args.json:
                sys.stdout.write(CALLBACK_HEADER + "\n")
            _write_callback(event, args.json)
            shown, last = shown + 1, event.id
    if shown == 0 and not args.json:
        which = " of that request" if args.request_id else ""
        which += " about that device" if args.device else ""
        since = f" after callback {after}" if after else ""
        sys.stdout.write(f"no callbacks{which}{since} in {describe_store(args.db)}\n")
    if more:
        sys.stderr.write(f"{plural(limit, 'callback')} shown; more with --after {last}\n")
    return 0


def _write_callback(event: StoredEvent, as_json: bool) -> None:
    cb = event.callback
    if as_json:
        sys.stdout.write(json.dumps({"id": event.id, "attempts": event.attempts, **cb.to_dict()}) + "\n")
        return
    devices = shown_device("+".join(f"{d.kind}:{d.identifier}" for d in cb.devices))  # one device's identifiers
    fault = f" {cb.fault.code}" if cb.fault else ""
    changed = " (a re-send differed)" if event.differs else ""
    sys.stdout.write(
        # A REST callback may carry no status (nor an action): '-', as for no device, not 'None'.
        f"{event.id}\t{cb.request_id}\t{devices or '-'}\t{cb.action or '-'}\t{cb.status or '-'}{fault}"
        f"\tx{event.attempts}{changed}\n"
    )


def _run_wait(args: argparse.Namespace) -> int:
    # The one check of seconds (NaN is never reached: a wait for it was endless).
    timeout, settle = number(0)(args.timeout, "--timeout"), number(0)(args.settle, "--settle")
    with open_db(args.db, must_exist=True) as store:
        _known(store, args.request_id)
        ended, statuses = wait_for(store, [args.request_id], timeout=timeout, settle=settle, out=sys.stderr)
    status = statuses[args.request_id]
    sys.stdout.write(summary(status, settled=ended == SETTLED) + "\n")
    if ended == NOTHING_ARRIVED:
        sys.stderr.write(f"{NOTHING_ARRIVED_HINT} (exit {NOTHING_ARRIVED})\n")
    if ended == TIMED_OUT:
        missing = (
            f"{plural(len(status.pending), 'device')} still without a callback"
            if not status.open_ended
            else f"callbacks still arriving less than {args.settle:g} s apart"
        )
        hint = f"; {NOTHING_ARRIVED_HINT}" if status.callbacks == 0 else ""
        raise TransportError(f"{missing} after {args.timeout:g} s{hint}")
    return ended


def _run_demo(args: argparse.Namespace) -> int:
    try:
        import waitress  # noqa: F401  # the demo runs the receiver on it
    except ImportError:
        raise InputError("demo", "waitress is not installed", install_hint("receiver")) from None
    if not 1 <= args.devices <= 10_000:
        raise InputError("--devices", f"{args.devices} is out of range", "give 1 to 10,000 lines")
    timeout = number(0, open_low=True)(args.timeout, "--timeout")  # seconds per phase; NaN waited for good
    from uws_adapter.demo import run_demo

    return 0 if run_demo(args.devices, timeout=timeout, backend=args.backend) else EXIT_FAILURE
