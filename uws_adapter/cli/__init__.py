"""The ``uws-adapter`` command: one module per command group (provisioning, services, tracking)."""

from uws_adapter.cli.main import main

__all__ = ["main"]
