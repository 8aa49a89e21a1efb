"""The receiver's floors, served exactly as ``uws-adapter receiver --server uvicorn`` serves the
receiver (the same uvicorn settings, bounded httptools protocol, loop and worker processes): an
application that only answers (reads the body, answers the acknowledgement) and one that only
parses (reads the body, parses the callback, answers the acknowledgement). Run by
``receiver_load.py``; prints ``floor on http://127.0.0.1:PORT/`` first, as the receiver does.

    python benchmarks/receiver_floor.py answer|parse [--workers N]
"""

from __future__ import annotations

import argparse
import inspect
import os
import socket
import sys
from typing import Any, Awaitable, Callable, Dict, MutableMapping

import uvicorn

from uws_adapter.callbacks.uws_xml import parse_callback
from uws_adapter.receiver.asgi import server_config
from uws_adapter.serving.limits import ConnectionLimits, uvicorn_options
from uws_adapter.wire import NS_SOAP_ENV, NS_V2

Message = MutableMapping[str, Any]
ACK = f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body><CallbackResponse xmlns="{NS_V2}"/></s:Body></s:Envelope>'.encode()
HEADERS = [(b"content-type", b"text/xml; charset=utf-8"), (b"content-length", str(len(ACK)).encode())]


def _app(parse: bool) -> Callable[..., Awaitable[None]]:
    async def app(scope: Dict[str, Any], receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if parse and scope["method"] == "POST":
            parse_callback(b"".join(parts))
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": ACK})

    return app


def answer_only() -> Callable[..., Awaitable[None]]:
    return _app(parse=False)


def parse_only() -> Callable[..., Awaitable[None]]:
    return _app(parse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=["answer", "parse"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [sys.path[0], os.environ.get("PYTHONPATH")]))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    target = "receiver_floor:answer_only" if args.app == "answer" else "receiver_floor:parse_only"
    options = server_config(factory=True, workers=args.workers, host="127.0.0.1", port=port)
    config = uvicorn.Config(target, **{**options, **uvicorn_options(ConnectionLimits())})
    server = uvicorn.Server(config)
    print(f"floor ({args.app} only, uvicorn x{args.workers}) on http://127.0.0.1:{port}/", flush=True)
    if args.workers == 1:
        server.run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    supervisor: Any = Multiprocess
    if "target" in inspect.signature(Multiprocess.__init__).parameters:
        supervisor(config, target=server.run, sockets=[sock]).run()
    else:
        supervisor(config, sockets=[sock]).run()


if __name__ == "__main__":
    main()
