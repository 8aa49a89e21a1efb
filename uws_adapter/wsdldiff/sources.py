"""The documents of a WSDL, read as untrusted input: the WSDL at SOURCE and every document it
imports (``wsdl:import``, ``xs:import`` / ``xs:include`` with a location), as WCF publishes them
(``.svc?wsdl`` importing ``?wsdl=wsdl0`` and ``?xsd=xsdN``; ``?singleWsdl`` with everything inlined).

Each document goes through :func:`.parse_untrusted` (no DTD, no entities, no network, size and
depth caps) and each fetch through :func:`uws_adapter.netcheck.fetch` (timeouts, a deadline, a size
cap, no redirect). Only the host SOURCE names is read: an import that points at another scheme,
host or port is refused, and so is a file outside the folder of a local SOURCE.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple
from urllib.parse import urljoin, urlsplit

from lxml import etree

from uws_adapter.errors import DocumentError, InputError, TransportError
from uws_adapter.errors import shown as quoted
from uws_adapter.localfiles import open_to_read
from uws_adapter.netcheck import fetch, origin
from uws_adapter.redaction import masked_url
from uws_adapter.wire import NS_WSDL, NS_XS
from uws_adapter.xmlsafe import TooManyDocuments, imported_documents, parse_untrusted

__all__ = ["MAX_DOCUMENTS", "MAX_DOCUMENT_BYTES", "Documents", "read_documents"]

#: Largest single document: a WCF singleWsdl of a big service is a few hundred KiB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
#: Most documents one WSDL may pull in (WCF splits a service into a handful).
MAX_DOCUMENTS = 64
_FIELD = "SOURCE"


@dataclass(frozen=True)
class Documents:
    """The parsed documents, by the location each was read from, the WSDL's first."""

    source: str
    roots: Tuple[Tuple[str, etree._Element], ...]

    def of_kind(self, tag: str) -> List[etree._Element]:
        """Every element ``tag`` (Clark name) that is a document root or a child of one's
        ``wsdl:types`` (schemas inlined in a WSDL)."""
        found = []
        for _, root in self.roots:
            if root.tag == tag:
                found.append(root)
            for types in root.iterfind(f"{{{NS_WSDL}}}types"):
                found.extend(child for child in types if child.tag == tag)
        return found

    def wsdl_roots(self) -> List[etree._Element]:
        return [root for _, root in self.roots if root.tag == f"{{{NS_WSDL}}}definitions"]


def _references(root: etree._Element) -> List[str]:
    places = []
    for element in root.iter(f"{{{NS_WSDL}}}import", f"{{{NS_XS}}}import", f"{{{NS_XS}}}include"):
        location = element.get("location") if element.tag == f"{{{NS_WSDL}}}import" else element.get("schemaLocation")
        if location and location.strip():
            places.append(location.strip())
    return places


def _joined(location: str, reference: str, shown: str) -> str:
    """``reference`` read from the document at ``location`` (shown as ``shown``), made absolute."""
    try:
        joined = urljoin(location, reference)
        urlsplit(joined)  # a malformed host ("http://[bad/") fails here or in urljoin: a ValueError
    except ValueError:
        raise InputError(
            _FIELD, f"{shown} imports {masked_url(reference)}, which is not a URL", "fix the import's location"
        ) from None
    return joined


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def read_documents(
    source: str,
    *,
    timeout: Tuple[float, float] = (10.0, 30.0),
    deadline: float = 60.0,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_documents: int = MAX_DOCUMENTS,
) -> Documents:
    """The WSDL at ``source`` (an http(s) URL or a file) and everything it imports, hardened.
    :class:`.InputError` (field ``SOURCE``) for anything that cannot be read or is refused."""
    if not isinstance(source, str) or not source.strip():
        raise InputError(_FIELD, "no WSDL given", "give a .svc?wsdl URL or a file")
    source = source.strip()
    remote = _is_url(source)
    if remote:
        from uws_adapter.provisioning.urls import check_url

        check_url(source, _FIELD)
        home = origin(source, _FIELD)
        first = source
    elif "://" in source:  # another scheme's URL, never a file's name: shown masked (it may hold a password)
        raise InputError(
            _FIELD, f"{masked_url(source)} is not an http(s) URL", "give a .svc?wsdl URL or the path of a WSDL file"
        )
    else:
        path = Path(source)
        if not path.is_file():  # a folder or a device exists, but is no document to read
            problem = f"{source} is not a file" if path.exists() else f"no file {source}"
            raise InputError(_FIELD, problem, "give a .svc?wsdl URL or the path of a WSDL file")
        folder = path.resolve().parent
        first = path.resolve().as_uri()

    def read(location: str) -> Tuple[etree._Element, List[str]]:
        if remote:
            data = _fetched(location, home, timeout=timeout, deadline=deadline, max_bytes=max_bytes)
        else:
            data = _read_file(location, folder, max_bytes)
        shown = masked_url(location) if remote else location.rpartition("/")[2]
        try:
            root = parse_untrusted(data, max_bytes=max_bytes, what=shown)
        except DocumentError as exc:
            raise InputError(_FIELD, str(exc), "point SOURCE at the service's WSDL") from None
        if root.tag not in (f"{{{NS_WSDL}}}definitions", f"{{{NS_XS}}}schema"):
            raise InputError(
                _FIELD, f"{shown} is {etree.QName(root).localname!r}, not a WSDL or an XML schema",
                "point SOURCE at the service's .svc?wsdl (or ?singleWsdl)",
            )  # fmt: skip
        return root, [_joined(location, reference, shown) for reference in _references(root)]

    try:
        roots = imported_documents(first, read, max_documents=max_documents)
    except TooManyDocuments:
        raise InputError(_FIELD, f"imports more than {max_documents} documents", "give a smaller WSDL") from None
    return Documents(source, tuple(roots.items()))


def _fetched(url: str, home: Tuple[str, str, int], *, timeout: Tuple[float, float], deadline: float,
             max_bytes: int) -> bytes:  # fmt: skip
    if not _is_url(url) or origin(url, _FIELD) != home:
        scheme, host, port = home
        raise InputError(
            _FIELD, f"an import points at {masked_url(url)}, not at {scheme}://{host}:{port}; refused",
            "only the host given is read: diff the service's ?singleWsdl (everything inlined) instead",
        )  # fmt: skip
    try:
        answer = fetch(url, timeout=timeout, deadline=deadline, max_bytes=max_bytes, accept="text/xml, */*")
    except TransportError as exc:
        raise InputError(_FIELD, str(exc), "check the URL, the network and the certificate") from None
    if answer.status_code != 200:
        where = answer.headers.get("Location")
        moved = f" (to {masked_url(where)})" if where and 300 <= answer.status_code < 400 else ""
        raise InputError(
            _FIELD, f"GET {masked_url(url)} answered HTTP {answer.status_code}{moved}",
            "give the URL the service publishes its metadata at (.svc?wsdl or ?singleWsdl)",
        )  # fmt: skip
    return answer.content


def _read_file(uri: str, folder: Path, max_bytes: int) -> bytes:
    if not uri.startswith("file:"):
        raise InputError(
            _FIELD, f"a local WSDL imports {masked_url(uri)}; refused",
            "save the service's ?singleWsdl (everything inlined) and diff that file, or give the .svc?wsdl URL",
        )  # fmt: skip
    from urllib.request import url2pathname

    name = url2pathname(urlsplit(uri).path)
    if "\x00" in name:  # a %00 in the import: resolve() and open() raise a raw ValueError
        raise InputError(_FIELD, f"an import names {quoted(uri.rpartition('/')[2])}, which is not a file name",
                         "fix the import's location")  # fmt: skip
    path = Path(name).resolve()
    if folder != path.parent and folder not in path.parents:
        raise InputError(_FIELD, f"an import points outside {folder} ({path.name}); refused", "copy it beside the WSDL")
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO no one writes to hung read_bytes() for ever
            raise InputError(
                _FIELD, f"{path.name} is not a file", "give the import the path of a file beside the WSDL"
            )  # fmt: skip
        with open_to_read(path) as handle:  # bounded: the file may grow once measured
            size = os.fstat(handle.fileno()).st_size
            content: bytes = handle.read(max_bytes + 1)
        if max(size, len(content)) > max_bytes:
            raise InputError(
                _FIELD, f"{path.name}: {max(size, len(content)):,} bytes is over the {max_bytes:,}-byte limit",
                "give a smaller file",
            )  # fmt: skip
        return content
    except OSError as exc:
        raise InputError(_FIELD, f"cannot read {path.name}: {exc.strerror}", "check the path") from None
