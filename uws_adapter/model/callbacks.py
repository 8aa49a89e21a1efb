"""The carrier's per-device callbacks as plain, typed, frozen dataclasses, and their JSON form.

One model for both APIs: :func:`uws_adapter.parse_callback` (UWS SOAP) and
:func:`uws_adapter.parse_rest_callback` (REST JSON) return the same :class:`CallbackRequest`.
The JSON form (:meth:`CallbackRequest.to_dict`) uses the field names as keys and ISO 8601 dates;
``callback.schema.json`` in this package describes it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union, get_args, get_origin, get_type_hints

from uws_adapter.errors import CallbackParseError, InputError, shown

#: Status values that mean the device's change went through [doc].
SUCCESS_STATUSES = frozenset({"success", "configcreated"})
#: What :meth:`CallbackRequest.to_dict` writes in place of a password.
REDACTED = "***"
#: Nodes one callback may hold: XML elements and comments, or JSON values. The carrier's callbacks
#: hold a few dozen (its documented restore callback: 40 elements [doc]); one device is three
#: elements (Device, Kind, Identifier), so this leaves room for a NiddService or
#: DeviceProfileService section listing a thousand devices [inferred: no documented callback lists
#: more than a handful]. It bounds what an unauthenticated body costs before its credentials are read.
MAX_CALLBACK_NODES = 4096
#: The action names of ChangeDeviceState, in schema order [doc].
ACTIONS = ("Activate", "Deactivate", "Reconnect", "Restore", "Suspend")


#: Why a receiver with no callback credentials is refused unless anonymity was asked for.
OPEN_TO_ANYONE = "a receiver without callback credentials would store callbacks from anyone"


def check_credentials(
    field: str, username: Optional[str], password: Optional[str], fix: str, *, refuse_none: Optional[str] = None
) -> None:
    """The one rule for a pair of callback credentials (a receiver's, a listener's, a registration's):
    both or neither, and neither only where ``refuse_none`` (why none will not do) is None."""
    if bool(username) != bool(password):
        raise InputError(field, "give both a username and a password, or neither", fix)
    if not username and refuse_none is not None:
        raise InputError(field, refuse_none, fix)


@dataclass(frozen=True)
class ReportedDevice:
    """An identifier as the carrier reports it: ``kind`` upper-cased, ``identifier`` verbatim
    (callbacks are not validated against identifier formats: the carrier's word is final)."""

    kind: str
    identifier: str


@dataclass(frozen=True)
class SuspendResult:
    """When a suspended device will return to Active by itself, and its suspend budget."""

    expected_resume_date: Optional[_dt.date] = None
    max_suspend_days_allowed: Optional[int] = None
    num_days_suspended_last_12_months: Optional[int] = None
    num_days_suspend_allowed_current_12_months: Optional[int] = None


@dataclass(frozen=True)
class RestoreResult:
    """``restored`` as REST reports it; for UWS, which sends an empty Restore, it follows Status."""

    restored: Optional[bool] = None


@dataclass(frozen=True)
class CallbackFault:
    """A fault in a callback: ``code`` (e.g. ``REQUEST_FAILED.DeviceNotFound``), ``string``,
    ``actor`` and ``detail`` (text)."""

    code: Optional[str] = None
    string: Optional[str] = None
    actor: Optional[str] = None
    detail: Optional[str] = None


@dataclass(frozen=True)
class NiddResult:
    """The NiddService result that follows a restore of an NB-IoT device."""

    account_name: Optional[str] = None
    reason: Optional[str] = None
    devices: Tuple[ReportedDevice, ...] = ()


@dataclass(frozen=True)
class ProfileResult:
    """An eSIM profile result (DeviceProfileService)."""

    devices: Tuple[ReportedDevice, ...] = ()
    state: Optional[str] = None
    profile_status: Optional[str] = None
    profile_role: Optional[str] = None


@dataclass(frozen=True)
class CallbackRequest:
    """One callback: the result of one request for one device.

    ``succeeded`` is derived: the status means success and there is no fault. ``unmodeled`` names
    the non-empty sections this package does not model, so that nothing is dropped silently.
    ``password`` is kept out of ``repr`` so that it does not end up in logs.
    """

    request_id: str
    devices: Tuple[ReportedDevice, ...] = ()
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    service: Optional[str] = None
    action: Optional[str] = None
    status: Optional[str] = None
    callback_count: Optional[int] = None
    max_callback_threshold: Optional[int] = None
    comment: Optional[str] = None
    suspend: Optional[SuspendResult] = None
    restore: Optional[RestoreResult] = None
    fault: Optional[CallbackFault] = None
    nidd: Optional[NiddResult] = None
    profile: Optional[ProfileResult] = None
    unmodeled: Tuple[str, ...] = ()
    succeeded: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "succeeded", succeeds(self.status, self.fault))

    @property
    def about(self) -> Tuple[ReportedDevice, ...]:
        """The devices this callback is about, wherever the format puts them: at the top level, or
        only inside the NIDD or eSIM profile result (the documented NiddService callbacks) [doc]."""
        if self.devices:
            return self.devices
        if self.nidd is not None and self.nidd.devices:
            return self.nidd.devices
        if self.profile is not None and self.profile.devices:
            return self.profile.devices
        return ()

    def to_dict(self, *, reveal_password: bool = False) -> Dict[str, Any]:
        """The JSON form: field names as keys, dates as ISO 8601. A password is written as
        :data:`REDACTED` unless ``reveal_password`` is true."""
        # Written out field by field: the receiver calls this for every callback it stores, and a
        # generic walk over the dataclasses costs several times as much (a test keeps it complete).
        suspend, fault, nidd, profile = self.suspend, self.fault, self.nidd, self.profile
        return {
            "request_id": self.request_id,
            "devices": _device_dicts(self.devices),
            "username": self.username,
            "password": REDACTED if self.password is not None and not reveal_password else self.password,
            "service": self.service,
            "action": self.action,
            "status": self.status,
            "callback_count": self.callback_count,
            "max_callback_threshold": self.max_callback_threshold,
            "comment": self.comment,
            "suspend": None if suspend is None else {
                "expected_resume_date": None if suspend.expected_resume_date is None
                else suspend.expected_resume_date.isoformat(),
                "max_suspend_days_allowed": suspend.max_suspend_days_allowed,
                "num_days_suspended_last_12_months": suspend.num_days_suspended_last_12_months,
                "num_days_suspend_allowed_current_12_months": suspend.num_days_suspend_allowed_current_12_months,
            },
            "restore": None if self.restore is None else {"restored": self.restore.restored},
            "fault": None if fault is None else {
                "code": fault.code, "string": fault.string, "actor": fault.actor, "detail": fault.detail
            },
            "nidd": None if nidd is None else {
                "account_name": nidd.account_name, "reason": nidd.reason, "devices": _device_dicts(nidd.devices)
            },
            "profile": None if profile is None else {
                "devices": _device_dicts(profile.devices), "state": profile.state,
                "profile_status": profile.profile_status, "profile_role": profile.profile_role,
            },
            "unmodeled": list(self.unmodeled),
            "succeeded": self.succeeded,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallbackRequest:
        """Rebuild from :meth:`to_dict` output (``succeeded`` is derived again, not read)."""
        try:
            return cls(
                request_id=data["request_id"],
                devices=_devices(data.get("devices", ())),
                username=data.get("username"),
                password=data.get("password"),
                service=data.get("service"),
                action=data.get("action"),
                status=data.get("status"),
                callback_count=data.get("callback_count"),
                max_callback_threshold=data.get("max_callback_threshold"),
                comment=data.get("comment"),
                suspend=None if data.get("suspend") is None else _suspend(data["suspend"]),
                restore=None if data.get("restore") is None else RestoreResult(**data["restore"]),
                fault=None if data.get("fault") is None else CallbackFault(**data["fault"]),
                nidd=None if data.get("nidd") is None else _nidd(data["nidd"]),
                profile=None if data.get("profile") is None else _profile(data["profile"]),
                unmodeled=tuple(data.get("unmodeled", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CallbackParseError(f"not the JSON form of a callback: {exc!r}") from None


def _device_dicts(devices: Tuple[ReportedDevice, ...]) -> List[Dict[str, str]]:
    return [{"kind": d.kind, "identifier": d.identifier} for d in devices]


def _devices(items: Any) -> Tuple[ReportedDevice, ...]:
    return tuple(ReportedDevice(item["kind"], item["identifier"]) for item in items)


def _suspend(data: Any) -> SuspendResult:
    date = data.get("expected_resume_date")
    return SuspendResult(
        None if date is None else _dt.date.fromisoformat(date),
        data.get("max_suspend_days_allowed"),
        data.get("num_days_suspended_last_12_months"),
        data.get("num_days_suspend_allowed_current_12_months"),
    )


def _nidd(data: Any) -> NiddResult:
    return NiddResult(data.get("account_name"), data.get("reason"), _devices(data.get("devices", ())))


def _profile(data: Any) -> ProfileResult:
    return ProfileResult(
        _devices(data.get("devices", ())), data.get("state"), data.get("profile_status"), data.get("profile_role")
    )


def renderable(callback: object) -> CallbackRequest:
    """``callback`` if it is a :class:`CallbackRequest` whose devices are :class:`ReportedDevice`
    objects (what both renderers read), else the :class:`InputError` naming it: another value ended
    a render in a raw AttributeError or TypeError."""
    if not isinstance(callback, CallbackRequest):
        raise InputError("callback", f"a {type(callback).__name__} is not a CallbackRequest", _RENDER_FIX)
    devices = callback.devices
    if not isinstance(devices, (tuple, list)) or not all(isinstance(device, ReportedDevice) for device in devices):
        raise InputError("callback.devices", "expected ReportedDevice objects", "give ReportedDevice(kind, identifier)")
    _check_fields(callback, "callback")
    return callback


def _check_fields(value: Any, where: str) -> None:
    """Each field of the dataclass ``value`` holds what its annotation says (a renderer writes
    them: a number as a text, a ``None`` kind, an integer past 4,300 digits ended in raw errors)."""
    for name, (kinds, optional) in _field_kinds(type(value)).items():
        held = getattr(value, name)
        if held is None and optional:
            continue
        kind = kinds[-1]
        if kinds[0] is tuple:
            if not isinstance(held, (tuple, list)):
                raise InputError(f"{where}.{name}", f"expected a tuple, got {type(held).__name__}", _RENDER_FIX)
            items: Tuple[Any, ...] = tuple(held)
            if kind is ReportedDevice and all(
                type(item) is ReportedDevice and type(item.kind) is str and type(item.identifier) is str
                for item in items
            ):  # the common case, a device list, in one pass (a renderer's own cost is a few us a device)
                continue
        else:
            items = (held,)
        for item in items:
            place = f"{where}.{name}"
            if isinstance(item, bool) is not (kind is bool) or not isinstance(item, kind):
                got = f"expected {kind.__name__}, got {type(item).__name__} {shown(item)}"
                raise InputError(place, got, _RENDER_FIX)
            if isinstance(item, int) and not isinstance(item, bool):
                if item >= 2**63:
                    raise InputError(place, f"{shown(item)} does not fit 64 bits", _RENDER_FIX)
                try:
                    a_count(item)  # what the parsers refuse is not sent either
                except ValueError as exc:
                    raise InputError(place, str(exc), _RENDER_FIX) from None
            if is_dataclass(kind):
                _check_fields(item, place)


_KINDS: Dict[type, Dict[str, Tuple[Tuple[type, ...], bool]]] = {}


def _field_kinds(cls: type) -> Dict[str, Tuple[Tuple[type, ...], bool]]:
    """``cls``'s init fields -> ((tuple, item type) or (type,), whether None is allowed), from its annotations."""
    if cls not in _KINDS:
        hints = get_type_hints(cls)
        kinds: Dict[str, Tuple[Tuple[type, ...], bool]] = {}
        for item in fields(cls):
            if item.init:
                hint, optional = hints[item.name], False
                if get_origin(hint) is Union:  # Optional[X]
                    hint, optional = next(a for a in get_args(hint) if a is not type(None)), True
                kinds[item.name] = ((tuple, get_args(hint)[0]) if get_origin(hint) is tuple else (hint,), optional)
        _KINDS[cls] = kinds
    return _KINDS[cls]


_RENDER_FIX = "build it with CallbackRequest(...), parse_callback or parse_rest_callback"


def a_count(value: int) -> int:
    """``value`` if it is 0 or more, else the ``ValueError`` whose text the parsers write after the
    field's name: every integer of a callback is a count (of attempts, of days) [doc]."""
    if value < 0:
        raise ValueError(f"{shown(value)} is negative: a count is 0 or more")
    return value


def succeeds(status: Optional[str], fault: Optional[CallbackFault]) -> bool:
    """The rule of :attr:`CallbackRequest.succeeded`: the status means success and there is no fault."""
    return status is not None and status.lower() in SUCCESS_STATUSES and fault is None


def parse_date(text: str, where: str, line: Optional[int] = None) -> _dt.date:
    """``MM/DD/YYYY`` (the carrier's US order, optionally with a time) or ISO ``YYYY-MM-DD``."""
    value = text.strip()
    try:
        if "/" in value:
            month, day, year = value.split()[0].split("/")
            return _dt.date(int(year), int(month), int(day))
        return _dt.date.fromisoformat(value[:10])
    except ValueError:
        raise CallbackParseError(
            f"{where}: {shown(text)} is not a date (MM/DD/YYYY or YYYY-MM-DD)", line=line
        ) from None


def format_date(value: _dt.date) -> str:
    """The carrier's ``MM/DD/YYYY``."""
    return f"{value.month:02d}/{value.day:02d}/{value.year:04d}"


def reported_kind(kind: str) -> str:
    """Kinds arrive as ``IMEI``, ``Imei`` or ``imei``: one spelling for all."""
    return kind.strip().upper()


def callback_json_schema() -> Dict[str, Any]:
    """The JSON Schema of :meth:`CallbackRequest.to_dict` output (shipped as callback.schema.json)."""
    import json
    from importlib import resources

    text = resources.files("uws_adapter.model").joinpath("callback.schema.json").read_text()
    schema: Dict[str, Any] = json.loads(text)
    return schema
