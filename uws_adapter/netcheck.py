"""Reading what a server says about itself, for the first-contact tools (``wsdl diff``, ``doctor``):
one bounded GET (through the clients' own sending engine: deadline, size cap, no redirect
followed), whether a URL's host resolves, whether its TLS certificate verifies and, when not, what
is wrong with it in words, and the server's clock from its ``Date`` header.

Nothing here sends credentials or changes anything on the server.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from uws_adapter.errors import ConnectionFailed, InputError, TransportError
from uws_adapter.provisioning.engine import Answer, Engine, Outgoing, Stakes, causes, connect_failure
from uws_adapter.provisioning.options import SendOptions
from uws_adapter.redaction import masked_url

__all__ = ["Reachability", "clock_skew", "fetch", "origin", "reach", "server_time", "tls_problem"]

#: What a failing certificate check is called in OpenSSL's words, and what to do about it.
_CERTIFICATE_FIXES = (
    ("self-signed", "the server presents a self-signed certificate: install one from a public CA, or trust this "
     "one with REQUESTS_CA_BUNDLE=/path/to/ca.pem"),
    ("expired", "the server's certificate has expired: renew it"),
    ("not yet valid", "the server's certificate is not valid yet: check its dates and this machine's clock"),
    ("hostname mismatch", "the certificate is not for this host name: use the name it was issued for"),
    ("ip address mismatch", "the certificate is not for this IP address: use the host name it was issued for"),
    ("unable to get local issuer", "the certificate's issuer is unknown here: add the CA chain with "
     "REQUESTS_CA_BUNDLE=/path/to/ca.pem, or have the server send its intermediate certificates"),
    ("unable to get issuer", "the certificate's issuer is unknown here: add the CA chain with REQUESTS_CA_BUNDLE"),
    ("revoked", "the server's certificate has been revoked: replace it"),
)  # fmt: skip


def tls_problem(exc: BaseException) -> Optional[str]:
    """The certificate problem behind ``exc`` (requests and urllib3 wrap it several times), in
    OpenSSL's words with the fix; None when ``exc`` is not a TLS failure."""
    for current in causes(exc):
        if isinstance(current, ssl.SSLCertVerificationError):
            said = str(current.verify_message or current.reason or current)
            # OpenSSL 1.1 writes "self signed", 3.x "self-signed": compared without the hyphens.
            plain = said.lower().replace("-", " ")
            for words, fix in _CERTIFICATE_FIXES:
                if words.replace("-", " ") in plain:
                    return f"certificate verify failed: {said} ({fix})"
            return f"certificate verify failed: {said}"
        if isinstance(current, ssl.SSLError):
            return f"TLS handshake failed: {current.reason or current}"
    return None


#: How a fetch's bounds are raised, by default: the command line's options of ``wsdl diff``.
FETCH_LIMITS = (
    "raise --deadline if the service is just slow",
    "raise --max-bytes if the document is that large",
)


def fetch(
    url: str,
    *,
    timeout: Tuple[float, float] = (10.0, 30.0),
    deadline: float = 60.0,
    max_bytes: int = 4 * 1024 * 1024,
    verify: bool = True,
    accept: str = "*/*",
    limits: Tuple[str, str] = FETCH_LIMITS,
) -> Answer:
    """One GET of ``url``, its complete answer within ``deadline`` and ``max_bytes``, a redirect not
    followed; :class:`.TransportError` naming the problem when no answer comes. ``limits`` says how
    the caller's deadline, then its size cap, are raised."""
    options = SendOptions(timeout=timeout, deadline=deadline, max_answer_bytes=max_bytes, connect_retries=0)
    sender = Engine(options, limits=limits)
    try:
        # Stakes.READ: a lost answer is a plain TransportError (a GET provisions nothing).
        request = Outgoing("GET", url, "GET", (("Accept", accept),), stakes=Stakes.READ, verify=verify)
        return sender.send(request)
    except TransportError as exc:
        problem = tls_problem(exc) or (connect_failure(exc) if isinstance(exc, ConnectionFailed) else None)
        if problem is None:  # no complete answer: the engine's words
            raise TransportError(str(exc)) from None
        raise TransportError(f"GET {masked_url(url)}: {problem}") from None
    finally:
        sender.close()


@dataclass(frozen=True)
class Reachability:
    """What :func:`reach` found: the addresses the host resolves to, and for https whether the
    certificate verifies (``tls`` None for plain http) and, if not, why."""

    host: str
    addresses: Tuple[str, ...]
    tls: Optional[bool]
    problem: Optional[str] = None


def origin(url: str, field: str = "url") -> Tuple[str, str, int]:
    """``url``'s scheme, host (both in lower case) and port (by default its scheme's): whether two
    URLs are the same server's."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise InputError(field, f"{masked_url(url)} has a port that is not a number", "fix the URL") from None
    return scheme, (parts.hostname or "").lower(), port


def reach(url: str, *, timeout: float = 10.0) -> Reachability:
    """Resolve ``url``'s host, connect to it and, for https, make one TLS handshake with
    certificate and host name checks, as requests would (its trust store, or ``REQUESTS_CA_BUNDLE``)."""
    scheme, host, port = origin(url)
    secure = scheme == "https"
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return Reachability(host, (), None, f"{host} does not resolve ({exc})")
    addresses = tuple(dict.fromkeys(str(entry[4][0]) for entry in found))
    context = _client_context() if secure else None
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            if context is not None:
                context.wrap_socket(raw, server_hostname=host).close()
    except ssl.SSLError as exc:
        return Reachability(host, addresses, False, tls_problem(exc))
    except OSError as exc:
        return Reachability(host, addresses, None, f"no connection to {host}:{port} ({connect_failure(exc)})")
    return Reachability(host, addresses, True if secure else None)


def _client_context() -> ssl.SSLContext:
    """The trust requests uses: ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` when set, else certifi's."""
    import os

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        try:
            import certifi

            bundle = certifi.where()
        except ImportError:  # requests depends on certifi; the system store otherwise
            bundle = None
    return ssl.create_default_context(cafile=bundle)


def server_time(headers: Mapping[str, str]) -> Optional[float]:
    """The server's clock (seconds since the epoch) from a ``Date`` header; None without one."""
    value = headers.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def clock_skew(headers: Mapping[str, str], clock: Callable[[], float] = time.time) -> Optional[float]:
    """Seconds the local clock is ahead of the server's (negative: behind); None without a Date."""
    theirs = server_time(headers)
    return None if theirs is None else clock() - theirs
