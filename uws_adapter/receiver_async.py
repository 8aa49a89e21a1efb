"""Where the ASGI receiver was before the packages by concern:
``uvicorn --factory uws_adapter.receiver_async:create_app`` keeps working. It lives in
:mod:`uws_adapter.receiver.asgi`."""

import warnings

from uws_adapter.receiver.asgi import AsyncReceiver, create_app, server_config

warnings.warn(
    "uws_adapter.receiver_async is deprecated and will be removed in 0.3; import uws_adapter.receiver.asgi instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["AsyncReceiver", "create_app", "server_config"]
