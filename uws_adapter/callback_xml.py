"""UWS SOAP callbacks: ``CallbackRequest`` documents to :class:`CallbackRequest` and back.

Tolerant where real senders vary: one or two ``Data`` levels, any element order, any prefixes,
``xsi:nil`` as ``true`` or ``1``, unknown elements anywhere, kinds in any case. Strict where it
matters: no RequestId, a second RequestId or a non-integer count is a :class:`CallbackParseError`
naming the element and its line.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple, Union

from lxml import etree

from .callbacks import (
    ACTIONS,
    SUCCESS_STATUSES,
    CallbackFault,
    CallbackRequest,
    NiddResult,
    ProfileResult,
    ReportedDevice,
    RestoreResult,
    SuspendResult,
    format_date,
    parse_date,
    reported_kind,
)
from .errors import CallbackParseError, InputError
from .wire import NS_SOAP_ENV, NS_V2, NS_XSI
from .xmlsafe import MAX_BYTES, parse_untrusted

_NIL = f"{{{NS_XSI}}}nil"
_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
# The defect in the carrier's documented example: an end tag written as </Name/>.
_SLASHED_END_TAG = re.compile(rb"</([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)\s*/>")
_INT = re.compile(r"[+-]?\d+")
_SUSPEND_FIELDS = (
    ("ExpectedResumeDate", "expected_resume_date"),
    ("MaxSuspendDaysAllowed", "max_suspend_days_allowed"),
    ("NumDaysSuspendedLast12Months", "num_days_suspended_last_12_months"),
    ("NumDaysSuspendAllowedCurrent12Months", "num_days_suspend_allowed_current_12_months"),
)


def parse_callback(data: Union[bytes, str], *, repair: bool = False, max_bytes: int = MAX_BYTES) -> CallbackRequest:
    """Parse a UWS SOAP callback: a SOAP 1.1 envelope or a bare ``CallbackRequest`` element.

    ``repair=True`` mends exactly one known defect of old senders (an end tag written
    ``</Name/>``, as in the carrier's own example) and nothing else.
    """
    try:
        root = parse_untrusted(data, max_bytes=max_bytes, error=CallbackParseError, what="callback")
    except CallbackParseError as exc:
        raw = (
            data.encode("utf-8")
            if isinstance(data, str)
            else bytes(data)
            if isinstance(data, (bytes, bytearray))
            else b""
        )
        if not _SLASHED_END_TAG.search(raw):
            raise
        if not repair:
            raise CallbackParseError(
                f"{exc} (an end tag written like </Name/>; pass repair=True, or --repair, to mend exactly that)",
                line=exc.line,
            ) from None
        root = parse_untrusted(
            _SLASHED_END_TAG.sub(rb"</\1>", raw), max_bytes=max_bytes, error=CallbackParseError, what="callback"
        )
    return _Reader().read(_callback_element(root))


def _local(element: etree._Element) -> Optional[str]:
    """The local name of a v2 (or unqualified) element; None for others, comments and PIs."""
    tag = element.tag
    if not isinstance(tag, str):
        return None
    if tag[0] != "{":
        return tag
    namespace, _, name = tag[1:].partition("}")
    return name if namespace == NS_V2 else None


def _line(element: etree._Element) -> Optional[int]:
    line: Optional[int] = element.sourceline  # type: ignore[assignment]  # lxml-stubs mistypes it
    return line


def _error(element: etree._Element, problem: str) -> CallbackParseError:
    """An error naming the element and its line: ``callback: Name (line 7): problem``."""
    name = etree.QName(element).localname if isinstance(element.tag, str) else "node"
    return CallbackParseError(f"callback: {name} (line {_line(element)}){problem}", line=_line(element))


def _callback_element(root: etree._Element) -> etree._Element:
    if root.tag in (f"{{{NS_SOAP_ENV}}}Envelope", f"{{{_SOAP12}}}Envelope"):
        namespace = root.tag[1:].partition("}")[0]
        body = root.find(f"{{{namespace}}}Body")
        children = [] if body is None else [c for c in body if isinstance(c.tag, str)]
        if not children:
            raise _error(root if body is None else body, " is empty: no callback in the SOAP Body")
        root = children[0]
        if root.tag == f"{{{namespace}}}Fault":
            raise _error(root, ": a SOAP Fault, not a callback")
    if _local(root) != "CallbackRequest":
        raise _error(root, ": the document is not a CallbackRequest")
    return root


def _nil(element: etree._Element) -> bool:
    return element.get(_NIL, "").strip() in ("true", "1")


def _text(element: etree._Element) -> Optional[str]:
    if _nil(element):
        return None
    text = "".join(str(t) for t in element.itertext()).strip()
    return text or None


def _empty(element: etree._Element) -> bool:
    return _nil(element) or (len(element) == 0 and not (element.text or "").strip())


class _Reader:
    """Reads one CallbackRequest; remembers which single-valued elements it has seen."""

    def __init__(self) -> None:
        self.values: Dict[str, Optional[str]] = {}
        self.unmodeled: List[str] = []
        self.service: Optional[str] = None
        self.action: Optional[str] = None
        self.suspend: Optional[SuspendResult] = None
        self.fault: Optional[CallbackFault] = None
        self.nidd: Optional[NiddResult] = None
        self.profile: Optional[ProfileResult] = None

    def scalar(self, element: etree._Element, name: str) -> None:
        if name in self.values:
            raise _error(element, " appears twice")
        self.values[name] = _text(element)

    def integer(self, element: etree._Element, name: str) -> Optional[int]:
        text = _text(element)
        if text is None:
            return None
        if not _INT.fullmatch(text):
            raise _error(element, f": {text!r} is not an integer")
        return int(text)

    def other(self, element: etree._Element, path: str) -> None:
        if not _empty(element):
            self.unmodeled.append(path)

    def read(self, request: etree._Element) -> CallbackRequest:
        devices: List[ReportedDevice] = []
        counts: Dict[str, Optional[int]] = {}
        data_seen = False
        for child in request:
            name = _local(child)
            if name in ("Username", "Password", "RequestId"):
                self.scalar(child, name)
            elif name == "Device":
                devices.append(_device(child))
            elif name == "Data":
                if data_seen:
                    raise _error(child, " appears twice")
                data_seen = True
                counts = self.data(_innermost_data(child))
            elif name is not None:
                self.other(child, name)
        request_id = self.values.get("RequestId")
        if request_id is None:
            raise _error(request, " has no RequestId")
        return CallbackRequest(
            request_id=request_id,
            devices=tuple(devices),
            username=self.values.get("Username"),
            password=self.values.get("Password"),
            service=self.service,
            action=self.action,
            status=self.values.get("Status"),
            callback_count=counts.get("CallbackCount"),
            max_callback_threshold=counts.get("MaxCallbackThreshold"),
            comment=self.values.get("Comment"),
            suspend=self.suspend,
            restore=self.restore_result(),
            fault=self.fault,
            nidd=self.nidd,
            profile=self.profile,
            unmodeled=tuple(self.unmodeled),
        )

    def restore_result(self) -> Optional[RestoreResult]:
        if self.action != "Restore":
            return None
        status = self.values.get("Status")
        # UWS sends Restore empty; whether it worked is in Status and Fault, as for `succeeded`.
        return RestoreResult(status is not None and status.lower() in SUCCESS_STATUSES and self.fault is None)

    def data(self, data: etree._Element) -> Dict[str, Optional[int]]:
        counts: Dict[str, Optional[int]] = {}
        for child in data:
            name = _local(child)
            if name in ("Status", "Comment"):
                self.scalar(child, name)
            elif name in ("CallbackCount", "MaxCallbackThreshold"):
                if name in counts:
                    raise _error(child, " appears twice")
                counts[name] = self.integer(child, name)
            elif name == "CarrierService" and not _nil(child):
                self.set_service(child, "CarrierService")
                self.carrier_service(child)
            elif name == "Fault" and not _nil(child):
                self.fault = _fault(child)
            elif name == "NiddService" and not _nil(child):
                self.set_service(child, "NiddService")
                self.nidd = NiddResult(_child_text(child, "AccountName"), _child_text(child, "Reason"), _devices(child))
            elif name == "DeviceProfileService" and not _nil(child):
                self.set_service(child, "DeviceProfileService")
                self.profile = ProfileResult(
                    _devices(child),
                    _child_text(child, "State"),
                    _child_text(child, "ProfileStatus"),
                    _child_text(child, "ProfileRole"),
                )
            elif name is not None:
                self.other(child, name)
        return counts

    def set_service(self, element: etree._Element, service: str) -> None:
        if self.service is not None:
            raise _error(element, f" beside {self.service}: one service per callback")
        self.service = service

    def carrier_service(self, section: etree._Element) -> None:
        for child in section:
            name = _local(child)
            if name == "ChangeDeviceState" and not _nil(child):
                for action in child:
                    action_name = _local(action)
                    if action_name in ACTIONS and not _nil(action):
                        if self.action is not None:
                            raise _error(action, f" beside {self.action}: one action per callback")
                        self.action = action_name
                        if action_name == "Suspend":
                            self.suspend = self.suspend_result(action)
                    elif action_name is not None and action_name not in ACTIONS:
                        self.other(action, f"CarrierService/ChangeDeviceState/{action_name}")
            elif name is not None:
                self.other(child, f"CarrierService/{name}")

    def suspend_result(self, section: etree._Element) -> SuspendResult:
        found: Dict[str, object] = {}
        for child in section:
            name = _local(child)
            for element_name, field_name in _SUSPEND_FIELDS:
                if name == element_name:
                    if field_name == "expected_resume_date":
                        text = _text(child)
                        where = f"callback: ExpectedResumeDate (line {_line(child)})"
                        found[field_name] = None if text is None else parse_date(text, where, _line(child))
                    else:
                        found[field_name] = self.integer(child, element_name)
        return SuspendResult(**found)  # type: ignore[arg-type]


def _innermost_data(data: etree._Element) -> etree._Element:
    # The 2018 example nests Data twice, the 2017 one once [doc]: accept both.
    inner = [c for c in data if _local(c) == "Data"]
    if len(inner) == 1 and not _nil(inner[0]) and all(_local(c) in ("Data", None) for c in data):
        return inner[0]
    return data


def _device(element: etree._Element) -> ReportedDevice:
    kind = _child_text(element, "Kind")
    identifier = _child_text(element, "Identifier")
    if kind is None or identifier is None:
        raise _error(element, " needs a Kind and an Identifier")
    return ReportedDevice(reported_kind(kind), identifier)


def _devices(section: etree._Element) -> Tuple[ReportedDevice, ...]:
    return tuple(_device(child) for child in section if _local(child) == "Device")


def _child_text(element: etree._Element, name: str) -> Optional[str]:
    for child in element:
        if _local(child) == name:
            return _text(child)
    return None


def _fault(element: etree._Element) -> CallbackFault:
    values: Dict[str, Optional[str]] = {}
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        name = tag.rpartition("}")[2]  # fault children are unqualified in SOAP; accept any namespace
        if name in ("faultcode", "faultstring", "faultactor", "faultfactor", "detail"):
            values["faultactor" if name == "faultfactor" else name] = _text(child)
    return CallbackFault(
        values.get("faultcode"), values.get("faultstring"), values.get("faultactor"), values.get("detail")
    )


# Rendering ---------------------------------------------------------------------------------------

_V = f"{{{NS_V2}}}"
_CARRIER_SECTIONS = (
    "ChangeDeviceFeatureCodes",
    "ChangeDeviceServicePlan",
    "ChangeDeviceCostCenter",
    "ChangeDeviceCustomFields",
    "ChangeDeviceIdentifier",
    "Change4GDeviceIdentifier",
    "MoveDevice",
    "ChangeDeviceContactInfo",
)
# The callback example orders the actions so [doc], unlike the request schema.
_CALLBACK_ACTION_ORDER = ("Activate", "Deactivate", "Restore", "Suspend", "Reconnect")
_OTHER_SECTIONS = ("ExternalProvisioningChange", "PromoChange", "SMSDelivery", "PRLInformation", "GoToState")


def _sub(parent: etree._Element, name: str, text: Optional[object] = None, *, nil: bool = False) -> etree._Element:
    element = etree.SubElement(parent, _V + name)
    if nil:
        element.set(_NIL, "true")
    elif text is not None:
        try:
            element.text = str(text)
        except ValueError:  # control characters, which JSON can carry and XML 1.0 cannot
            raise InputError(
                name, f"{str(text)[:40]!r} has characters XML cannot carry", "remove control characters"
            ) from None
    return element


def _sub_devices(parent: etree._Element, devices: Tuple[ReportedDevice, ...]) -> None:
    for device in devices:
        element = _sub(parent, "Device")
        _sub(element, "Kind", device.kind)
        _sub(element, "Identifier", device.identifier)


def render_callback(callback: CallbackRequest) -> bytes:
    """The UWS SOAP callback the carrier would send for ``callback``, shaped like its documented
    example (CallbackRequest in the v2 default namespace, Data nested twice, unused sections nil).

    Not rendered: ``unmodeled`` (only names are kept) and ``restore.restored``, which UWS derives
    from Status. NiddService and DeviceProfileService sections are our own [inferred] shape: UWS
    documents no such callbacks.
    """
    envelope = etree.Element(f"{{{NS_SOAP_ENV}}}Envelope", nsmap={"s": NS_SOAP_ENV})
    body = etree.SubElement(envelope, f"{{{NS_SOAP_ENV}}}Body", nsmap={"xsi": NS_XSI})
    request = etree.SubElement(body, _V + "CallbackRequest", nsmap={None: NS_V2})  # type: ignore[dict-item]
    _sub(request, "Username", callback.username)
    _sub(request, "Password", callback.password)
    _sub(request, "RequestId", callback.request_id)
    _sub_devices(request, callback.devices)
    data = _sub(_sub(request, "Data"), "Data")
    if callback.service == "CarrierService":
        carrier = _sub(data, "CarrierService")
        state = _sub(carrier, "ChangeDeviceState", nil=callback.action is None)
        if callback.action is not None:
            for action in _CALLBACK_ACTION_ORDER:
                section = _sub(state, action, nil=action != callback.action)
                if action == "Suspend" and callback.action == "Suspend" and callback.suspend is not None:
                    _render_suspend(section, callback.suspend)
        for name in _CARRIER_SECTIONS:
            _sub(carrier, name, nil=True)
    else:
        _sub(data, "CarrierService", nil=True)
    for name in _OTHER_SECTIONS:
        _sub(data, name, nil=True)
    if callback.service == "NiddService" and callback.nidd is not None:
        nidd = _sub(data, "NiddService")
        _sub(nidd, "AccountName", callback.nidd.account_name)
        _sub(nidd, "Reason", callback.nidd.reason)
        _sub_devices(nidd, callback.nidd.devices)
    if callback.service == "DeviceProfileService" and callback.profile is not None:
        profile = _sub(data, "DeviceProfileService")
        _sub_devices(profile, callback.profile.devices)
        _sub(profile, "State", callback.profile.state)
        _sub(profile, "ProfileStatus", callback.profile.profile_status)
        _sub(profile, "ProfileRole", callback.profile.profile_role)
    fault = _sub(data, "Fault", nil=callback.fault is None)
    if callback.fault is not None:
        for name, value in zip(("faultcode", "faultstring", "faultactor", "detail"), _fault_values(callback.fault)):
            if value is not None:
                _sub(fault, name, value)
    _sub(data, "Comment", callback.comment, nil=callback.comment is None)
    _sub(data, "Summary", nil=True)
    _sub(data, "Status", callback.status, nil=callback.status is None)
    _sub(data, "CallbackCount", callback.callback_count, nil=callback.callback_count is None)
    _sub(data, "MaxCallbackThreshold", callback.max_callback_threshold, nil=callback.max_callback_threshold is None)
    rendered: bytes = etree.tostring(envelope, encoding="utf-8")
    return rendered


def _fault_values(fault: CallbackFault) -> Tuple[Optional[str], ...]:
    return (fault.code, fault.string, fault.actor, fault.detail)


def _render_suspend(section: etree._Element, result: SuspendResult) -> None:
    for element_name, field_name in _SUSPEND_FIELDS:
        value = getattr(result, field_name)
        if value is not None:
            _sub(section, element_name, format_date(value) if field_name == "expected_resume_date" else value)
