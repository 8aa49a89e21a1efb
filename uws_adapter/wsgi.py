"""Where the WSGI receiver factory was before the packages by concern: ``uws_adapter.wsgi:create_app``
keeps working for gunicorn command lines and process managers. It lives in
:mod:`uws_adapter.receiver.wsgi`."""

import warnings

from uws_adapter.receiver.wsgi import create_app

warnings.warn(
    "uws_adapter.wsgi is deprecated and will be removed in 0.3; import uws_adapter.receiver.wsgi instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["create_app"]
