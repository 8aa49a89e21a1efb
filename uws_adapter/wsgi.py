"""Where the WSGI receiver factory was before the packages by concern: ``uws_adapter.wsgi:create_app``
keeps working for gunicorn command lines and process managers. It lives in
:mod:`uws_adapter.receiver.wsgi`."""

from uws_adapter.receiver.wsgi import create_app

__all__ = ["create_app"]
