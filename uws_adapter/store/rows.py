"""Backend-neutral rows: what any backend stores of a callback (:class:`CallbackRow`), beside the
row types every role returns (:class:`~uws_adapter.store.interfaces.StoredEvent`,
:class:`~uws_adapter.store.interfaces.RequestStatus`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import device_key
from uws_adapter.store.interfaces import RequestStatus, StoredEvent

__all__ = ["CallbackRow", "RequestStatus", "StoredEvent", "callback_row", "content_digest"]

# One encoder for the stored text and the digest: keys sorted, json.dumps's separators and escapes.
_SORTED = json.JSONEncoder(sort_keys=True)
_ascii: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _sorted_text_encoder() -> Callable[[Any], str]:
    """:data:`_SORTED`'s ``encode``, made once: ``JSONEncoder.encode`` builds its C encoder anew on
    every call (a third of a stored form's serialisation). The C encoder with the very arguments
    ``JSONEncoder.iterencode`` gives it, so the text is the same; no circular-reference markers,
    since a form is a fresh tree of dicts and lists (``to_dict``). ``_SORTED.encode`` where the C
    encoder is missing."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _SORTED.encode
    encoder = make(
        None, _SORTED.default, _ascii, None, _SORTED.key_separator, _SORTED.item_separator, True, False, True
    )

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


_sorted_text = _sorted_text_encoder()


@dataclass(frozen=True)
class CallbackRow:
    """What any backend stores of a callback: its form (password redacted) and that form as JSON
    text (``text``, keys sorted), the digest of what a re-send may not change, its event key
    (service, RequestId, device, action), its fault code."""

    form: Dict[str, Any]
    digest: str
    key: Tuple[str, str, str, str]
    fault_code: Optional[str]
    text: str


def _scalar(value: Any) -> str:
    """``value`` as :data:`_SORTED` writes it, without its per-call set-up for the common types."""
    if value is None:
        return "null"
    if type(value) is int:  # not a bool: json writes an int as its repr
        return repr(value)
    if type(value) is str:
        return _ascii(value)
    return _SORTED.encode(value)


def _device_order(device: Dict[str, Any]) -> Tuple[str, str]:
    return device["kind"], device["identifier"].upper()


def content_digest(form: Dict[str, Any]) -> str:
    """The digest of what a re-send may not change, by its definition: the form without its
    ``callback_count``, its devices in order, as sorted-key JSON. Stored digests are compared with
    re-sends', so this definition never changes; :func:`callback_row` reaches the same text faster."""
    content = {k: v for k, v in form.items() if k != "callback_count"}
    content["devices"] = sorted(content["devices"], key=_device_order)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def callback_row(callback: CallbackRequest) -> CallbackRow:
    form = callback.to_dict()  # the password is redacted here, never stored
    # One serialisation for both: the stored text is the form with its keys sorted, and the digest's
    # text (see content_digest) is that text without its callback_count member, which sorted keys
    # put second, right after "action" (the form's keys are fixed). Only devices out of order (a
    # rare multi-device callback) need the digest's own serialisation.
    text = _sorted_text(form)
    devices: List[Dict[str, Any]] = form["devices"]
    head = '{"action": ' + _scalar(form["action"]) + ", "
    member = '"callback_count": ' + _scalar(form["callback_count"]) + ", "
    in_order = len(devices) < 2 or all(_device_order(a) <= _device_order(b) for a, b in zip(devices, devices[1:]))
    if in_order and text.startswith(member, len(head)) and text.startswith(head):
        digest = hashlib.sha256((head + text[len(head) + len(member) :]).encode()).hexdigest()
    else:
        digest = content_digest(form)
    key = (callback.service or "", callback.request_id, device_key(callback.about), callback.action or "")
    return CallbackRow(form, digest, key, callback.fault.code if callback.fault else None, text)
