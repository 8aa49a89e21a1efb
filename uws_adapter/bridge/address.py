"""The address the bridge writes into the WSDL it serves (``soap:address``), which legacy SOAP
stacks then send every call to.

It comes from ``--public-url`` when one is configured. Otherwise from the request's ``Host``,
but only a Host among the configured names (by default the names of the listen address): a
Host is the client's to choose, and a WSDL pointed elsewhere, or with markup smuggled into it,
would be served to whoever asks next (caches, proxies, DNS rebinding). The WSDL is built with
lxml (:mod:`uws_adapter.soap.documents`), so that whatever goes into it is escaped.
"""

from __future__ import annotations

import socket
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from uws_adapter.edge import SOAP_BASE
from uws_adapter.errors import InputError

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD = ("", "0.0.0.0", "::")
#: What a host name, an IPv4 address or a bracketed IPv6 address, with a port, can hold.
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-:[]_")
_MAX_HOST = 300


def listen_names(host: str, port: int) -> List[str]:
    """The Host values that name a bridge listening on ``host``:``port``: both loopback names for a
    loopback bind, this machine's names (and loopback) for a wildcard bind, else ``host`` itself;
    each also without the port when it is 80."""
    if host in ("127.0.0.1", "localhost", "::1"):
        hosts: Tuple[str, ...] = _LOOPBACK
    elif host in _WILDCARD:
        hosts = (*_LOOPBACK, socket.gethostname(), socket.getfqdn())
    else:
        hosts = (f"[{host}]" if ":" in host and not host.startswith("[") else host,)  # IPv6 in brackets
    names = [f"{name}:{port}" for name in hosts]
    if port == 80:
        names += list(hosts)
    return list(dict.fromkeys(name.lower() for name in names))


def checked_names(names: Iterable[str]) -> Tuple[str, ...]:
    """``names`` as allowed Host values (lower case); InputError for one no Host can equal."""
    checked = []
    for name in names:
        lowered = name.strip().lower()
        if not lowered or len(lowered) > _MAX_HOST or not set(lowered) <= _HOST_CHARACTERS:
            raise InputError(
                "--allowed-host", f"{name[:60]!r} is not a host name with an optional :port", "write e.g. bridge:8082"
            )
        checked.append(lowered)
    return tuple(checked)


class HostRefused(InputError):
    """The request's Host is not one the bridge may write into its WSDL."""


def soap_address(environ: Mapping[str, object], *, public_url: Optional[str], allowed: Optional[Sequence[str]]) -> str:
    """The ``.../api/v2`` base for this request's WSDL. Without ``public_url``, the Host must be in
    ``allowed`` (None: the loopback names of the port the request came in on)."""
    if public_url:
        return public_url.rstrip("/") + SOAP_BASE
    if allowed is None:
        allowed = listen_names("127.0.0.1", int(str(environ.get("SERVER_PORT") or 80)))
    names = tuple(allowed)
    given = environ.get("HTTP_HOST")
    if given is None:  # HTTP/1.0 without Host: the first configured name
        host = names[0]
    else:
        host = str(given).strip().lower()
        if host not in names:  # an exact match: no parsing of what the client wrote
            raise HostRefused(
                "Host",
                f"is not a name of this bridge (allowed: {', '.join(names)})",  # what was sent is not echoed
                "call the bridge by one of those names, or start it with --allowed-host NAME:PORT or --public-url URL",
            )
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{SOAP_BASE}"
