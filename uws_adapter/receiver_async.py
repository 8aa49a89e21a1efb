"""Where the ASGI receiver was before the packages by concern:
``uvicorn --factory uws_adapter.receiver_async:create_app`` keeps working. It lives in
:mod:`uws_adapter.receiver.asgi`."""

from uws_adapter.receiver.asgi import AsyncReceiver, create_app, server_config

__all__ = ["AsyncReceiver", "create_app", "server_config"]
