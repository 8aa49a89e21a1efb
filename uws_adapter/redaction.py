"""Secrets blanked out of documents we keep but could not parse (dead letters).

A refused document may still carry a real password, and an attacker-chosen one may hide it: in
UTF-16 or UTF-32, behind character references (``&#112;``) or JSON escapes (``\\u0070``), or cut
off before its end tag by a size cap. So redaction works on the *decoded* text with those
references resolved, blanks the value of every element, attribute or JSON member whose name ends
in one of :data:`SECRET_NAMES` up to where it ends (or to the end of the document when it never
does), and finally replaces every known secret wherever it still stands. The result is UTF-8.

Linear time on any input: each step is a single forward scan with ``str.find`` from where the last
one stopped; the only patterns are bounded character references, which cannot backtrack.
"""

from __future__ import annotations

import codecs
import re
from typing import Iterable, List, Optional, Tuple

from uws_adapter.localfiles import without_login
from uws_adapter.model.callbacks import REDACTED
from uws_adapter.xmlsafe import ASCII_COMPATIBLE, declared_encoding, text_codec, wide_encoding

#: Element, attribute and JSON member names (their endings, case-insensitive) whose values are secret.
SECRET_NAMES = ("password", "token", "secret")

# Bounded quantifiers after a fixed prefix: at most a dozen characters tried per "&" or "\".
_REFERENCE = re.compile(r"&#[xX]([0-9a-fA-F]{1,6});|&#([0-9]{1,7});|\\u([0-9a-fA-F]{4})")
_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SPACE = " \t\r\n"
# A URL in a document: a scheme of at most 32 characters (bounded: at most 32 tries per character),
# then everything up to a quote, a tag, a space or an escape (one greedy class: no backtracking).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>\\]*")


def decode(body: bytes) -> str:
    """``body`` as text: by its byte-order mark or first bytes (UTF-16, UTF-32), else by its XML
    declaration when that names an ASCII-compatible encoding we read (:func:`.xmlsafe.text_codec`),
    else UTF-8. Undecodable bytes become U+FFFD rather than an error. A declared name outside that
    table, or a wide encoding the bytes do not bear out, is not used: decoding by it could fail
    (``idna``, ``undefined``) or turn the text, secrets included, into something else (``utf-16``
    over ASCII bytes, ``rot13``, ``base64``) that no name search finds."""
    encoding = wide_encoding(body)
    if encoding is not None:
        return body.decode(encoding, errors="replace").lstrip("\ufeff")
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    declared = declared_encoding(body)
    codec = text_codec(declared) if declared is not None else None
    if codec in ASCII_COMPATIBLE:
        return body.decode(codec, errors="replace")
    return body.decode("utf-8", errors="replace")


def resolve_references(text: str) -> str:
    """Numeric character references and JSON ``\\uXXXX`` escapes replaced by their characters."""

    def character(match: re.Match[str]) -> str:
        hexa, decimal, escape = match.groups()
        code = int(hexa or escape, 16) if (hexa or escape) else int(decimal)
        return chr(code) if code <= 0x10FFFF else "\ufffd"

    if "&" not in text and "\\" not in text:  # found at memchr speed: most documents hold neither
        return text
    resolved = _REFERENCE.sub(character, text)
    # Escaped surrogate pairs become one character; a lone surrogate becomes U+FFFD.
    return resolved.encode("utf-16", "surrogatepass").decode("utf-16", errors="replace")


#: The most mentions of the secret names a document may hold and still be shown redacted: a
#: callback names its password once, a request its token once. Each mention costs a step of Python
#: (about 2 us), so a refused 1 MB body of ``"password": "`` runs cost 0.8 s of CPU to redact, before
#: any credential was checked, twice a second within the dead-letter budget; past the bound the
#: document is not shown at all (the mentions are counted in C).
MAX_SECRET_MENTIONS = 1000


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the values of secret elements, attributes and members, and every known
    secret, replaced by ``***``; a text naming them more than :data:`MAX_SECRET_MENTIONS` times is
    replaced whole by a note that says so."""
    lowered = text.translate(_ASCII_LOWER)  # same length as text, unlike str.lower()
    mentions = sum(lowered.count(name) for name in SECRET_NAMES)
    if mentions > MAX_SECRET_MENTIONS:
        return (
            f"{REDACTED} not shown: {len(text):,} characters naming a password, token or secret {mentions:,} "
            f"times (more than {MAX_SECRET_MENTIONS:,}) {REDACTED}"
        )
    for name in SECRET_NAMES:
        blanked = _blank_values(text, lowered, name)
        if blanked is not text:
            text, lowered = blanked, blanked.translate(_ASCII_LOWER)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redact(body: bytes, secrets: Iterable[str] = (), *, limit: Optional[int] = None) -> bytes:
    """A refused document made safe to keep: decoded, references resolved, secrets blanked, UTF-8,
    and cut to ``limit`` bytes *after* redaction (so a cut never leaves half a secret)."""
    text = redact_text(resolve_references(decode(body)), secrets)
    kept = text.encode("utf-8", errors="replace")
    if limit is not None and len(kept) > limit:
        kept = kept[:limit].decode("utf-8", errors="ignore").encode("utf-8")
    return kept


def _blank_values(text: str, lowered: str, name: str) -> str:
    blanks: List[Tuple[int, int]] = []
    at = 0
    while True:
        found = lowered.find(name, at)
        if found < 0:
            break
        after = found + len(name)
        span = _xml_element_value(text, lowered, found, after, name) or _member_value(text, after)
        if span is None:
            at = after
            continue
        blanks.append(span)
        at = max(span[1], after)
    if not blanks:
        return text
    parts, last = [], 0
    for start, end in blanks:
        parts += [text[last:start], REDACTED]
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _xml_element_value(text: str, lowered: str, found: int, after: int, name: str) -> Optional[Tuple[int, int]]:
    """The content of ``<[prefix:]...name ...>`` up to its end tag (or the document's end)."""
    start = _name_start(text, found)
    if start == 0 or text[start - 1] != "<" or (after < len(text) and text[after] not in _SPACE + "/>"):
        return None
    close = text.find(">", after)
    if close < 0:
        return (after, len(text))  # cut inside the start tag: nothing after it is safe to show
    if text[close - 1] == "/":
        return None  # <Password/>: empty
    # Up to its end tag: the next mention of the name that is one (``</[prefix:]...name>``); a
    # mention inside the value (the password "my-password-1") is part of the value. Each mention
    # is looked at once, so this stays one forward scan. No end tag: to the document's end.
    following = close + 1
    while True:
        mention = lowered.find(name, following)
        if mention < 0:
            return (close + 1, len(text))
        following = mention + len(name)
        tag = _name_start(text, mention)
        if tag >= 2 and text[tag - 2 : tag] == "</" and (following >= len(text) or text[following] in _SPACE + ">"):
            return (close + 1, tag - 2)


def _name_start(text: str, found: int) -> int:
    """Where the XML name holding ``found`` begins: it may end in the secret's name (SessionToken)
    and carry a prefix (v2:token); names are short, so the scan back is bounded."""
    start = found
    while start > 0 and found - start < 64 and text[start - 1] in _NAME_CHARS:
        start -= 1
    if start > 0 and text[start - 1] == ":":
        start -= 1
        while start > 0 and found - start < 128 and text[start - 1] in _NAME_CHARS:
            start -= 1
    return start


def _member_value(text: str, after: int) -> Optional[Tuple[int, int]]:
    """The value of a JSON member ``"...name": value`` or an attribute ``...name="value"``."""
    at = after
    if at < len(text) and text[at] == '"':  # the end of a JSON key
        at += 1
        while at < len(text) and text[at] in _SPACE:
            at += 1
        if at >= len(text) or text[at] != ":":
            return None
    elif at >= len(text) or text[at] not in _SPACE + "=":
        return None
    at += 1
    while at < len(text) and text[at] in _SPACE + "=":
        at += 1
    if at >= len(text):
        return (at, at)
    quote = text[at]
    if quote in "\"'":
        return (at + 1, _closing_quote(text, at + 1, quote))
    end = at
    while end < len(text) and text[end] not in ",}]" + _SPACE:
        end += 1
    return (at, end)


def _closing_quote(text: str, at: int, quote: str) -> int:
    while True:
        found = text.find(quote, at)
        if found < 0:
            return len(text)
        backslashes = 0
        while found - 1 - backslashes >= 0 and text[found - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return found
        at = found + 1


def masked_url(url: str, *, quoted: bool = True) -> str:
    """``url`` for a log line or a message, the one way every module shows a URL: a user and
    password in it masked, the values of its query masked (one may be a token), control characters escaped,
    cut short; quoted unless ``quoted`` is False. Plain string work, so that it cannot fail on a
    URL no parser accepts."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # no scheme, or a mistyped one (http:/): the URL a check refuses, and quotes
        scheme, rest = "", url
    rest = without_login(rest, REDACTED)
    path, mark, query = rest.partition("?")
    # The query's names are kept (?wsdl, ?singleWsdl), its values masked (one may be a token).
    query = "&".join(name + (f"={REDACTED}" if equals else "") for name, equals, _ in (
        part.partition("=") for part in query.split("&")))  # fmt: skip
    shown = scheme + sep + path + mark + query
    text = repr(shown[:200] + ("..." if len(shown) > 200 else ""))
    return text if quoted else text[1:-1]


def masked_urls(text: str) -> str:
    """``text`` with every URL in it shown by :func:`masked_url`: for the wire log of documents that
    carry one (a listener's registration may hold ``user:password@``)."""
    return _URL.sub(lambda found: masked_url(found.group(), quoted=False), text) if "://" in text else text
