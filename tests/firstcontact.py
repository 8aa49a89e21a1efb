"""Helpers for the first-contact tools' tests (``wsdl diff``, ``doctor``, previews): a real HTTP
server on 127.0.0.1 that serves fixed documents on GET (by path and query), and the CLI run in this
process (tests/clirun.py)."""

from __future__ import annotations

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Tuple

from clirun import run_in_process, without
from servers import serve_in_thread


class DocumentServer:
    """``documents`` maps ``/path?query`` to bytes; anything else is a 404. ``requested`` lists
    what was asked for."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.documents: Dict[str, bytes] = {}
        #: ``/path?query`` -> a Location answered with 302.
        self.redirects: Dict[str, str] = {}
        self.requested: List[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.requested.append(self.path)
                    body = outer.documents.get(self.path)
                    moved = outer.redirects.get(self.path)
                if moved is not None:
                    self.send_response(302)
                    self.send_header("Location", moved)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 200 if body is not None else 404
                body = body if body is not None else b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._stop = serve_in_thread(self.server)

    def __enter__(self) -> DocumentServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop()


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
        import ssl

        super().__init__()
        self._stop()  # restarted below, wrapped in TLS
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.server.RequestHandlerClass)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self._stop = serve_in_thread(self.server)
