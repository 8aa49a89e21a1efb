"""What both clients share: the :class:`Provisioner` interface (sessions, batching, recording into a
:class:`~uws_adapter.store.RequestLog`), the one sending engine (:mod:`.engine`) with its options
value (:class:`SendOptions`), its deadline, cap and outcome rules, and the one URL check."""

from uws_adapter.provisioning.base import BatchResult, Provisioner
from uws_adapter.provisioning.engine import Engine
from uws_adapter.provisioning.options import SendOptions
from uws_adapter.provisioning.sent import SentRequest

__all__ = ["BatchResult", "Engine", "Provisioner", "SendOptions", "SentRequest"]
