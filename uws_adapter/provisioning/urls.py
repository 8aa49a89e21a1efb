"""The one check of a URL we send HTTP to: the carrier's endpoints, the REST base URL, callback
listeners (ours and the emulator's), the bridge's legacy listener. Made before any I/O, so that a
typo is bad input naming its field, never a failure to reconcile. Messages show the URL masked
by :func:`uws_adapter.redaction.masked_url` (a user and password in it, and its query, never shown)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

import requests

from uws_adapter.errors import InputError
from uws_adapter.redaction import masked_url

__all__ = ["LISTENER_URL_FIX", "URL_FIX", "check_service_base", "check_url"]

URL_FIX = "give an http(s) URL with a host, e.g. https://uws.apps.nphase.com/api/v2"
#: How to write a callback listener's URL (the receiver's, or a legacy system's SOAP listener).
LISTENER_URL_FIX = "give the listener's http(s) URL with a host, e.g. https://listener.example.com/callbacks"


def check_url(url: object, field: str = "base_url", *, fix: str = URL_FIX) -> str:
    """``url`` if a request can be sent to it (an http or https URL in ASCII with a host and a
    valid port that requests can prepare), else an :class:`InputError` naming ``field``."""
    if not isinstance(url, str) or not url.strip():
        raise InputError(field, "no URL", fix)
    if not url.isprintable() or any(c.isspace() for c in url):
        raise InputError(field, f"{masked_url(url)} has spaces or control characters", fix)
    if not url.isascii():  # a user and password in it go into a Basic header, which must be latin-1
        raise InputError(field, f"{masked_url(url)} has non-ASCII characters (percent-encode them)", fix)
    parts = _split(url, field, fix)
    try:
        port = parts.port  # ValueError for a port that is not a number in 0..65535
    except ValueError:
        raise InputError(field, f"{masked_url(url)} has a port that is not a number from 1 to 65535", fix) from None
    if parts.scheme.lower() not in ("http", "https") or "://" not in url:
        raise InputError(field, f"{masked_url(url)} is not an http(s) URL", fix)
    if not parts.hostname:
        raise InputError(field, f"{masked_url(url)} has no host", fix)
    if port == 0:
        raise InputError(field, f"{masked_url(url)} has port 0", fix)
    try:
        requests.Request("POST", url).prepare()
    except (requests.RequestException, ValueError) as exc:
        raise InputError(field, f"{masked_url(url)} cannot be parsed ({type(exc).__name__})", fix) from None
    return url


def check_service_base(base: str, example: str, field: str = "base_url") -> str:
    """``base``, the address WCF services sit under (``.../api/v2``), unless it is a service's own
    address (``.../CarrierService.svc``, copied from its ``?wsdl`` URL): that would be sent
    ``.../X.svc/Y.svc``, which the emulator answers (it serves a service under any prefix) and the
    carrier's WCF need not, so the mistake passed every local run."""
    last = _split(base, field, URL_FIX).path.rstrip("/").rsplit("/", 1)[-1]
    if last.lower().endswith(".svc"):
        raise InputError(
            field, f"{masked_url(base)} is a service's address, not the base the services sit under",
            f"drop the /{last}, e.g. {example} (--endpoint, UWS_ENDPOINT, soap_url)",
        )  # fmt: skip
    return base


def _split(url: str, field: str, fix: str) -> SplitResult:
    """``url``'s parts, or bad input naming ``field`` when no parser reads it."""
    try:
        return urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise InputError(field, f"{masked_url(url)} cannot be parsed ({exc})", fix) from None
