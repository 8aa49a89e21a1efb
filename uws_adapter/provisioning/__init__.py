"""What both clients share: the :class:`Provisioner` interface, the one sending engine
(:mod:`.engine`) with its :class:`SendOptions`, and the one URL check."""

from uws_adapter.provisioning.base import BatchResult, Provisioner
from uws_adapter.provisioning.engine import Engine
from uws_adapter.provisioning.options import SendOptions
from uws_adapter.provisioning.sent import SentRequest

__all__ = ["BatchResult", "Engine", "Provisioner", "SendOptions", "SentRequest"]
