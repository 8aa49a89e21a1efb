"""The floors the receiver benchmarks compare with, served exactly as ``uws-adapter receiver
--server uvicorn`` serves the receiver (same listening socket, uvicorn options, connection limits,
HTTP protocol, loop and worker supervisor), but with an application that does less:

``answer``
    reads the body and answers 200 with the receiver's SOAP acknowledgement: the server alone;
``parse``
    reads the body, parses it with the hardened parser (:func:`uws_adapter.xmlsafe.parse_untrusted`)
    and answers 200 (400 if it does not parse): the least a receiver that looks at a callback does.

Neither stores, logs nor counts anything. Run by the load benchmarks as a process of its own:

    python benchmarks/receiver_floors.py {answer,parse} [--workers N] [--port P]

prints ``floor (...) on http://127.0.0.1:PORT/`` on its first line, as the receiver does.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Awaitable, Callable, List, MutableMapping

from uws_adapter.errors import DocumentError
from uws_adapter.receiver.app import _SOAP_ACK
from uws_adapter.xmlsafe import parse_untrusted

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OK_HEADERS = [(b"content-type", b"text/xml; charset=utf-8"), (b"content-length", str(len(_SOAP_ACK)).encode())]
_BAD = b"not XML\n"
_BAD_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(_BAD)).encode())]


async def _body(receive: Receive) -> bytes:
    parts: List[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _answer(send: Send, ok: bool) -> None:
    headers = _OK_HEADERS if ok else _BAD_HEADERS
    await send({"type": "http.response.start", "status": 200 if ok else 400, "headers": headers})
    await send({"type": "http.response.body", "body": _SOAP_ACK if ok else _BAD})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def answer_only() -> Callable[..., Awaitable[None]]:
    async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await _body(receive)
            await _answer(send, True)

    return app


def parse_only() -> Callable[..., Awaitable[None]]:
    async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            body = await _body(receive)
            if scope["method"] != "POST":  # the benchmark's readiness probe
                await _answer(send, True)
                return
            try:
                parse_untrusted(body)
                ok = True
            except DocumentError:
                ok = False
            await _answer(send, ok)

    return app


FACTORIES = {"answer": "receiver_floors:answer_only", "parse": "receiver_floors:parse_only"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(FACTORIES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    import uvicorn

    # The command line's own pieces, so that nothing but the application differs from the receiver's run.
    from uws_adapter.cli.receiver import listening_socket, multiprocess
    from uws_adapter.receiver.asgi import server_config
    from uws_adapter.serving import ConnectionLimits, uvicorn_options

    sock = listening_socket(args.host, args.port)
    port = sock.getsockname()[1]
    options = server_config(factory=True, workers=args.workers, host=args.host, port=port, log_config=None)
    config = uvicorn.Config(FACTORIES[args.kind], **{**options, **uvicorn_options(ConnectionLimits())})
    server = uvicorn.Server(config)
    sys.stdout.write(f"floor ({args.kind}, uvicorn, {args.workers} workers) on http://{args.host}:{port}/\n")
    sys.stdout.flush()
    try:
        if args.workers == 1:
            server.run(sockets=[sock])
        else:
            multiprocess(config, server, sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
