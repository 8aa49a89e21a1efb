"""The carrier's callbacks on the wire: UWS SOAP XML and REST JSON, parsed from untrusted bytes
into :class:`~uws_adapter.model.CallbackRequest` and rendered back.

Depends on lxml and the hardened parsers only, never on zeep: the receiver reads both formats,
and retiring the UWS SOAP API (``soap/``) leaves the callback formats in place for as long as
SOAP callbacks may arrive.
"""

from uws_adapter.callbacks.rest_json import parse_rest_callback, render_rest_callback, rest_callback_dict
from uws_adapter.callbacks.uws_render import render_callback
from uws_adapter.callbacks.uws_xml import parse_callback, parse_callback_mended

__all__ = [
    "parse_callback", "parse_callback_mended", "parse_rest_callback", "render_callback", "render_rest_callback",
    "rest_callback_dict",
]  # fmt: skip
