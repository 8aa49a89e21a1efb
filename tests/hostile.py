"""Worst-case input families for the checks that run on untrusted text before authentication.

Each family makes a document of about ``size`` bytes built to hurt one check: a backtracking
pattern, a quadratic scan, an expensive conversion. The tests run them at sizes where anything
worse than linear would not finish; ``benchmarks/hostile_inputs.py`` times them at growing sizes.
"""

from __future__ import annotations

from typing import Callable, Dict, List

NS = 'xmlns="http://nphase.com/unifiedwebservice/v2"'


def _repeat(unit: bytes, size: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    return head + unit * max(1, (size - len(head) - len(tail)) // len(unit)) + tail


#: family name -> (media type, maker of a document of about ``size`` bytes)
FAMILIES: Dict[str, tuple[str, Callable[[int], bytes]]] = {
    "xml-prolog-pis": ("text/xml", lambda n: _repeat(b"<?a?>", n, tail=b"<r/>")),
    "xml-prolog-comments": ("text/xml", lambda n: _repeat(b"<!--a-->", n, tail=b"<r/>")),
    "xml-prolog-pis-then-doctype": ("text/xml", lambda n: _repeat(b"<?a?>", n, tail=b"<!DOCTYPE r><r/>")),
    "xml-prolog-unclosed-pi": ("text/xml", lambda n: _repeat(b"<?a", n)),
    "xml-password-unclosed": ("text/xml", lambda n: _repeat(b"<Password>", n)),
    "xml-password-open-close": ("text/xml", lambda n: _repeat(b"<Password></Password", n)),
    "xml-long-integer": (
        "text/xml",
        lambda n: _repeat(
            b"9",
            n,
            head=f"<CallbackRequest {NS}><RequestId>r</RequestId><Data><Data><CallbackCount>".encode(),
            tail=b"</CallbackCount></Data></Data></CallbackRequest>",
        ),
    ),
    "xml-deep": ("text/xml", lambda n: _repeat(b"<a>", n)),
    "xml-slashed-end-tags": ("text/xml", lambda n: _repeat(b"</a", n)),
    "json-escaped-quotes": ("application/json", lambda n: _repeat(b'\\"', n, head=b'{"requestId": "')),
    "json-password-unclosed": ("application/json", lambda n: _repeat(b'"password": "', n, head=b"{")),
    "json-password-escapes": ("application/json", lambda n: _repeat(b"\\\\", n, head=b'{"password": "')),
    "json-long-integer": ("application/json", lambda n: _repeat(b"9", n, head=b'{"callbackCount": ')),
    "json-long-integer-string": (
        "application/json",
        lambda n: _repeat(b"9", n, head=b'{"requestId": "r", "callbackCount": "', tail=b'"}'),
    ),
    "json-deep": ("application/json", lambda n: _repeat(b"[", n)),
    "json-deep-objects": ("application/json", lambda n: _repeat(b'{"a":', n)),
}


def codec_names() -> List[str]:
    """Every codec name Python knows (the aliases, their targets and the modules of the
    ``encodings`` package: text encodings, transforms such as ``base64`` and ``zlib``, ``idna``,
    ``undefined``), and names that are no codec at all (a NUL inside, an unknown name)."""
    import encodings
    import encodings.aliases
    import pkgutil

    names = set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
    names |= {module.name for module in pkgutil.iter_modules(encodings.__path__) if not module.name.startswith("_")}
    names |= {"idna", "undefined", "x-no-such-codec", "utf-7", "UTF-8", "ISO-8859-1", "ebcdic-cp-us"}
    return sorted(names)


#: Names that cannot travel in an HTTP header (declared in the document only).
NOT_IN_A_HEADER = ("utf\x00-8", "a\x00b")


def declared(name: str, document: bytes = b"<a/>") -> bytes:
    """``document`` after an XML declaration naming ``name`` as its encoding."""
    return f'<?xml version="1.0" encoding="{name}"?>'.encode("latin-1") + document
