"""``uws-adapter dead-letters``: read, export and clear the dead letters without SQL (list, show,
export, purge), on either store backend. What is shown is redacted again on the way out (letters
are redacted when kept; this also covers letters of older releases) and control characters are
escaped, so that a hostile document cannot write to the operator's terminal."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, TextIO

from uws_adapter.cli.db import add_db_option, open_db
from uws_adapter.cli.options import Build, Verbs
from uws_adapter.errors import InputError
from uws_adapter.logs import printable
from uws_adapter.redaction import redact
from uws_adapter.settings.source import whole
from uws_adapter.store import Backend, describe_store
from uws_adapter.store.dead_letters import DeadLetter

__all__ = ["COMMANDS"]

_PAGE = 500
#: Letter ids and counts, as the callbacks command takes its own (a number past what the store's
#: columns hold was a raw OverflowError from the store).
_LETTER_ID = whole(0, 2**62, "a letter id")
_LETTERS = whole(1, 2**62, "a number of letters")


#: The ``dead-letters`` group (uws_adapter.cli.main.COMMANDS).
_LETTERS_GROUP = Verbs(
    "The dead letters of a receiver's or bridge's store: refused documents (redacted), callbacks whose values "
    "could not be stored and handler runs that gave up. They count against --dead-letter-max-bytes; past it "
    "the oldest are rotated out.",
    metavar="VERB",
)
COMMANDS: Dict[str, Build] = {"dead-letters": _LETTERS_GROUP}


@_LETTERS_GROUP.verb("list", "one line per letter: id, time (UTC), media type, size, reason")
def _list_options(listing: argparse.ArgumentParser) -> None:
    add_db_option(listing)
    listing.add_argument("--after", default="0", metavar="ID", help="only letters after this id")
    listing.add_argument("--limit", default="100", metavar="N", help="at most N letters")
    listing.add_argument("--json", action="store_true", help="one JSON object per line, without bodies")
    listing.set_defaults(run=_run_list)


@_LETTERS_GROUP.verb("show", "one letter with its body (redacted, control characters escaped)")
def _show_options(show: argparse.ArgumentParser) -> None:
    show.add_argument("letter_id", metavar="ID")
    add_db_option(show)
    show.set_defaults(run=_run_show)


@_LETTERS_GROUP.verb("export", "every letter as JSON lines, bodies redacted (to --out or stdout)")
def _export_options(export: argparse.ArgumentParser) -> None:
    add_db_option(export)
    export.add_argument("--out", metavar="FILE", help="write to FILE (created; must not exist) instead of stdout")
    export.set_defaults(run=_run_export)


@_LETTERS_GROUP.verb("purge", "delete letters: --id ID (repeatable), --before TIME, or --all")
def _purge_options(purge: argparse.ArgumentParser) -> None:
    add_db_option(purge)
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", dest="ids", metavar="ID", help="this letter (repeatable)")
    which.add_argument("--before", metavar="TIME", help="letters kept before TIME (ISO 8601; UTC unless a zone)")
    which.add_argument("--all", action="store_true", help="every letter")
    purge.set_defaults(run=_run_purge)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _body_text(letter: DeadLetter) -> str:
    return redact(letter.body or b"").decode("utf-8", "replace")


def _form(letter: DeadLetter, *, body: bool) -> Dict[str, Any]:
    form: Dict[str, Any] = {
        "id": letter.id, "received_at": _when(letter.received_at), "content_type": letter.content_type,
        "size": letter.size, "reason": letter.reason,
    }  # fmt: skip
    if body:
        form["body"] = _body_text(letter)
    return form


def _pages(store: Backend, *, after: int, bodies: bool) -> Iterator[DeadLetter]:
    while True:
        page = store.dead_letters(after_id=after, limit=_PAGE, bodies=bodies)
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1].id


def _run_list(args: argparse.Namespace) -> int:
    after, limit = _LETTER_ID(args.after, "--after"), _LETTERS(args.limit, "--limit")
    with open_db(args.db, must_exist=True) as store:
        letters = store.dead_letters(after_id=after, limit=limit)
        totals = store.dead_letter_totals()
    for letter in letters:
        if args.json:
            sys.stdout.write(json.dumps(_form(letter, body=False)) + "\n")
        else:
            kind = printable(letter.content_type or "-", 60)
            sys.stdout.write(
                f"{letter.id}\t{_when(letter.received_at)}\t{kind}\t{letter.size}\t{printable(letter.reason, 300)}\n"
            )
    cap = "no cap" if totals.max_bytes is None else f"a cap of {totals.max_bytes:,} bytes"
    sys.stderr.write(
        f"dead letters: {len(letters)} shown; all of them count {totals.bytes:,} bytes against {cap}; "
        f"{totals.rotated:,} rotated out\n"
    )
    return 0


def _run_show(args: argparse.Namespace) -> int:
    letter_id = _LETTER_ID(args.letter_id, "ID")
    with open_db(args.db, must_exist=True) as store:
        letter = store.dead_letter(letter_id)
    if letter is None:
        raise InputError("ID", f"no dead letter {letter_id}", "see `uws-adapter dead-letters list`")
    sys.stdout.write(
        f"id: {letter.id}\nreceived: {_when(letter.received_at)}\n"
        f"content type: {printable(letter.content_type or '-', 200)}\nsize: {letter.size}\n"
        f"reason: {printable(letter.reason, 1000)}\n\n"
    )
    for line in _body_text(letter).split("\n"):  # line breaks kept, every other control escaped
        sys.stdout.write(printable(line, len(line)) + "\n")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    with open_db(args.db, must_exist=True) as store:
        if args.out is None:
            count = _export(store, sys.stdout)
        else:
            try:
                with open(args.out, "x", encoding="utf-8") as out:
                    count = _export(store, out)
            except FileExistsError:
                raise InputError("--out", f"{args.out} exists", "give a new file name") from None
            except OSError as exc:
                raise InputError("--out", f"cannot write {args.out}: {exc.strerror}", "give a writable path") from None
    sys.stderr.write(f"dead letters: {count} exported\n")
    return 0


def _export(store: Backend, out: TextIO) -> int:
    count = 0
    for letter in _pages(store, after=0, bodies=True):
        out.write(json.dumps(_form(letter, body=True)) + "\n")
        count += 1
    return count


def _run_purge(args: argparse.Namespace) -> int:
    ids = [_LETTER_ID(letter_id, "--id") for letter_id in args.ids or ()]
    before = None
    if args.before is not None:
        try:
            moment = datetime.fromisoformat(args.before.replace("Z", "+00:00"))
        except ValueError:
            raise InputError("--before", f"{args.before!r} is not an ISO 8601 time", "e.g. 2026-12-01T00:00") from None
        before = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    with open_db(args.db, must_exist=True) as store:
        gone = store.purge_dead_letters(ids=ids, before=before)
    sys.stdout.write(f"dead letters: {gone} purged from {describe_store(args.db)}\n")
    return 0
