"""The emulator's HTTP side: one WSGI application (UWS SOAP under ``/api/v2/`` through the shared
:class:`.SoapServer`, the REST M2M API everywhere else) served by waitress in a background
thread, as the receiver and the bridge are served, so that chunked bodies, keep-alive, body
limits and 413/415 behave the same on every service of the package."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Tuple
from urllib.parse import quote

from .errors import InputError
from .soap_server import Reply, StartResponse, reply

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


class ServedApp:
    """A WSGI application on a waitress server, bound at once (so its port is known before it
    serves) and run in a daemon thread by :meth:`start`. :meth:`stop` lets the requests being
    served finish, then closes the listening socket and every connection from inside the
    server's own loop (closing them from another thread races with its ``select``)."""

    def __init__(self, app: WsgiApp, *, host: str, port: int, threads: int, max_body: int, ident: str) -> None:
        try:
            from waitress.server import create_server
        except ImportError:
            raise InputError("waitress", "is not installed", "pip install 'uws-adapter[receiver]'") from None

        self._server: Any = create_server(
            app, host=host, port=port, threads=threads, max_request_body_size=max_body, ident=ident
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=ident)

    @property
    def address(self) -> Tuple[str, int]:
        server = self._server
        if hasattr(server, "effective_port"):
            return str(server.effective_host), int(server.effective_port)
        host, port = server.effective_listen[0]  # several sockets (a name with several addresses)
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        server = self._server
        server.task_dispatcher.shutdown(timeout=timeout)  # answers being written are finished
        trigger = getattr(server, "trigger", None)
        if trigger is None or not self._thread.is_alive():
            server.close()
            return

        def close_all() -> None:  # run by the server loop, which then ends (nothing left to watch)
            for channel in list(server.active_channels.values()):
                channel.handle_close()
            server.close()

        trigger.pull_trigger(close_all)
        self._thread.join(timeout)
