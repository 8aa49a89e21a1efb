"""What a request was, without its secrets: the :class:`SentRequest` an :class:`OutcomeUnknown`
carries, and the wire log (``uws_adapter.wire``, DEBUG) of every document sent and received."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Tuple

from uws_adapter.errors import DocumentError
from uws_adapter.jsonsafe import loads_untrusted
from uws_adapter.logs import WIRE, printable
from uws_adapter.model.devices import Device
from uws_adapter.model.selection import DeviceList, Selection
from uws_adapter.redaction import masked_url, masked_urls, redact
from uws_adapter.xmlsafe import parse_untrusted

__all__ = [
    "REDACTED", "SECRET_NAMES", "Describe", "SentRequest", "log_exchange", "redact_headers", "redact_json",
    "redact_xml",
]  # fmt: skip

#: DEBUG: every document the clients send and receive, secrets redacted (see :func:`log_exchange`).
wire = logging.getLogger(WIRE)
#: Bytes of a document the wire log shows (a 10,000-device envelope is about 2 MB).
WIRE_SHOWN_BYTES = 16 * 1024
#: Names (compared in lower case) whose values are never shown: XML elements, JSON keys, headers.
SECRET_NAMES = frozenset(
    {"password", "token", "sessiontoken", "client_secret", "access_token", "refresh_token", "authorization",
     "vz-m2m-token", "proxy-authorization", "cookie", "set-cookie"}
)  # fmt: skip
REDACTED = "***"


def redact_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({k: REDACTED if k.lower() in SECRET_NAMES else v for k, v in headers.items()})


def redact_xml(body: bytes) -> bytes:
    """Our own SOAP envelope with the text of every secret element (``Password``, ``token``,
    ``SessionToken``) replaced; a body that does not parse is not shown at all."""
    try:
        root = parse_untrusted(body, max_bytes=max(len(body), 1), what="request")  # our own envelope
    except DocumentError:
        return b""
    from lxml import etree

    for element in root.iter("{*}*"):
        if etree.QName(element).localname.lower() in SECRET_NAMES:
            element.text = REDACTED
            for child in list(element):
                element.remove(child)
    text: bytes = etree.tostring(root, encoding="utf-8")
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_NAMES else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value


def redact_json(body: bytes) -> bytes:
    """A JSON body with the value of every secret key (``password``, ``token``, ...) replaced."""
    if not body:
        return b""
    try:
        value = loads_untrusted(body.decode("utf-8"), what="request")
    except (DocumentError, UnicodeDecodeError):
        return b""
    return json.dumps(_redact_value(value), ensure_ascii=False).encode("utf-8")


def log_exchange(
    method: str, url: str, *, headers: Mapping[str, str], body: Optional[bytes], status: Optional[int] = None
) -> None:
    """One document on the ``uws_adapter.wire`` logger (DEBUG): a request as sent (``status``
    None) or an answer as received; secret headers masked, the document redacted
    (:func:`uws_adapter.redaction.redact`, URLs by :func:`~uws_adapter.redaction.masked_urls`),
    then cut to :data:`WIRE_SHOWN_BYTES`, its line breaks escaped."""
    shown_headers = {name: printable(masked_urls(str(value)), 200) for name, value in redact_headers(headers).items()}
    document = ""
    if body:
        # Cut before redacting as well, to bound the work; the redaction blanks a value cut short.
        redacted = masked_urls(redact(body[: 4 * WIRE_SHOWN_BYTES]).decode("utf-8")).encode("utf-8")
        kept = redacted[:WIRE_SHOWN_BYTES].decode("utf-8", errors="ignore")
        cut = len(body) > 4 * WIRE_SHOWN_BYTES or len(redacted) > WIRE_SHOWN_BYTES
        document = printable(kept, WIRE_SHOWN_BYTES) + (f"... ({len(body):,} bytes in all)" if cut else "")
    if status is None:
        direction, summary = "sent", f"{method} {masked_url(url, quoted=False)}"
    else:
        direction, summary = "received", f"HTTP {status} for {method} {masked_url(url, quoted=False)}"
    wire.debug(
        "%s %s headers=%s body=%s", direction, summary, shown_headers, document or "(none)",
        extra={"direction": direction, "method": method, "url": masked_url(url, quoted=False), "status": status},
    )  # fmt: skip


@dataclass(frozen=True)
class SentRequest:
    """A request as it went out, every secret redacted, for reconciling an unknown outcome:
    ``operation`` names the call (``LogIn``, ``POST /m2m/v1/...``), ``action`` the provisioning
    action if any, ``selection`` what it acted on. The carrier assigns the RequestId in its answer,
    so a request whose answer was lost has none: find its callbacks by these devices."""

    method: str
    url: str
    operation: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    action: Optional[str] = None
    selection: Optional[Selection] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", redact_headers(self.headers))

    @property
    def devices(self) -> Tuple[Device, ...]:
        """The devices of a device-list request; empty for a filter (account, group, ...)."""
        return self.selection.devices if isinstance(self.selection, DeviceList) else ()

    @property
    def text(self) -> str:
        """The body (secrets redacted) as text."""
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        parts = [f"{self.method} {masked_url(self.url, quoted=False)}", f"operation={self.operation!r}"]
        if self.action is not None:
            parts.append(f"action={self.action!r}")
        if isinstance(self.selection, DeviceList):
            shown = ", ".join(str(d) for d in self.selection.devices[:3])
            more = f", ... {len(self.selection.devices):,} in all" if len(self.selection.devices) > 3 else ""
            parts.append(f"devices=[{shown}{more}]")
        elif self.selection is not None:
            parts.append(f"selection={self.selection!r}")
        parts.append(f"body={len(self.body):,} bytes, secrets redacted")
        return "SentRequest(" + ", ".join(parts) + ")"

    __str__ = __repr__


#: Builds the :class:`SentRequest` only when an error needs it: redacting a 10,000-device
#: envelope costs more than building it, and most requests succeed.
Describe = Callable[[], SentRequest]
