"""Backend-neutral rows: what any backend stores of a callback (:class:`CallbackRow`), beside the
row types every role returns (:class:`~uws_adapter.store.interfaces.StoredEvent`,
:class:`~uws_adapter.store.interfaces.RequestStatus`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from uws_adapter.model.callbacks import CallbackRequest
from uws_adapter.model.devices import device_key
from uws_adapter.store.interfaces import RequestStatus, StoredEvent

__all__ = ["CallbackRow", "RequestStatus", "StoredEvent", "callback_row"]


@dataclass(frozen=True)
class CallbackRow:
    """What any backend stores of a callback: its form (password redacted), the digest of what a
    re-send may not change, its event key (service, RequestId, device, action), its fault code."""

    form: Dict[str, Any]
    digest: str
    key: Tuple[str, str, str, str]
    fault_code: Optional[str]


def callback_row(callback: CallbackRequest) -> CallbackRow:
    form = callback.to_dict()  # the password is redacted here, never stored
    # What a re-send may change without being "different": its count, and its devices' order.
    content = {k: v for k, v in form.items() if k != "callback_count"}
    content["devices"] = sorted(content["devices"], key=lambda d: (d["kind"], d["identifier"].upper()))
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    key = (callback.service or "", callback.request_id, device_key(callback.about), callback.action or "")
    return CallbackRow(form, digest, key, callback.fault.code if callback.fault else None)
