"""A WSGI application served by waitress in a background thread of this process: the emulator,
the demo's receiver, and tests. Bound at once (its port is known before it serves), with the same
bounded connections as the services (:mod:`uws_adapter.serving`), and stopped from inside the
server's own loop."""

from __future__ import annotations

import threading
from typing import Any, Optional, Tuple

from uws_adapter.errors import InputError, install_hint


class ServedApp:
    """A WSGI application on a waitress server, bound at once (so its port is known before it
    serves) and run in a daemon thread by :meth:`start`. :meth:`stop` lets the requests being
    served finish, then closes the listening socket and every connection from inside the
    server's own loop (closing them from another thread races with its ``select``)."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        max_body: int = 1024 * 1024,
        ident: str = "uws-adapter",
        limits: Optional[Any] = None,
    ) -> None:
        try:
            from uws_adapter.serving.bounded_waitress import waitress_server
            from uws_adapter.serving.limits import ConnectionLimits
        except ImportError:
            raise InputError("waitress", "is not installed", install_hint("receiver")) from None

        # The same bounded connections as the receiver and the bridge (limits, deadlines, no smuggling).
        self._server: Any = waitress_server(
            app, limits or ConnectionLimits(), host=host, port=port, threads=threads, max_request_body_size=max_body,
            ident=ident,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, daemon=True, name=ident)
        self._stopped = False

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # the loop saw a socket closed under it while stopping: that is the stop
            if not self._stopped:
                raise

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
        """Idempotent: a second call, or one after the server closed itself, does nothing harmful."""
        if self._stopped:
            return
        self._stopped = True
        server = self._server
        server.task_dispatcher.shutdown(timeout=timeout)  # answers being written are finished
        trigger = getattr(server, "trigger", None)
        if trigger is not None and self._thread.is_alive():

            def close_all() -> None:  # run by the server loop, which then ends (nothing left to watch)
                for channel in list(server.active_channels.values()):
                    channel.handle_close()
                server.close()

            try:
                trigger.pull_trigger(close_all)
                self._thread.join(timeout)
                return
            except OSError:  # the trigger was closed under us (the loop is ending): close from here
                pass
        for channel in list(getattr(server, "active_channels", {}).values()):
            channel.handle_close()
        server.close()
        self._thread.join(timeout)
