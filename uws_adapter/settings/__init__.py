"""One settings object per service, read from a file, the environment and the command line in
one place (:mod:`uws_adapter.settings.source`), validated once, secrets redacted in its repr:

- the client's :class:`uws_adapter.config.Settings` (section ``[uws-adapter]``),
- :class:`uws_adapter.settings.receiver.ReceiverSettings` (``[receiver]``),
- :class:`uws_adapter.settings.services.BridgeSettings` (``[bridge]``) and
  :class:`uws_adapter.settings.services.EmulatorSettings` (``[emulator]``).

Precedence: docs/configuration.md. This package imports nothing at import time, so that a receiver
worker loads only what it needs.
"""

__all__: "list[str]" = []  # the settings objects live in their modules (see above)
