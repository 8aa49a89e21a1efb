"""zeep bindings from the bundled WSDL: loaded once per process, from package data, offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlparse

import zeep
from zeep.transports import Transport

from uws_adapter.errors import ResourceError
from uws_adapter.forksafe import ForkSafeLock
from uws_adapter.soap.resources import WSDL_FILE, resource_dir


class _OfflineTransport(Transport):
    """Reads the WSDL's own files and nothing else: no network, no file outside the folder."""

    def __init__(self, root: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._root = root.resolve()

    def load(self, url: str) -> bytes:
        parsed = urlparse(url)
        if parsed.scheme == "file":
            url = unquote(parsed.path)
        elif parsed.scheme:
            raise ResourceError(f"refused to fetch {url}: the bundled WSDL is loaded offline")
        path = Path(url).resolve()
        if self._root not in path.parents:
            raise ResourceError(f"refused to read {path}: outside the bundled WSDL folder")
        return path.read_bytes()


@dataclass(frozen=True)
class Bindings:
    """The zeep client and the bound services of the bundled WSDL."""

    client: zeep.Client
    carrier: Any  # zeep ServiceProxy of CarrierService
    session: Any  # zeep ServiceProxy of SessionService


_lock = ForkSafeLock()  # a child forked while a thread loads them must load them too
_loaded: Optional[Bindings] = None


def bindings() -> Bindings:
    """The process-wide zeep bindings; the WSDL is parsed on first use only."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
    return _loaded


def _load() -> Bindings:
    root = resource_dir()
    settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        client = zeep.Client(  # type: ignore[no-untyped-call]
            str(root / WSDL_FILE), transport=_OfflineTransport(root), settings=settings
        )
        # UWS is a basicHttpBinding service, without WS-Addressing: the WSDL's wsaw:Action attributes
        # are published for .NET's svcutil (as WCF publishes them), and zeep would answer them with
        # wsa:Action/MessageID/To headers in every request we build. Our requests stay as before.
        for port_type in client.wsdl.port_types.values():
            for operation in port_type.operations.values():
                operation.wsa_action = None
        carrier = client.bind("CarrierService", "CarrierServicePort")
        session = client.bind("SessionService", "SessionServicePort")
    except ResourceError:
        raise
    except Exception as exc:  # zeep raises many unrelated types for a broken WSDL
        raise ResourceError(f"the bundled WSDL cannot be loaded: {exc}") from exc
    return Bindings(client, carrier, session)
