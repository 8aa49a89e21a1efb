"""The emulator's HTTP side: :class:`Emulator`, the carrier (:class:`.Carrier`) on waitress on
loopback, its UWS SOAP front under ``/api/v2/`` and its REST M2M front everywhere else, behind the
one :class:`~uws_adapter.edge.Router` and request screen: chunked bodies, keep-alive, body limits
and refusals behave as on every service of the package."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from uws_adapter.edge import SOAP_BASE, SOAP_PREFIX, Answer, BodyRules, Router, StartResponse, raw_target, wsgi_body
from uws_adapter.emulator.core import MAX_BODY, Carrier
from uws_adapter.emulator.rest import RestFront
from uws_adapter.emulator.soap import SoapFront
from uws_adapter.errors import InputError, shown
from uws_adapter.serving.thread import ServedApp

__all__ = ["Emulator", "RestApp"]


class RestApp:
    """WSGI application of the REST front: the one request screen (no length: an empty body, as
    the vendor SDK's logout sends), then ``front``."""

    def __init__(self, front: RestFront, *, max_body: int) -> None:
        self.front = front
        self.rules = BodyRules(max_body, length_required=False)

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
        return self.answer(environ).send(start_response, environ)

    def answer(self, environ: Dict[str, Any]) -> Answer:
        method = environ.get("REQUEST_METHOD", "GET")
        body = wsgi_body(environ, self.rules) if method == "POST" else b""
        if isinstance(body, Answer):
            return body
        headers = {
            name[5:].replace("_", "-").lower(): value for name, value in environ.items() if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        # The REST front splits and unquotes the path itself (an account name may hold a %2F), so
        # it takes the path as sent, not WSGI's decoded PATH_INFO.
        return self.front.handle(method, raw_target(environ), headers, body)


class Emulator(Carrier):
    """Start with ``with Emulator(devices=100) as emu:``; ``emu.base_url`` is what a UwsClient
    takes, ``emu.rest_url`` what a RestClient takes. Served by waitress (the ``receiver`` extra)
    with ``threads`` worker threads; ``emu.app`` is the WSGI application itself. The other keyword
    arguments are the carrier's (:class:`.Carrier`)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        middleware: Optional[Callable[[Any], Any]] = None,
        **carrier: Any,
    ) -> None:
        if not isinstance(threads, int) or threads < 1:
            raise InputError("threads", f"{shown(threads)} is not a positive number", "give 1 or more (8 by default)")
        super().__init__(**carrier)
        # The address it is bound to goes into the WSDL, whatever Host the caller sent.
        self.soap = SoapFront(self, address=lambda environ: self.base_url)
        self.rest = RestFront(self)
        self.app = Router([(SOAP_PREFIX, self.soap.server)], RestApp(self.rest, max_body=MAX_BODY))
        # middleware: what the command line wraps the application in (its access log).
        self._server = ServedApp(
            middleware(self.app) if middleware is not None else self.app, host=host, port=port, threads=threads,
            max_body=MAX_BODY, ident="uws-emulator",
        )  # fmt: skip

    @property
    def root_url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        """The UWS base URL (``.../api/v2``)."""
        return f"{self.root_url}{SOAP_BASE}"

    @property
    def rest_url(self) -> str:
        """The REST base URL (``.../api``)."""
        return f"{self.root_url}/api"

    def start(self) -> Emulator:
        self._server.start()
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        self._server.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
