"""The migration bridge: the UWS SOAP API served to legacy systems and carried out on the REST
API, with REST callbacks stored and relayed to the legacy SOAP listener."""

from uws_adapter.bridge.address import HostRefused, listen_names
from uws_adapter.bridge.app import RELAY_HANDLER, Bridge, LegacyRelay
from uws_adapter.bridge.sessions import StoredSessions

__all__ = ["RELAY_HANDLER", "Bridge", "HostRefused", "LegacyRelay", "StoredSessions", "listen_names"]
