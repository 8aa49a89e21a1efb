"""The callback receiver: the protocol (screen, intake, acknowledge after commit, dead letters,
handlers) as a WSGI application, the same as an ASGI application with group commits, and the
factories that configure either from the environment. Never imports the SOAP side or zeep."""

from uws_adapter.receiver.app import DeadLetterBudget, Receiver, server_options
from uws_adapter.receiver.asgi import AsyncReceiver, server_config
from uws_adapter.receiver.asgi import create_app as create_asgi_app
from uws_adapter.receiver.wsgi import create_app as create_wsgi_app
from uws_adapter.store.interfaces import DEAD_LETTER_MAX

__all__ = [
    "DEAD_LETTER_MAX", "AsyncReceiver", "DeadLetterBudget", "Receiver", "create_asgi_app", "create_wsgi_app",
    "server_config", "server_options",
]  # fmt: skip
