"""``restore|suspend ... --preview``: the lines a selection matches now, listed through the REST
device-list API with the same filters (:mod:`uws_adapter.rest.devicelist`), and nothing sent. On
the UWS backend the REST credentials are used when they are configured; the preview says what it
needs when they are not. The confirmation of a query selection shows the count the same way."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from uws_adapter.config import ENVIRONMENT, Settings, rest_client, unset
from uws_adapter.errors import InputError, UwsAdapterError
from uws_adapter.model.selection import DeviceList, DeviceQuery, Selection
from uws_adapter.rest.client import RestClient
from uws_adapter.rest.devicelist import Preview, preview

__all__ = ["add_preview_option", "count_text", "describe_query", "rest_lister", "run_preview"]

#: Lines a preview shows before "... and N more".
SHOWN = 10


def add_preview_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preview",
        action="store_true",
        help="list the lines the selection matches now (a count and the first lines) and send nothing; a query "
        "is listed through the REST device-list API, which needs the REST credentials on either backend",
    )


def describe_query(query: DeviceQuery) -> str:
    parts = [
        f"{label} {value}"
        for label, value in (("account", query.account), ("group", query.group), ("plan", query.service_plan))
        if value
    ]
    return ", ".join(parts + [f"{field.name}={field.value}" for field in query.custom_fields])


def rest_lister(settings: Settings) -> RestClient:
    """A REST client for listing, from the settings whatever the backend; an :class:`.InputError`
    naming what is missing otherwise."""
    missing = unset(settings)
    if missing:
        raise InputError(
            "--preview",
            "a selection is listed through the REST device-list API, which needs the REST credentials"
            + (" beside the UWS login" if settings.backend == "soap" else ""),
            f"set {', '.join(missing)} (in the environment or the --config file; REST URL: "
            f"{ENVIRONMENT['rest_url']} or --rest-url)",
        )
    # A page holds up to 2000 devices [doc], some 1 MB of JSON: more than a provisioning answer's cap.
    cap = max(settings.max_answer_bytes, 16 * 1024 * 1024)
    return rest_client(settings, options=settings.send_options.with_(max_answer_bytes=cap))


def _listed(settings: Settings, query: DeviceQuery) -> Preview:
    with rest_lister(settings) as client:
        try:
            return preview(client.list_devices, query, first=SHOWN)
        finally:
            client.logout()


def run_preview(action: str, selection: Selection, settings: Settings) -> int:
    if isinstance(selection, DeviceList):  # named lines: nothing to ask the service
        devices = selection.devices
        sys.stdout.write(f"{len(devices)} line(s) listed; {action} would reach each of them\n")
        for device in devices[:SHOWN]:
            sys.stdout.write(f"  {device}\n")
        if len(devices) > SHOWN:
            sys.stdout.write(f"  ... and {len(devices) - SHOWN} more\n")
    else:
        found = _listed(settings, selection)
        sys.stdout.write("\n".join(found.lines(describe_query(selection), action)) + "\n")
    sys.stdout.write(f"preview only: no {action} was sent\n")
    return 0


def count_text(settings: Settings, query: DeviceQuery) -> Optional[str]:
    """``"42 lines now"`` for a confirmation prompt, when the REST credentials are configured and
    the listing answers; None otherwise (the prompt then goes without a count)."""
    try:
        found = _listed(settings, query)
    except UwsAdapterError:
        return None
    return f"{found.count if found.complete else f'at least {found.count}'} line(s) now"
