"""The emulator's HTTP side: one WSGI application (UWS SOAP under ``/api/v2/`` through the shared
:class:`.SoapServer`, the REST M2M API everywhere else) served by waitress in a background
thread, as the receiver and the bridge are served, so that chunked bodies, keep-alive, body
limits and 413/415 behave the same on every service of the package."""

from __future__ import annotations

from typing import Any, Callable, Dict, List
from urllib.parse import quote

from uws_adapter.soap.server import Reply, StartResponse, reply

#: ``rest(method, path, headers, body)``: the REST front's answer (headers with lower-case names).
RestHandler = Callable[[str, str, Dict[str, str], bytes], Reply]
WsgiApp = Callable[[Dict[str, Any], StartResponse], List[bytes]]


class EmulatorApp:
    """WSGI application: ``soap`` for ``/api/v2/...``, ``rest`` for every other path."""

    def __init__(self, soap: WsgiApp, rest: RestHandler, *, max_body: int) -> None:
        self.soap = soap
        self.rest = rest
        self.max_body = max_body

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        if environ.get("PATH_INFO", "/").startswith("/api/v2/"):
            return self.soap(environ, start_response)
        return reply(start_response, *self.answer(environ))

    def answer(self, environ: Dict[str, Any]) -> Reply:
        method = environ.get("REQUEST_METHOD", "GET")
        body = b""
        if method == "POST":
            try:  # waitress has checked the header's digits; a chunked body arrives with its length
                length = int(environ.get("CONTENT_LENGTH") or "0")
            except ValueError:
                return 400, b"Content-Length is invalid\n", "text/plain"
            if length > self.max_body:
                return 413, f"over the {self.max_body}-byte limit\n".encode(), "text/plain"
            if (environ.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower() != "identity":
                return 415, b"compressed bodies are refused; send identity\n", "text/plain"
            body = environ["wsgi.input"].read(length)
        headers = {
            name[5:].replace("_", "-").lower(): value for name, value in environ.items() if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        # The REST front splits and unquotes the path itself (an account name may hold a %2F), so
        # it takes the path as sent, not WSGI's decoded PATH_INFO.
        raw = environ.get("REQUEST_URI") or ""
        if not raw.startswith("/"):
            raw = quote(environ.get("PATH_INFO", "/"))
        return self.rest(method, raw, headers, body)
