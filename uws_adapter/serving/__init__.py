"""How the services are served: bounded connections (a limit, idle and arrival deadlines, no
request smuggling) on waitress and uvicorn, and a WSGI application served in a thread.

The servers are the ``receiver`` extra: names are imported on first use, so that the CLI and the
clients work with the core install alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ConnectionLimits", "ServedApp", "uvicorn_options", "waitress_server"]
_WHERE = {
    "ConnectionLimits": "limits",
    "uvicorn_options": "bounded_uvicorn",
    "waitress_server": "bounded_waitress",
    "ServedApp": "thread",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'uws_adapter.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(f"uws_adapter.serving.{module}"), name)


if TYPE_CHECKING:
    from uws_adapter.serving.bounded_uvicorn import uvicorn_options as uvicorn_options
    from uws_adapter.serving.bounded_waitress import waitress_server as waitress_server
    from uws_adapter.serving.limits import ConnectionLimits as ConnectionLimits
    from uws_adapter.serving.thread import ServedApp as ServedApp
