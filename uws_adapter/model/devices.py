"""Device identifiers and devices: the kinds the carrier knows and what each kind's value looks like.

Kinds are matched case-insensitively (the wire carries ``IMEI``, ``Imei`` and ``imei``) and always
written in the documented upper-case spelling.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Protocol, Tuple, Type, TypeVar, Union

from uws_adapter.errors import Code, InputError, shown
from uws_adapter.localfiles import cannot_read, open_to_read
from uws_adapter.model.text import a_string

# Kind -> (pattern of a valid identifier, description used in error messages). Only what the
# carrier's documents state is enforced [doc]: ESN decimal, ICCID up to 20 digits, IMEI up to 16
# digits, MEID hexadecimal. They state nothing for the other kinds, whose examples are digits of
# various lengths, so those are checked leniently: 1 to 64 letters, digits, "+" or "-", the rest
# left to the carrier [inferred]. A real line refused here would be a bug.
_LENIENT = (re.compile(r"[0-9A-Za-z+\-]{1,64}"), "1 to 64 letters, digits, + or - (the carrier checks the rest)")
_KIND_RULES: Mapping[str, Tuple[re.Pattern[str], str]] = {
    "ESN": (re.compile(r"[0-9]{1,32}"), "decimal digits"),
    "MEID": (re.compile(r"[0-9A-Fa-f]{1,32}"), "hexadecimal digits"),
    "IMEI": (re.compile(r"[0-9]{1,16}"), "up to 16 digits"),
    "ICCID": (re.compile(r"[0-9]{1,20}"), "up to 20 digits"),
    **dict.fromkeys(("MDN", "MSISDN", "MIN", "EID", "IMSI"), _LENIENT),
}

#: Every kind the package accepts, in the documented spelling.
KINDS: Tuple[str, ...] = tuple(_KIND_RULES)
#: Kinds that only the REST API knows [doc]; a UWS envelope refuses them.
REST_ONLY_KINDS = frozenset({"EID", "IMSI"})
#: The kinds each API accepts ("rest", "soap"): the one list their refusals quote.
API_KINDS: Dict[str, Tuple[str, ...]] = {
    "rest": KINDS,
    "soap": tuple(kind for kind in KINDS if kind not in REST_ONLY_KINDS),
}


T = TypeVar("T")


class _Named(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def identifier(self) -> str: ...


def identity(kind: str, identifier: str) -> str:
    """The one key of an identifier, wherever identifiers are compared or stored (the emulator's
    inventory, the store's events and request log, the tracker, the relay): ``KIND:IDENTIFIER``,
    both upper-cased, since the wire writes kinds in any case and hex ESN/MEID in either."""
    return f"{kind.strip().upper()}:{identifier.strip().upper()}"


def device_key(identifiers: Iterable[_Named]) -> str:
    """The one key of a device named by ``identifiers`` (any order, any case): their identities,
    sorted, joined by ``|``."""
    if type(identifiers) is tuple and len(identifiers) == 1:  # most callbacks: nothing to sort or join
        return identity(identifiers[0].kind, identifiers[0].identifier)
    return "|".join(sorted(identity(i.kind, i.identifier) for i in identifiers))


def as_tuple_of(value: object, item_type: Type[T], field: str, fix: str) -> Tuple[T, ...]:
    """One ``item_type`` or an iterable of them, as a tuple; anything else is an InputError that
    names ``field`` (and the position of a wrong item)."""
    if isinstance(value, item_type):
        return (value,)
    if type(value) is tuple:  # most often (every model object holds tuples): no Iterable check (1 µs)
        items: Tuple[Any, ...] = value
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InputError(field, f"expected {item_type.__name__} objects, got {shown(value)}", fix)
    else:
        items = tuple(value)
    for position, item in enumerate(items):
        if not isinstance(item, item_type):
            raise InputError(f"{field}[{position}]", f"expected a {item_type.__name__}, got {type(item).__name__}", fix)
    return items


def split_pair(
    text: str, separator: str, field: str, form: str, example: str, *, code: str, allow_blank: bool = True
) -> Tuple[str, str]:
    """The two sides of ``text`` around its first ``separator`` (``KIND:IDENTIFIER``,
    ``NAME=VALUE``): the one refusal of text that is not of that ``form`` (nor, without
    ``allow_blank``, of text with a blank side), naming an ``example``."""
    head, sep, tail = a_string(field, text, f"write e.g. {example}", code=code).partition(separator)
    if not sep or not (allow_blank or (head.strip() and tail.strip())):
        raise InputError(field, f"{shown(text)} is not {form}", f"write e.g. {example}", code=code)
    return head, tail


def normalize_kind(kind: object, api: str = "rest") -> str:
    """The documented spelling of ``kind`` (any case), or :class:`InputError` (``Kind.Invalid``)
    for a kind ``api`` does not accept, quoting that API's kinds (:data:`API_KINDS`). The model
    itself takes every kind (``"rest"``); a UWS request is read with ``"soap"``."""
    kinds = API_KINDS[api]
    hint = "use one of " + ", ".join(kinds)
    upper = a_string("kind", kind, hint, code=Code.DEVICE_KIND).strip().upper()
    if upper not in kinds:
        raise InputError("kind", f"unknown identifier kind {shown(kind)}", hint, code=Code.DEVICE_KIND)
    return upper


@dataclass(frozen=True)
class DeviceIdentifier:
    """One identifier of a device, e.g. ``DeviceIdentifier("imei", "990003420535573")``.

    ``kind`` is normalized to upper case; ``identifier`` must fit what the carrier documents for
    the kind (an IMEI up to 16 digits, an ICCID up to 20, an MEID hexadecimal, an ESN decimal) and
    is otherwise checked leniently (1 to 64 letters, digits, + or -).
    """

    kind: str
    identifier: str

    def __post_init__(self) -> None:
        kind = normalize_kind(self.kind)
        value = a_string(
            "identifier", self.identifier, "pass identifiers as strings: a number loses leading zeros",
            code=Code.DEVICE_IDENTIFIER,
        ).strip()  # fmt: skip
        pattern, described = _KIND_RULES[kind]
        if not pattern.fullmatch(value):
            raise InputError(
                "identifier",
                f"{shown(value)} is not a valid {kind}",
                f"an {kind} is {described}" if kind[0] in "AEIOU" else f"a {kind} is {described}",
                code=Code.DEVICE_IDENTIFIER,
            )
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "identifier", value)

    @classmethod
    def parse(cls, text: str) -> DeviceIdentifier:
        """Parse ``KIND:IDENTIFIER``, e.g. ``"ESN:09611822299"``."""
        return cls(*split_pair(
            text, ":", "identifier", "KIND:IDENTIFIER", "IMEI:990003420535573", code=Code.DEVICE_IDENTIFIER,
            allow_blank=False,
        ))  # fmt: skip

    def __str__(self) -> str:
        return f"{self.kind}:{self.identifier}"


@dataclass(frozen=True)
class Device:
    """A device, named by one or more identifiers of different kinds (one is enough for Restore
    and Suspend)."""

    identifiers: Tuple[DeviceIdentifier, ...]

    def __post_init__(self) -> None:
        ids = as_tuple_of(self.identifiers, DeviceIdentifier, "identifiers", "use DeviceIdentifier(kind, identifier)")
        if not ids:
            raise InputError("identifiers", "a device needs at least one identifier", "add e.g. IMEI:990003420535573")
        seen = set()
        for position, item in enumerate(ids):
            if item.kind in seen:
                raise InputError(
                    f"identifiers[{position}]",
                    f"a second {item.kind} for one device",
                    "give each kind at most once per device",
                )
            seen.add(item.kind)
        object.__setattr__(self, "identifiers", ids)

    @classmethod
    def of(cls, kind: str, identifier: str) -> Device:
        """A device with a single identifier."""
        return cls((DeviceIdentifier(kind, identifier),))

    @classmethod
    def parse(cls, text: str) -> Device:
        """Parse ``KIND:ID`` or several joined with ``+``: ``"IMEI:...+ICCID:..."``."""
        identifiers = []
        parts = a_string("device", text, "write KIND:IDENTIFIER").split("+")
        for position, part in enumerate(parts):
            try:
                identifiers.append(DeviceIdentifier.parse(part))
            except InputError as exc:
                where = f"{shown(text)} part {position + 1}: " if len(parts) > 1 else f"{shown(text)}: "
                raise exc.within(where) from None
        return cls(tuple(identifiers))

    def __str__(self) -> str:
        return "+".join(str(i) for i in self.identifiers)


def read_devices_csv(source: Union[str, Path, io.TextIOBase], *, max_devices: Optional[int] = None) -> List[Device]:
    """Devices from CSV rows ``kind,identifier[,kind,identifier...]`` (one device per row).

    A header row starting with ``kind``, blank rows and rows starting with ``#`` are skipped.
    Errors name the file and line. ``max_devices``: the most the caller can use (None: no bound);
    the row past it is an error there, before the rest of the file is read.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            with open_to_read(path, "r", newline="", encoding="utf-8-sig") as handle:
                return list(_rows_to_devices(_bounded_lines(handle, str(path)), str(path), max_devices))
        except OSError as exc:
            raise InputError("devices file", cannot_read(path, exc), "check the path") from None
        except UnicodeDecodeError:
            raise InputError("devices file", f"{path} is not UTF-8 text", "save it as UTF-8 CSV") from None
        except InputError:
            raise
        except ValueError:  # open()'s "embedded null byte": a NUL in the path
            raise InputError(
                "devices file", f"cannot read {shown(path)}: a NUL in the path", "check the path"
            ) from None
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise InputError("devices file", f"a {type(source).__name__} is not a path or text", "pass a path or open(...)")
    # An open stream is read a bounded line at a time, as a file by its path is (sys.stdin, a pipe);
    # any other iterable of lines is already in memory.
    lines = _bounded_lines(source, "devices file") if hasattr(source, "readline") else source
    return list(_rows_to_devices(lines, "devices file", max_devices))


#: The longest line a devices file may have: a row holds one device's few identifiers. Bounds what
#: one line costs to read (a file with no line break, /dev/zero say, was read whole into memory).
MAX_CSV_LINE = 64 * 1024
_CSV_FIX = "write each row as kind,identifier[,kind,identifier...]"


def _bounded_lines(handle: Union[io.TextIOBase, IO[Any]], name: str) -> Iterator[str]:
    for line_no in itertools.count(1):
        # Room for the line's end too ("\r\n" at most), which is not counted: the bound is the
        # same for the last line, a line ending in "\n" and one ending in "\r\n".
        line = handle.readline(MAX_CSV_LINE + 2)
        if not line:
            return
        if len(line.rstrip("\r\n")) > MAX_CSV_LINE:
            raise InputError(f"{name} line {line_no}", f"is longer than {MAX_CSV_LINE:,} characters", _CSV_FIX)
        yield line


def _rows_to_devices(handle: Iterable[str], name: str, max_devices: Optional[int] = None) -> Iterator[Device]:
    rows = csv.reader(handle)
    found = 0
    for line_no in itertools.count(1):
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # a field past csv's limit; a NUL before Python 3.11
            raise InputError(f"{name} line {rows.line_num}", f"is not CSV ({exc})", _CSV_FIX) from None
        cells = [cell.strip() for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells or cells[0].startswith("#"):
            continue
        if line_no == 1 and cells[0].lower() == "kind":
            continue
        if len(cells) % 2:
            raise InputError(f"{name} line {line_no}", f"{len(cells)} cells, expected kind,identifier pairs", _CSV_FIX)
        found += 1
        if max_devices is not None and found > max_devices:
            # Refused here, not once all is read: ten million rows took 3.8 GB and minutes to refuse.
            raise InputError(
                f"{name} line {line_no}", f"more than {max_devices:,} devices",
                f"split it into files of at most {max_devices:,} devices", code=Code.MAX_REQUESTS_EXCEEDED,
            )  # fmt: skip
        try:
            yield Device(tuple(DeviceIdentifier(cells[i], cells[i + 1]) for i in range(0, len(cells), 2)))
        except InputError as exc:
            raise exc.within(f"{name} line {line_no}: ") from None
