"""A receiver process with one handler whose side effect is visible: each run POSTs its process id
and event id to a sink. Started by test_receiver_postgres.py as ``python handler_receiver.py URL PORT SINK``;
it prints "ready" once it serves."""

from __future__ import annotations

import http.client
import os
import sys
from urllib.parse import urlsplit

from waitress.server import create_server

from uws_adapter.receiver.app import Receiver
from uws_adapter.store import StoredEvent, open_store


def main(db: str, port: int, sink: str) -> None:
    where = urlsplit(sink)

    def side_effect(event: StoredEvent) -> None:
        connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port or 80, timeout=10)
        connection.request(
            "POST", "/", body=f"{os.getpid()} {event.id}".encode(), headers={"Content-Type": "text/plain"}
        )
        if connection.getresponse().status != 200:
            raise RuntimeError("the sink refused")
        connection.close()

    store = open_store(db)
    receiver = Receiver(store, allow_anonymous=True, handlers={"sink": side_effect}, handler_backoff=0.05)
    server = create_server(receiver, host="127.0.0.1", port=port, threads=8)
    print("ready", flush=True)
    try:
        server.run()
    finally:
        receiver.close()
        store.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
