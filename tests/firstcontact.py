"""Helpers for the first-contact tools' tests (``wsdl diff``, ``doctor``, previews): a real HTTP
server on 127.0.0.1 that serves fixed documents on GET (by path and query), and the CLI run in this
process (tests/clirun.py)."""

from __future__ import annotations

import ssl
import subprocess
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from clirun import run_in_process, without
from servers import LoopbackHttp, Reply, Request


class DocumentServer(LoopbackHttp):
    """``documents`` maps ``/path?query`` to bytes; anything else is a 404. ``requested`` lists
    what was asked for."""

    def __init__(self, host: str = "127.0.0.1", tls: Optional[ssl.SSLContext] = None) -> None:
        self.documents: Dict[str, bytes] = {}
        #: ``/path?query`` -> a Location answered with 302.
        self.redirects: Dict[str, str] = {}
        self.requested: List[str] = []
        self.lock = threading.Lock()
        super().__init__(self._answer, host, tls)

    def _answer(self, request: Request) -> Reply:
        with self.lock:
            self.requested.append(request.path)
            body = self.documents.get(request.path)
            moved = self.redirects.get(request.path)
        if moved is not None:
            return 302, "", b"", {"Location": moved}
        if body is None:
            return 404, "text/xml; charset=utf-8", b"not found\n"
        return 200, "text/xml; charset=utf-8", body


def run_cli(args: List[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``uws-adapter ARGS`` (in this process), without the caller's UWS/ThingSpace settings."""
    return run_in_process(args, cwd, without(("UWS_", "THINGSPACE_"), **env))


def self_signed(folder: Path) -> Tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, made by openssl."""
    import shutil

    import pytest

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate to test TLS with")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class TlsDocumentServer(DocumentServer):
    """:class:`DocumentServer` over TLS with ``cert`` and ``key``."""

    def __init__(self, cert: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        super().__init__(tls=context)
