"""``uws-adapter doctor``: the first-contact checks of :mod:`uws_adapter.doctor`, with the
connection settings every command uses. Exit 0 when nothing failed, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict

from uws_adapter.cli.db import DB_VARIABLE
from uws_adapter.cli.options import Build
from uws_adapter.cli.provision import add_connection_options, connection_settings
from uws_adapter.provisioning.urls import check_url


def _doctor(doctor: argparse.ArgumentParser) -> None:
    doctor.description = (
        "Check everything that can be checked without provisioning anything: the URL resolves and TLS verifies, "
        "UWS LogIn/LogOut (or the REST OAuth2 token and session), the WSDL against the service's metadata, the REST "
        "callback listeners of --account against --receiver-url, the store's schema, and the local clock against "
        "the server's. One line per check (PASS, WARN or FAIL with the fix), then a summary. Exit 0 when nothing "
        "failed, 1 otherwise."
    )
    add_connection_options(doctor)
    doctor.add_argument("--account", help="the account whose REST callback listeners are checked")
    doctor.add_argument("--receiver-url", metavar="URL", help="the URL of the receiver you run, as registered")
    doctor.add_argument(
        "--db", metavar="FILE|URL", help=f"the store to check (default: the db setting, ${DB_VARIABLE})"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    doctor.set_defaults(run=_run_doctor)


#: The commands this module builds (uws_adapter.cli.main.COMMANDS).
COMMANDS: Dict[str, Build] = {"doctor": _doctor}


def _run_doctor(args: argparse.Namespace) -> int:
    from uws_adapter.doctor import FAIL, DoctorOptions, run_checks, summary

    settings = connection_settings(args)
    receiver = check_url(args.receiver_url, "--receiver-url") if args.receiver_url else None
    token = args.token or (settings.token if settings.backend == "soap" else None)  # $UWS_TOKEN, via the settings
    options = DoctorOptions(settings, account=args.account, receiver_url=receiver, db=args.db, token=token)
    checks = run_checks(options)
    failed = any(check.status == FAIL for check in checks)
    if args.json:
        document = {"checks": [check.to_dict() for check in checks], "summary": summary(checks), "ok": not failed}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write("".join(check.line() + "\n" for check in checks) + summary(checks) + "\n")
    return 1 if failed else 0
