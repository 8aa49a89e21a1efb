"""How the services are served: bounded connections (a limit, idle and arrival deadlines, no
request smuggling) on waitress and uvicorn, and a WSGI application served in a thread."""

from uws_adapter.serving.limits import ConnectionLimits, uvicorn_options, waitress_server
from uws_adapter.serving.thread import ServedApp

__all__ = ["ConnectionLimits", "ServedApp", "uvicorn_options", "waitress_server"]
