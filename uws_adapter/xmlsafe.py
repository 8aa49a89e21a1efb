"""The one hardened path for untrusted XML (callbacks, service responses).

No DTD or DOCTYPE at all, no entities, no network, no XInclude, and caps on size and depth. The
parser never recovers from errors: libxml2's recover mode turns attacks into empty documents.

The one decode rule (:func:`text_codec`): a document may be written in a handful of real text
encodings only (:data:`TEXT_ENCODINGS`: UTF-8, UTF-16, UTF-32, ISO-8859-1, windows-1252,
US-ASCII), whether it names one in its XML declaration or in a ``charset`` parameter. Any other
name is refused with a reason before anything decodes with it: Python's codec registry holds
transforms (``base64``, ``zlib``, ``rot13``), codecs that refuse error handlers (``idna``) or fail
on any input (``undefined``), and libxml2 reaches dozens more through iconv (``UTF-7``, EBCDIC).
Nothing decodes by a name an attacker wrote except through this table.

A WSDL and the schemas it imports are read by one walk (:func:`imported_documents`): each location
once, however the imports loop, and no more documents than the caller allows.
"""

from __future__ import annotations

import codecs
import collections
import functools
import itertools
import re
import threading
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Type, TypeVar, Union

from lxml import etree

from uws_adapter.errors import DocumentError

D = TypeVar("D")
#: Default cap on the size of one document.
MAX_BYTES = 1024 * 1024
#: Default cap on element nesting (callbacks nest about 8 deep).
MAX_DEPTH = 64
#: Comments and processing instructions before the root, when nodes are bounded (real documents
#: have none or one).
MAX_PROLOG_NODES = 64

#: Whether found before parsing (in the prolog) or after (lxml's doctype), the same refusal.
_NO_DOCTYPE = "a DOCTYPE is not allowed (DTDs and entities are refused)"
_XINCLUDE = "{http://www.w3.org/2001/XInclude}"
_XML_SPACE = " \t\r\n"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SPACE_RUN = re.compile(rb"[ \t\r\n]*")

#: Encoding names a document may declare (case aside, as written: libxml2 reads these spellings, not
#: ``utf_8`` or ``latin-1``) -> Python's codec. Real text encodings that libxml2 reads without
#: iconv or that every iconv has; the wide ones are read from their bytes (:func:`wide_encoding`),
#: never from the name alone.
TEXT_ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8",
    "utf-16": "utf-16", "utf-16le": "utf-16-le", "utf-16be": "utf-16-be",
    "utf-32": "utf-32", "utf-32le": "utf-32-le", "utf-32be": "utf-32-be",
    "iso-8859-1": "latin-1", "iso8859-1": "latin-1", "iso_8859-1": "latin-1", "latin1": "latin-1",
    "windows-1252": "cp1252", "cp1252": "cp1252",
    "us-ascii": "ascii", "ascii": "ascii",
}  # fmt: skip
#: The codecs whose bytes are ASCII where the text is (a byte scan for markup reads them).
ASCII_COMPATIBLE = frozenset({"utf-8", "latin-1", "cp1252", "ascii"})
#: What a refusal suggests instead.
ENCODING_HINT = "send UTF-8 (or UTF-16, UTF-32, ISO-8859-1, windows-1252, US-ASCII)"


class _NoResolver(etree.Resolver):
    """Any attempt to fetch an external resource fails, whatever the parser options say."""

    # lxml passes a context argument that lxml-stubs does not declare.
    def resolve(self, system_url: str, public_id: str, context: object = None) -> None:
        raise ValueError(f"external resource {system_url!r} refused")


_local = threading.local()
#: The options of every parser of untrusted XML (the one-shot one and the counting one).
_HARDENED: Dict[str, Any] = dict(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False, recover=False,
    remove_pis=True, collect_ids=False,
)  # fmt: skip


def _parser() -> etree.XMLParser:
    # lxml parsers are not safe to share between threads; one per thread, reused.
    parser: Optional[etree.XMLParser] = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(**_HARDENED)
        parser.resolvers.add(_NoResolver())
        _local.parser = parser
    return parser


def text_codec(name: str) -> Optional[str]:
    """Python's codec for an encoding ``name`` a document declares (XML declaration or
    ``charset``), or None when it is not one of :data:`TEXT_ENCODINGS`. A plain table lookup:
    the name never reaches :func:`codecs.lookup` (which imports modules by name)."""
    return TEXT_ENCODINGS.get(name.lower())


def encoding_refusal(name: str, where: str = "encoding") -> Optional[str]:
    """Why a declared encoding ``name`` is refused (None: it is one we read), for an error text."""
    if text_codec(name) is not None:
        return None
    shown = name if len(name) <= 40 else name[:40] + "..."
    return f"the {where} {shown!r} is not a text encoding we read; {ENCODING_HINT}"


def declared_encoding(data: bytes) -> Optional[str]:
    """The encoding name in ``data``'s XML declaration, as written (None without one). Read from
    the first bytes only, in UTF-16 or UTF-32 when the bytes say so (see :func:`wide_encoding`)."""
    wide = wide_encoding(data)
    if wide is not None:
        head = data[:1024].decode(wide, errors="replace").lstrip("\ufeff")
    else:
        head = data[len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0 :][:256].decode("latin-1")
    head = head.lstrip(_XML_SPACE)
    if not head.startswith("<?xml"):
        return None
    end = head.find("?>")
    declaration = head[: end if end > 0 else 256]
    at = declaration.find("encoding")
    if at < 0:
        return None
    rest = declaration[at + len("encoding") :].lstrip(" \t\r\n=").lstrip()
    if not rest or rest[0] not in "'\"":
        return None
    close = rest.find(rest[0], 1)
    return rest[1:close] if close > 0 else None


def _utf8(text: str, error: Type[DocumentError], what: str) -> bytes:
    """``text`` in UTF-8, or ``error`` for a lone surrogate (no XML text holds one; it was a raw
    UnicodeEncodeError), raised outside the handler so that the encoder's error (which holds the
    text) is not its context."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        position = exc.start
    raise error(f"{what}: a lone surrogate at character {position:,}; not text")


def parse_untrusted(
    data: Union[bytes, str],
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    error: Type[DocumentError] = DocumentError,
    what: str = "document",
    max_nodes: Optional[int] = None,
) -> etree._Element:
    """Parse ``data`` safely and return its root element, or raise ``error``.

    ``max_nodes`` bounds the elements and comments (processing instructions are dropped in C) at a
    cost close to the bare C parse, whatever the document holds: a document with no more ``<``
    than that (counted in C) cannot hold more; one with more is parsed in pieces and refused as soon
    as the count is passed, having cost the parse of that many only. With it, the prolog may hold
    at most :data:`MAX_PROLOG_NODES` comments and PIs (lxml's event parser slows down
    quadratically on nodes before the root).

    ``bytes`` are decoded as the XML declaration or BOM says (UTF-8 by default); a ``str`` is taken
    as already decoded, so any encoding named in its declaration is ignored.
    """
    if isinstance(data, str):
        data = _utf8(_strip_declaration(data.lstrip("\ufeff")), error, what)
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise error(f"{what}: expected bytes or str, got {type(data).__name__}")
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_bytes:
        raise error(f"{what}: {len(data):,} bytes is over the {max_bytes:,}-byte limit")
    if not data or data.isspace():
        raise error(f"{what}: empty")
    if b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(f"{what}: contains NUL bytes; not an XML text")
    declared = declared_encoding(data)
    if declared is not None:
        refusal = encoding_refusal(declared)
        if refusal is not None:
            raise error(f"{what}: {refusal}", line=1)
    # Nodes are at most the "<" bytes (counted in C, once); only a document with more is counted exactly.
    markup = data.count(b"<")
    counted = max_nodes is not None and markup > max_nodes
    prolog = _prolog_verdict(data, None if max_nodes is None else MAX_PROLOG_NODES)
    if prolog is None:
        raise error(f"{what}: more than {MAX_PROLOG_NODES} comments and processing instructions before the root")
    if prolog:
        raise error(f"{what}: {_NO_DOCTYPE}", line=1)
    try:
        root = etree.fromstring(data, _parser()) if not counted else _parse_counted(data, max_nodes or 0)
    except _TooMany:
        raise error(f"{what}: {_too_many(max_nodes)}") from None
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else None
        raise error(f"{what}: {syntax_complaint(exc)}", line=line) from None
    except (ValueError, LookupError) as exc:  # an unknown encoding name, or our resolver's refusal
        raise error(f"{what}: refused: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:  # type: ignore[union-attr]
        raise error(f"{what}: {_NO_DOCTYPE}", line=1)
    # Nesting D deep takes at least 2*D-1 "<" bytes (D start tags, D-1 end tags or more), so a
    # document with fewer cannot be too deep; the count runs in C and only over-counts in UTF-16.
    if markup >= 2 * max_depth + 1 and _too_deep(max_depth)(root):
        raise error(f"{what}: nesting deeper than {max_depth} levels")
    include = next(root.iter(_XINCLUDE + "*"), None)
    if include is not None:
        # Never processed; refused outright so that no later code can be talked into it.
        at: Optional[int] = include.sourceline
        raise error(f"{what}: XInclude is not allowed (line {at})", line=at)
    return root


#: What a libxml2 syntax error is, in our words, by its type: libxml2's own message quotes the
#: document (``Entity 'X' not defined``, ``Opening and ending tag mismatch: X ... and Y``,
#: ``Specification mandates value for attribute X``, the bytes of an undecodable run), and in a
#: credential's text what it quotes is a piece of the password: a sender that does not escape
#: ``&`` or ``<`` in it put that piece into our answer, the log and the dead letter's reason.
_SYNTAX_WORDS = {
    "ERR_UNDECLARED_ENTITY": "a reference to an undefined entity (an & not written &amp;?)",
    "ERR_ENTITYREF_SEMICOL_MISSING": "an & that starts no reference (write &amp;)",
    "ERR_ATTRIBUTE_WITHOUT_VALUE": "an attribute without a value (a < not written &lt;?)",
    "ERR_NAME_REQUIRED": "a < not followed by a name (write &lt;)",
    "ERR_LT_IN_ATTRIBUTE": "a < in an attribute value (write &lt;)",
    "ERR_TAG_NAME_MISMATCH": "an end tag that does not match its start tag",
    "ERR_TAG_NOT_FINISHED": "the document ends inside an element",
    "ERR_GT_REQUIRED": "a tag not closed by >",
    "ERR_DOCUMENT_END": "content after the root element",
    "ERR_DOCUMENT_EMPTY": "no root element",
    "ERR_INVALID_CHAR": "a character XML does not allow",
    "ERR_INVALID_ENCODING": "bytes that are not text in the document's encoding",
    "ERR_ATTRIBUTE_REDEFINED": "an attribute given twice on one element",
    "NS_ERR_UNDEFINED_NAMESPACE": "a namespace prefix that is not declared",
    "ERR_MISPLACED_CDATA_END": "]]> in text (write ]]&gt;)",
}  # fmt: skip
_ERROR_TYPES = {value: name for name, value in vars(etree.ErrorTypes).items() if name.isupper() and type(value) is int}


def syntax_complaint(exc: etree.XMLSyntaxError) -> str:
    """What is wrong with a document libxml2 could not parse, and where, without a character of
    the document: its error by type (:data:`_SYNTAX_WORDS`, else the type's own name in words)."""
    line, column = exc.position if exc.position else (0, 0)
    kind = _ERROR_TYPES.get(getattr(exc, "code", 0) or 0, "")  # lxml-stubs lack ``code``
    words = "" if kind == "ERR_INTERNAL_ERROR" else kind.partition("ERR_")[2].replace("_", " ").lower()
    words = _SYNTAX_WORDS.get(kind, words)
    where = f" at line {line}" + (f", column {column}" if column else "") if line else ""
    return f"not well-formed XML{where}" + (f": {words}" if words else "")


class TooManyDocuments(DocumentError):
    """A document's imports reach more than :func:`imported_documents`' ``max_documents``."""


def imported_documents(
    first: str, read: Callable[[str], Tuple[D, Iterable[str]]], *, max_documents: Optional[int] = None
) -> Dict[str, D]:
    """``first`` and every document its imports reach (a WSDL's, an XSD's), by location, each read
    once, breadth first: ``read`` gives a location's document and the locations it imports, in the
    form the documents are keyed by. :class:`TooManyDocuments` rather than read one more than
    ``max_documents``."""
    found: Dict[str, D] = {}
    pending = collections.deque([first])
    while pending:
        location = pending.popleft()
        if location in found:
            continue
        if max_documents is not None and len(found) >= max_documents:
            raise TooManyDocuments(f"imports more than {max_documents} documents")
        document, imports = read(location)
        found[location] = document
        pending.extend(imports)
    return found


class _TooMany(DocumentError):
    """More nodes than the limit: the counted parse stops here."""


def _too_many(max_nodes: Optional[int]) -> str:
    return f"more than {max_nodes:,} elements and comments"


#: Bytes given to the counted parser at a time: the overshoot past the limit is at most this.
_PIECE = 16 * 1024


def _parse_counted(data: bytes, max_nodes: int) -> etree._Element:
    """``data`` parsed in pieces with the hardened options, raising :class:`_TooMany` once it has
    shown more than ``max_nodes`` elements and comments: the work before the refusal is the C
    parse of at most that many nodes (and one piece), and one event per node."""
    # Processing instructions are dropped in C (remove_pis), so they cost no event: only the
    # prolog's are counted (by the prolog scan).
    parser = etree.XMLPullParser(events=("start", "comment"), **_HARDENED)
    parser.resolvers.add(_NoResolver())
    seen = 0
    for start in range(0, len(data), _PIECE):
        parser.feed(data[start : start + _PIECE])
        for _ in parser.read_events():
            seen += 1
        if seen > max_nodes:
            raise _TooMany(_too_many(max_nodes))
    root: etree._Element = parser.close()
    for _ in parser.read_events():
        seen += 1
    if seen > max_nodes:
        raise _TooMany(_too_many(max_nodes))
    return root


def _strip_declaration(text: str) -> str:
    """``text`` without its XML declaration (a str is already decoded, so its encoding is moot)."""
    start = len(text) - len(text.lstrip(_XML_SPACE))
    if not text.startswith("<?xml", start):
        return text
    end = text.find("?>", start)
    return text if end < 0 else text[end + 2 :]


def _prolog_verdict(data: bytes, max_nodes: Optional[int]) -> Optional[bool]:
    """Whether a DOCTYPE stands in the prolog (after a BOM, the declaration, comments and PIs), so
    that libxml2 never reads an internal subset; None when the prolog holds more than ``max_nodes``
    comments and PIs. One forward scan, linear in the prolog's length (see :func:`_scan_prolog`)."""
    encoding = wide_encoding(data)
    if encoding is not None:
        text = data.decode(encoding, errors="replace").lstrip("\ufeff").encode("utf-8")
    else:
        text = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    if max_nodes is None and b"<!DOCTYPE" not in text:  # in C: then the unbounded scan is not needed
        return False
    return _scan_prolog(text, max_nodes)


def wide_encoding(data: bytes) -> Optional[str]:
    """UTF-16 or UTF-32 (and which byte order) when ``data`` starts with its byte-order mark or,
    without one, with the zero bytes of an ASCII first character in it (XML 1.0 appendix F): the
    encodings a byte scan for ASCII markup cannot read. None otherwise."""
    for mark, encoding in _BOMS:
        if data.startswith(mark):
            return encoding
    head = data[:4]
    if len(head) == 4 and head[0] and head[1:] == b"\x00\x00\x00":
        return "utf-32-le"
    if len(head) == 4 and head[:3] == b"\x00\x00\x00" and head[3]:
        return "utf-32-be"
    if len(head) >= 2 and head[0] and not head[1]:
        return "utf-16-le"
    if len(head) >= 2 and not head[0] and head[1]:
        return "utf-16-be"
    return None


def _scan_prolog(text: bytes, max_nodes: Optional[int] = None) -> Optional[bool]:
    if text[:1] == b"<" and text[1:2] not in (b"?", b"!"):
        return False  # the root's start tag comes first (most callbacks): no prolog at all
    at = 0
    for _ in itertools.count() if max_nodes is None else range(max_nodes + 1):
        # A single character class matched once from a fixed place: no backtracking.
        at = _SPACE_RUN.match(text, at).end()  # type: ignore[union-attr]
        if text.startswith(b"<?", at):
            end, closer = text.find(b"?>", at + 2), b"?>"
        elif text.startswith(b"<!--", at):
            end, closer = text.find(b"-->", at + 4), b"-->"
        else:
            return text.startswith(b"<!DOCTYPE", at)
        if end < 0:
            return False  # unterminated: not well-formed, and the parser says so
        at = end + len(closer)
    return None


@functools.lru_cache(maxsize=16)
def _too_deep(max_depth: int) -> etree.XPath:
    # True when an element stands at depth max_depth + 1; evaluated in C, unlike a Python walk.
    return etree.XPath("boolean(/" + "/*" * (max_depth + 1) + ")")
