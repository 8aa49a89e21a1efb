"""ThingSpace REST JSON callbacks to :class:`CallbackRequest` and back.

Field names, nesting and value types follow the carrier's examples; numbers may arrive as
strings [seen]. Decoded only through :func:`uws_adapter.jsonsafe.loads_untrusted`: size capped
before, nesting and integer length bounded while decoding, linear time on any input.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from uws_adapter.errors import CallbackParseError, InputError, kind_of, shown
from uws_adapter.jsonsafe import check_depth, loads_untrusted, wire_integer
from uws_adapter.model import callbacks as model
from uws_adapter.model.text import xml_carries
from uws_adapter.xmlsafe import MAX_BYTES

MAX_DEPTH = 32
#: deviceResponse key -> action [doc for restore and suspend; inferred for the other three].
_ACTION_KEYS = {
    "restoreResponse": "Restore",
    "suspendResponse": "Suspend",
    "activateResponse": "Activate",
    "deactivateResponse": "Deactivate",
    "reconnectResponse": "Reconnect",
}
#: suspendResponse key -> SuspendResult field [doc], as read and as written; the date is MM/DD/YYYY.
_SUSPEND_KEYS = {
    "expectedResumeDate": "expected_resume_date",
    "maxSuspendDaysAllowed": "max_suspend_days_allowed",
    "numDaysSuspendedLast12Months": "num_days_suspended_last_12_months",
    "numDaysSuspendAllowedCurrent12Months": "num_days_suspend_allowed_current_12_months",
}
_KNOWN = {
    "username", "password", "requestId", "deviceIds", "deviceResponse", "niddResponse", "faultResponse",
    "comment", "status", "callbackCount", "maxCallbackThreshold",
}  # fmt: skip


def parse_rest_callback(
    data: Union[bytes, str, Mapping[str, Any]],
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_values: int = model.MAX_CALLBACK_NODES,
) -> model.CallbackRequest:
    """Parse a REST JSON callback given as bytes, str or an already decoded mapping."""
    return read_rest_callback(rest_callback_object(data, max_bytes=max_bytes, max_depth=max_depth,
                                                   max_values=max_values))  # fmt: skip


def rest_callback_object(
    data: Union[bytes, str, Mapping[str, Any]],
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_values: int = model.MAX_CALLBACK_NODES,
) -> Mapping[str, Any]:
    """The decoded JSON object of a callback, bounded (size, nesting, ``max_values`` values) but not
    yet read: :func:`rest_credentials` reads its credentials, :func:`read_rest_callback` the rest."""
    if isinstance(data, Mapping):
        check_depth(data, max_depth, error=CallbackParseError, what="callback", max_values=max_values)
        return data
    if isinstance(data, (bytes, bytearray)):
        if len(data) > max_bytes:
            raise CallbackParseError(f"callback: {len(data):,} bytes is over the {max_bytes:,}-byte limit")
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CallbackParseError(f"callback: not UTF-8 at byte {exc.start}") from None
    elif isinstance(data, str):
        text = data.lstrip("\ufeff")
        if len(text) > max_bytes:
            raise CallbackParseError(f"callback: {len(text):,} characters is over the {max_bytes:,} limit")
    else:
        raise CallbackParseError(f"callback: expected bytes, str or a mapping, got {type(data).__name__}")
    if not text.strip():
        raise CallbackParseError("callback: empty")
    if text.lstrip().startswith("<"):
        raise CallbackParseError("callback: this is XML, not JSON; parse it with parse_callback")
    decoded = loads_untrusted(
        text, max_depth=max_depth, error=CallbackParseError, what="callback", max_values=max_values, unique_keys=True
    )
    if not isinstance(decoded, dict):
        raise CallbackParseError(f"callback: the JSON document is {kind_of(decoded)}, not an object")
    return decoded


def rest_credentials(obj: Mapping[str, Any]) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """(username, password, requestId) of a decoded callback, read as :func:`read_rest_callback`
    reads them: enough to authenticate it before anything else is read."""
    return _string(obj, "username", ""), _string(obj, "password", ""), _string(obj, "requestId", "")


def _string(obj: Mapping[str, Any], key: str, where: str) -> Optional[str]:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CallbackParseError(f"callback: {where}{key}: expected a string, got {kind_of(value)}")
        if isinstance(value, int) and value.bit_length() > 64:  # str() past 4,300 digits: a raw ValueError
            raise CallbackParseError(f"callback: {where}{key}: expected a string, got {shown(value)}")
    text = str(value).strip()
    return text or None


def _key(obj: Mapping[str, Any], key: str, where: str) -> Optional[str]:
    """:func:`_string` for what a callback is stored and looked up by (its requestId, its devices):
    no text of the carrier's there has a character XML cannot carry (the REST client refuses such a
    requestId in an answer too). PostgreSQL text cannot hold a NUL, and the bridge could not relay
    it to a SOAP listener. Free text (a comment, a status) is kept as sent: the relay gives up on it."""
    text = _string(obj, key, where)
    if text is not None and not xml_carries(text):
        raise CallbackParseError(
            f"callback: {where}{key}: has a control character (no such value of the carrier's has one)"
        )
    return text


def _integer(obj: Mapping[str, Any], key: str, where: str = "") -> Optional[int]:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            # An int from an already decoded mapping is bounded like one read from text.
            return model.a_count(wire_integer(value.strip() if isinstance(value, str) else str(value)))
        except ValueError as exc:
            raise CallbackParseError(f"callback: {where}{key}: {exc}") from None
    raise CallbackParseError(f"callback: {where}{key}: {shown(value)} is not an integer")


def _boolean(obj: Mapping[str, Any], key: str, where: str) -> Optional[bool]:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise CallbackParseError(f"callback: {where}{key}: {shown(value)} is not true or false")


def _object(obj: Mapping[str, Any], key: str, where: str = "") -> Optional[Mapping[str, Any]]:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise CallbackParseError(f"callback: {where}{key}: expected an object, got {kind_of(value)}")
    return value


def _devices(obj: Mapping[str, Any], key: str, where: str) -> Tuple[model.ReportedDevice, ...]:
    items = obj.get(key)
    if items is None:
        return ()
    if not isinstance(items, list):
        raise CallbackParseError(f"callback: {where}{key}: expected an array, got {kind_of(items)}")
    devices = []
    for position, item in enumerate(items):
        here = f"{where}{key}[{position}]."
        if not isinstance(item, Mapping):
            raise CallbackParseError(f"callback: {here[:-1]}: expected an object, got {kind_of(item)}")
        kind, identifier = _key(item, "kind", here), _key(item, "id", here)
        if kind is None or identifier is None:
            raise CallbackParseError(f"callback: {here[:-1]}: needs both kind and id")
        devices.append(model.ReportedDevice(model.reported_kind(kind), identifier))
    return tuple(devices)


_Sections = Tuple[
    Optional[str],
    Optional[str],
    Optional[model.SuspendResult],
    Optional[model.RestoreResult],
    Optional[model.ProfileResult],
]


def read_rest_callback(obj: Mapping[str, Any]) -> model.CallbackRequest:
    """The callback of a decoded, bounded object (see :func:`rest_callback_object`)."""
    request_id = _key(obj, "requestId", "")
    if request_id is None:
        raise CallbackParseError("callback: requestId is missing or empty")
    unmodeled = [key for key, value in obj.items() if key not in _KNOWN and value not in (None, "", [], {})]
    service, action, suspend, restore, profile = _device_response(_object(obj, "deviceResponse") or {}, unmodeled)
    nidd = _nidd(obj)
    return model.CallbackRequest(
        request_id=request_id,
        devices=_devices(obj, "deviceIds", ""),
        username=_string(obj, "username", ""),
        password=_string(obj, "password", ""),
        service="NiddService" if nidd is not None else service,
        action=action,
        status=_string(obj, "status", ""),
        callback_count=_integer(obj, "callbackCount"),
        max_callback_threshold=_integer(obj, "maxCallbackThreshold"),
        comment=_string(obj, "comment", ""),
        suspend=suspend,
        restore=restore,
        fault=_fault(obj),
        nidd=nidd,
        profile=profile,
        unmodeled=tuple(unmodeled),
    )


def _device_response(response: Mapping[str, Any], unmodeled: List[str]) -> _Sections:
    """(service, action, suspend, restore, profile) of ``deviceResponse``; the names of its
    sections that are not modelled are appended to ``unmodeled``."""
    service = action = None
    suspend: Optional[model.SuspendResult] = None
    restore: Optional[model.RestoreResult] = None
    profile: Optional[model.ProfileResult] = None
    for key, value in response.items():
        where = f"deviceResponse.{key}."
        if key in _ACTION_KEYS:
            section = _object(response, key, "deviceResponse.") or {}
            service, action = "CarrierService", _ACTION_KEYS[key]
            if key == "suspendResponse":
                suspend = _suspend(section, where)
            elif key == "restoreResponse":
                restore = model.RestoreResult(_boolean(section, "restored", where))
        elif key == "deviceProfileResponse":
            section = _object(response, key, "deviceResponse.") or {}
            service = "DeviceProfileService"
            profile = model.ProfileResult(
                _devices(section, "deviceIdentifierCollection", where),
                _string(section, "state", where),
                _string(section, "profileStatus", where),
                _string(section, "profileRole", where),
            )
        elif value not in (None, "", [], {}):
            unmodeled.append(f"deviceResponse.{key}")
    return service, action, suspend, restore, profile


def _suspend(section: Mapping[str, Any], where: str) -> model.SuspendResult:
    found: Dict[str, Any] = {}
    for key, field_name in _SUSPEND_KEYS.items():
        if field_name == "expected_resume_date":
            date = _string(section, key, where)
            found[field_name] = None if date is None else model.parse_date(date, f"callback: {where}{key}")
        else:
            found[field_name] = _integer(section, key, where)
    return model.SuspendResult(**found)


def _nidd(obj: Mapping[str, Any]) -> Optional[model.NiddResult]:
    nidd_response = _object(obj, "niddResponse")
    if nidd_response is None:
        return None
    config = _object(nidd_response, "niddConfigResponse", "niddResponse.") or {}
    where = "niddResponse.niddConfigResponse."
    return model.NiddResult(_string(config, "accountName", where), _string(config, "reason", where),
                      _devices(config, "deviceIds", where))  # fmt: skip


def _fault(obj: Mapping[str, Any]) -> Optional[model.CallbackFault]:
    fault_response = _object(obj, "faultResponse")
    if not fault_response:
        return None
    where = "faultResponse."
    detail = fault_response.get("detail")
    try:
        detail = detail if detail is None or isinstance(detail, str) else json.dumps(detail, sort_keys=True)
    except (TypeError, ValueError):  # a decoded mapping's own values: bytes, an integer past 4,300 digits
        raise CallbackParseError(f"callback: {where}detail: not a JSON value") from None
    return model.CallbackFault(
        _string(fault_response, "faultcode", where),
        _string(fault_response, "faultstring", where),
        _string(fault_response, "faultactor", where),
        detail,
    )


def _device_ids(devices: Tuple[model.ReportedDevice, ...]) -> List[Dict[str, str]]:
    return [{"id": d.identifier, "kind": d.kind} for d in devices]


def rest_callback_dict(callback: model.CallbackRequest) -> Dict[str, Any]:
    """The REST JSON callback for ``callback`` as a dict, keys and nesting as the carrier's examples.

    Not rendered: ``unmodeled`` (only names are kept).
    """
    callback = model.renderable(callback)
    out: Dict[str, Any] = {
        "username": callback.username or "",
        "password": callback.password or "",
        "requestId": callback.request_id,
    }
    if callback.devices:  # NiddService callbacks carry their devices inside niddResponse only
        out["deviceIds"] = _device_ids(callback.devices)
    response = _device_response_dict(callback)
    if response:
        out["deviceResponse"] = response
    if callback.nidd is not None:
        config = _present((("accountName", callback.nidd.account_name), ("reason", callback.nidd.reason)))
        config["deviceIds"] = _device_ids(callback.nidd.devices)
        out["niddResponse"] = {"niddConfigResponse": config}
    if callback.fault is not None:
        f = callback.fault
        fault = (("faultcode", f.code), ("faultstring", f.string), ("faultactor", f.actor), ("detail", f.detail))
        out["faultResponse"] = _present(fault)
    trailer: Tuple[Tuple[str, object], ...] = (
        ("comment", callback.comment),
        ("status", callback.status),
        ("callbackCount", callback.callback_count),
        ("maxCallbackThreshold", callback.max_callback_threshold),
    )
    out.update(_present(trailer))
    return out


def _present(pairs: Tuple[Tuple[str, object], ...]) -> Dict[str, Any]:
    """The pairs whose value is not None, as a dict in their order (absent keys stay absent)."""
    return {key: value for key, value in pairs if value is not None}


def _device_response_dict(callback: model.CallbackRequest) -> Dict[str, Any]:
    response: Dict[str, Any] = {}
    if callback.action is not None:
        key = next(k for k, v in _ACTION_KEYS.items() if v == callback.action)
        section: Dict[str, Any] = {}
        if callback.suspend is not None:
            for name, field_name in _SUSPEND_KEYS.items():
                value = getattr(callback.suspend, field_name)
                if value is not None:
                    section[name] = model.format_date(value) if field_name == "expected_resume_date" else value
        if callback.restore is not None and callback.restore.restored is not None:
            section["restored"] = callback.restore.restored
        response[key] = section
    if callback.profile is not None:
        p = callback.profile
        response["deviceProfileResponse"] = {
            "deviceIdentifierCollection": _device_ids(p.devices),
            **_present((("state", p.state), ("profileStatus", p.profile_status), ("profileRole", p.profile_role))),
        }
    return response


def render_rest_callback(callback: model.CallbackRequest) -> bytes:
    """The REST JSON callback for ``callback``, as UTF-8 bytes."""
    try:
        return json.dumps(rest_callback_dict(callback), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 document can carry it
        raise InputError(
            "callback", "a text in it holds a lone surrogate, which no UTF-8 document can carry", "give decoded text"
        ) from None
