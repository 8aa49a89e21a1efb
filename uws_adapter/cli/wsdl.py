"""``uws-adapter wsdl diff SOURCE``: the WSDL we ship against a service's (:mod:`uws_adapter.wsdldiff`).
Exit 0 when nothing is breaking, 1 when something is, 2 for a usage or input error (SOURCE that
cannot be read, or is refused)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict

from uws_adapter.cli.options import Build, Verbs
from uws_adapter.errors import InputError
from uws_adapter.settings.source import relocated
from uws_adapter.waits import check_seconds

#: The ``wsdl`` group (uws_adapter.cli.main.COMMANDS).
_WSDL = Verbs("Work with the service's published WSDL.")
COMMANDS: Dict[str, Build] = {"wsdl": _WSDL}


@_WSDL.verb("diff", "list each difference from our WSDL with its verdict (breaking or benign)")
def _diff(diff: argparse.ArgumentParser) -> None:
    diff.description = (
        "Compare the WSDL at SOURCE (a .svc?wsdl URL with its ?wsdl=wsdl0 and ?xsd=xsdN imports, a ?singleWsdl URL, "
        "or a file) with the WSDL uws-adapter ships: operations, SOAPActions, body and header elements, namespaces, "
        "member order, minOccurs, nillable, types. Each difference is breaking for our client or benign. Only the "
        "host SOURCE names is read. Exit 0: nothing breaking; 1: something is; 2: SOURCE could not be read or the "
        "options are wrong."
    )
    diff.add_argument("source", metavar="SOURCE", help="the service's WSDL URL, or a file")
    diff.add_argument("--json", action="store_true", help="print the result as one JSON object")
    diff.add_argument(
        "--timeout", default="10,30", metavar="CONNECT,READ", help="seconds per connect and per read (one number: both)"
    )
    diff.add_argument("--deadline", type=float, default=60.0, metavar="SECONDS", help="for each document")
    diff.add_argument("--max-bytes", type=int, default=4 * 1024 * 1024, metavar="BYTES",
                      help="largest document accepted")  # fmt: skip
    diff.set_defaults(run=_run_diff)


def _run_diff(args: argparse.Namespace) -> int:
    from uws_adapter.config import timeout_seconds
    from uws_adapter.wsdldiff import diff

    if args.max_bytes < 1:
        raise InputError("--max-bytes", f"{args.max_bytes} is not a size", "give a number of bytes, e.g. 4194304")
    try:
        deadline = check_seconds("--deadline", args.deadline, "60")
    except InputError as exc:  # an option is written, not passed: its fix says so, as the settings' do
        raise relocated(exc, "--deadline", "write e.g. 60") from None
    timeout = timeout_seconds(args.timeout, "--timeout")
    result = diff(args.source, timeout=timeout, deadline=deadline, max_bytes=args.max_bytes)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(result.lines()) + "\n")
    return 1 if result.breaking else 0
