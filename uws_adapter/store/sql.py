"""The small dialect the SQL core (:mod:`.core`) is written against, a connection that speaks it,
and what a backend gives the core (:class:`SqlAccess`).

Statements are written once, with ``?`` placeholders and the SQL both backends read alike
(``ON CONFLICT``, ``coalesce``, ``TRUE``); what differs is a field of :class:`Dialect`, or a
method of :class:`Sql` that asks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

from uws_adapter.errors import InputError, shown
from uws_adapter.model.text import decoded_text, xml_text

__all__ = [
    "POSTGRES", "SQLITE", "Dialect", "Row", "Sql", "SqlAccess", "bound_int", "bound_limit", "bound_text",
    "is_postgres_url",
]  # fmt: skip

Row = Sequence[Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """What one backend's SQL does its own way."""

    name: str
    #: The driver's placeholder for ``?``.
    placeholder: str
    #: Appended to a SELECT of queue rows that concurrent claimers must split between them (none on
    #: SQLite, whose write transaction holds the whole file).
    skip_locked: str
    #: The most values one ``IN (?, ...)`` list binds, or None: the whole list is one array (``= ANY(?)``).
    list_limit: Optional[int]
    #: The larger of two values (SQLite's scalar ``max``).
    greatest: str
    #: Run first in a transaction that every other such transaction (any process or instance)
    #: must wait for, with a key: None where every write transaction already does (SQLite).
    serialize: Optional[str]
    #: A join its planner takes in the order written (SQLite's CROSS JOIN), where it may pick a
    #: worse order on its own; a plain join elsewhere.
    ordered_join: str
    #: Whether the budget check counts each line's actions in one query before it reads any rows:
    #: on SQLite that saves reading ten thousand lines' rows one by one; PostgreSQL's planner,
    #: without fresh statistics right after a large request, ran that query slower than the reads.
    count_first: bool


def is_postgres_url(location: Union[str, Path]) -> bool:
    """True for ``postgresql://...`` (or ``postgres://``); anything else is a SQLite file's path."""
    return isinstance(location, str) and location.strip().lower().startswith(("postgresql://", "postgres://"))


def other_url(location: Union[str, Path]) -> Optional[str]:
    """What a URL that is not PostgreSQL's (``mysql://...``, SQLAlchemy's ``sqlite:///...``) is, said
    without the URL, which may hold a password; None for a path or a ``postgresql://`` URL. Taken
    for a SQLite path, it was echoed whole in every message about it (a SQLite :class:`Store`
    refuses it too)."""
    if not isinstance(location, str) or is_postgres_url(location):
        return None
    scheme, separator, _ = location.strip().partition("://")
    if not separator or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return None
    return f"a {scheme}:// URL (not shown: it may hold a password) is not a store: only postgresql:// URLs are"


SQLITE = Dialect("sqlite", "?", "", 500, "max", None, "CROSS JOIN", True)
POSTGRES = Dialect(
    "postgresql", "%s", " FOR UPDATE SKIP LOCKED", None, "greatest", "SELECT pg_advisory_xact_lock(?)",
    "JOIN", False,
)  # fmt: skip


#: The integers a statement can bind on both backends: a signed 64-bit column's (SQLite's INTEGER,
#: PostgreSQL's bigint). Past them sqlite3 raised a raw OverflowError, psycopg its own error.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def bound_int(field: str, value: object, *, low: int = BIGINT_MIN) -> int:
    """``value`` (an id or a count a caller gives a read) if a statement can bind it, and at least
    ``low``, else the :class:`InputError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or not BIGINT_MIN <= value <= BIGINT_MAX:
        raise InputError(
            field, f"{shown(value)} is not a whole number a 64-bit column holds", f"give 0 to {BIGINT_MAX:,}"
        )
    if value < low:
        raise InputError(field, f"{value} is below {low}", f"give {low} to {BIGINT_MAX:,}")
    return value


def bound_limit(limit: object) -> int:
    """A read's ``limit``: a count from 0. A negative one is no limit at all to SQLite (every row
    read) and an error to PostgreSQL."""
    return bound_int("limit", limit, low=0)


def bound_text(field: str, value: Optional[str]) -> Optional[str]:
    """``value`` (a RequestId a caller looks up) if a statement can bind it: a lone surrogate (a byte
    the locale cannot decode, on the command line) cannot be encoded for either backend, and a NUL
    ends a PostgreSQL statement. No RequestId stored has a character XML cannot carry (both
    callback parsers and the clients refuse them), so such a lookup is refused alike on both."""
    if not isinstance(value, str):
        return value
    return xml_text(field, decoded_text(field, value))


@lru_cache(maxsize=256)
def _translate(sql: str, placeholder: str) -> str:
    # The core's statements hold no literal '?' or '%': a plain replace is exact.
    return sql if placeholder == "?" else sql.replace("?", placeholder)


class Sql:
    """A DB-API connection (sqlite3 or psycopg 3) in its dialect; each method one statement."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def _execute(self, sql: str, args: Sequence[Any]) -> Any:
        return self.connection.execute(_translate(sql, self.dialect.placeholder), tuple(args))

    def one(self, sql: str, args: Sequence[Any] = ()) -> Optional[Row]:
        row: Optional[Row] = self._execute(sql, args).fetchone()
        return row

    def all(self, sql: str, args: Sequence[Any] = ()) -> List[Row]:
        return list(self._execute(sql, args).fetchall())

    def all_in(self, sql: str, column: str, values: Sequence[Any], args: Sequence[Any] = ()) -> List[Row]:
        """Every row of ``sql`` whose ``{}`` is ``column`` in ``values`` (see :meth:`lists`), the
        list's arguments bound before ``args``."""
        return [
            row for where, listed in self.lists(column, values) for row in self.all(sql.format(where), (*listed, *args))
        ]

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a change; how many rows it touched."""
        return int(self._execute(sql, args).rowcount)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.connection.cursor().executemany(_translate(sql, self.dialect.placeholder), [tuple(r) for r in rows])

    def insert(self, sql: str, args: Sequence[Any]) -> int:
        """Run an INSERT into a table with an ``id`` key; the new row's id (RETURNING is left out on
        SQLite, which has it only since 3.35)."""
        if self.dialect.name == "sqlite":
            return int(self._execute(sql, args).lastrowid or 0)
        row = self.one(sql + " RETURNING id", args)
        return int(row[0]) if row else 0

    def take_turns(self, key: int) -> None:
        """Wait for every other transaction that took turns on ``key`` to end (its locks held to
        this transaction's end)."""
        if self.dialect.serialize is not None:
            self.one(self.dialect.serialize, (key,))

    def insert_rows(
        self, sql: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """``sql`` (an INSERT whose rows are ``{rows}``) for each of ``rows``, in their order:
        on PostgreSQL one statement over arrays of the ``columns`` (of PostgreSQL ``types``), where
        one statement per row (``executemany``) cost 50 µs a row; on SQLite one execution per row
        (in-process, cheap)."""
        if not rows:
            return
        if self.dialect.list_limit is None:
            arrays = tuple([row[n] for row in rows] for n in range(len(columns)))
            source = ", ".join(f"?::{kind}[]" for kind in types)
            self.run(sql.format(rows=f"SELECT * FROM unnest({source}) AS c({', '.join(columns)})"), arrays)
        else:
            self.many(sql.format(rows=f"VALUES ({', '.join('?' * len(columns))})"), rows)

    def pairs(self, name: str, alias: str, rows: Sequence[Tuple[int, str]]) -> Tuple[str, Tuple[Any, ...]]:
        """SQLite's ``rows`` of (pos, identifier) as a table ``alias`` to join, and its arguments: a
        temporary table of this connection (any number of rows, where a VALUES list would meet the
        parameter limit). PostgreSQL binds lists whole (:meth:`text_array`) and needs no such table."""
        assert self.dialect.list_limit is not None, "SQLite only"
        self.run(f"CREATE TEMP TABLE IF NOT EXISTS {name} (pos INTEGER NOT NULL, identifier TEXT NOT NULL)")
        self.run(f"DELETE FROM temp.{name}")
        self.many(f"INSERT INTO temp.{name} (pos, identifier) VALUES (?, ?)", rows)
        return f"temp.{name} {alias}", ()

    def texts(
        self, name: str, columns: Sequence[str], rows: Sequence[Sequence[str]]
    ) -> Iterator[Tuple[str, Tuple[Any, ...]]]:
        """SQLite's ``rows`` of text as a table ``name`` of ``columns``: (a ``WITH`` clause to put
        before a statement, its arguments), as ``VALUES`` lists in as many pieces as the parameter
        limit needs (none for no rows), with a quarter of the limit's parameters free for the
        statement's own. No temporary table: filling one cost the budget check as much as its query
        (issue 19). PostgreSQL binds lists whole (:meth:`text_array`)."""
        limit = self.dialect.list_limit
        assert limit is not None, "SQLite only"
        head = f"WITH {name}({', '.join(columns)}) AS "
        step = max(1, limit // len(columns))
        each = f"({', '.join('?' * len(columns))})"
        for start in range(0, len(rows), step):
            piece = rows[start : start + step]
            yield f"{head}(VALUES {', '.join([each] * len(piece))})", tuple(v for row in piece for v in row)

    def text_array(self, values: Sequence[str]) -> Tuple[str, Any]:
        """``values`` (text, no NUL) as a PostgreSQL ``text[]``: (its expression, its argument).
        Without a space among them, one string split by the server: psycopg took longer to send
        20,000 strings as an array than the query took to run."""
        if not any(" " in value for value in values):
            return "string_to_array(?, ' ')", " ".join(values)
        return "?::text[]", list(values)

    def lists(self, column: str, values: Sequence[Any]) -> Iterator[Tuple[str, Tuple[Any, ...]]]:
        """``column`` in ``values`` as (condition, its arguments), in as many pieces as the
        dialect's parameter limit needs (none for an empty list)."""
        limit = self.dialect.list_limit
        if limit is None:
            if values:
                yield f"{column} = ANY(?)", (list(values),)
            return
        for start in range(0, len(values), limit):
            piece = tuple(values[start : start + limit])
            yield f"{column} IN ({','.join('?' * len(piece))})", piece


class SqlAccess:
    """How the SQL written once reaches a backend's database: a backend gives its dialect, its
    clock, and connections for reads, snapshots and write transactions; the roles written once
    (:mod:`.core`, :mod:`.handler_queue`) use only these."""

    dialect: Dialect
    clock: Callable[[], float]

    def _read(self, what: str, work: Callable[[Sql], T]) -> T:
        """``work`` on a connection that reads what is committed (each statement by itself)."""
        raise NotImplementedError

    def _glance(self, what: str, work: Callable[[Sql], T]) -> T:
        """:meth:`_read` of one short statement on every call of a service (the bridge's session
        read): a backend may run it where it is cheapest, never waiting for a write."""
        return self._read(what, work)

    def _snapshot(self, what: str, work: Callable[[Sql], T]) -> T:
        """``work``'s statements in one read snapshot: a write committed meanwhile is not half seen."""
        raise NotImplementedError

    def _transact(self, what: str, work: Callable[[Sql], T], *, durable: bool = True) -> T:
        """``work`` in one write transaction, committed durably before this returns; with
        ``durable=False`` committed (atomic, seen by all, kept when a process dies) without waiting
        for its own flush to disk: a power loss or an OS crash may undo it until the next durable
        commit. For what need not survive that at the price of an fsync per call."""
        raise NotImplementedError
