"""What both clients share: the :class:`Provisioner` interface (sessions, batching, recording into a
:class:`~uws_adapter.store.RequestLog`), HTTP sending with its deadline, cap and outcome rules, and
the mapping of fault codes to exception classes."""

from uws_adapter.provisioning.base import BatchResult, Provisioner
from uws_adapter.provisioning.transport import SentRequest

__all__ = ["BatchResult", "Provisioner", "SentRequest"]
