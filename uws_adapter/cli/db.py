"""Where the CLI's stores are, and the ``db`` command group.

Every ``--db`` takes a SQLite file's path (the embedded default) or a ``postgresql://`` URL (the
``postgres`` extra), with ``$UWS_CALLBACK_DB`` as the default where the command reads or writes
the callback store. ``uws-adapter db upgrade --db URL`` brings a store to this release's schema
(a PostgreSQL store is never upgraded behind the operator's back: a service refuses to start on an
older schema and says to run it); ``uws-adapter db version --db URL`` shows where one stands.
A URL is shown without its password, always.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict

from uws_adapter.cli.options import Build, Default, Verbs
from uws_adapter.errors import InputError
from uws_adapter.store import (
    Backend,
    describe_store,
    is_postgres_url,
    no_store_at,
    open_store,
    other_url,
    schema_versions,
    upgrade_store,
)

#: The environment variable that names the callback store, for every command that uses it.
DB_VARIABLE = "UWS_CALLBACK_DB"


def add_db_option(
    parser: Any, default: str = "callbacks.db", *, variable: str = DB_VARIABLE, what: str = "store"
) -> None:
    """``--db FILE|URL``, defaulting to ``$variable`` and then ``default``."""
    parser.add_argument(
        "--db",
        default=Default(variable, default),  # resolved after parsing: --help never shows the variable's value
        metavar="FILE|URL",
        help=f"{what}: a SQLite file or a postgresql:// URL (default: ${variable} or {default})",
    )


def check_exists(location: str, fix: str = "point --db at the receiver's SQLite file or database URL") -> None:
    """A SQLite path that is not a file is an error (exit 2): a reader must not create an empty
    store and report that nothing is known, nor an upgrade a new one at a mistyped path. An empty
    file is not a store either (every store has its schema): SQLite would make one in it."""
    if is_postgres_url(location):
        return
    missing = no_store_at(location)
    if missing is not None:
        raise InputError("--db", missing, fix)


def check_creatable(location: str) -> None:
    """A store that can be created or opened at ``location``: named as given, never its companion
    files. (A postgresql:// URL is checked when it is opened.)"""
    if is_postgres_url(location):
        return
    url = other_url(location)
    if url is not None:
        raise InputError("--db", url, "give a SQLite file's path (e.g. callbacks.db) or a postgresql:// URL")
    folder = os.path.dirname(os.path.abspath(location))
    if not os.path.isdir(folder):
        raise InputError(
            "--db", f"the folder of the database {location} does not exist", "create it, or give another path"
        )
    if os.path.isdir(location):
        raise InputError("--db", f"{location} is a folder, not a database file", "give a file name")
    if not os.access(folder, os.W_OK):
        raise InputError("--db", f"cannot write in the folder of the database {location}", "give a writable place")


def open_db(location: str, *, must_exist: bool = False, **options: Any) -> Backend:
    """The store at ``location``; with ``must_exist``, only one that is there (:func:`check_exists`)."""
    if must_exist:
        check_exists(location)
    return open_store(location, **options)


#: The ``db`` group (uws_adapter.cli.main.COMMANDS).
_DB = Verbs(
    "Manage a store's schema. A PostgreSQL store must be upgraded with 'db upgrade' before the services of a new "
    "release start on it (they refuse an older schema); a SQLite file is upgraded in place when opened, and 'db "
    "upgrade' does that too."
)
COMMANDS: Dict[str, Build] = {"db": _DB}


@_DB.verb("upgrade", "bring the store to this release's schema (idempotent)")
def _upgrade(upgrade: argparse.ArgumentParser) -> None:
    add_db_option(upgrade)
    upgrade.add_argument(
        "--create", action="store_true", help="make a new SQLite store if there is none at --db (else: an error)"
    )
    upgrade.set_defaults(run=_run_upgrade)


@_DB.verb("version", "show the store's schema version")
def _version(version: argparse.ArgumentParser) -> None:
    add_db_option(version)
    version.set_defaults(run=_run_version)


def _run_upgrade(args: argparse.Namespace) -> int:
    if not args.create:
        check_exists(args.db, "point --db at the store to upgrade, or add --create to make a new one there")
    else:
        check_creatable(args.db)
    sys.stdout.write(upgrade_store(args.db) + "\n")
    return 0


def _run_version(args: argparse.Namespace) -> int:
    check_exists(args.db, "point --db at a SQLite file or a database URL")
    version, expected = schema_versions(args.db)
    state = "current" if version == expected else ("run 'db upgrade'" if version < expected else "newer release")
    sys.stdout.write(f"{describe_store(args.db)}: store schema {version} (this release: {expected}; {state})\n")
    return 0
