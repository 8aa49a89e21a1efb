"""UWS SOAP callbacks: ``CallbackRequest`` documents to :class:`CallbackRequest` and back.

Tolerant where real senders vary: one or two ``Data`` levels, any element order, any prefixes,
``xsi:nil`` as ``true`` or ``1``, unknown elements anywhere, kinds in any case. Strict where it
matters: no RequestId, a second RequestId or a non-integer count is a :class:`CallbackParseError`
naming the element and its line.
"""

from __future__ import annotations

import re
from typing import Dict, Iterator, List, Optional, Tuple, Union

from lxml import etree

from uws_adapter.errors import CallbackParseError
from uws_adapter.jsonsafe import wire_integer
from uws_adapter.model import callbacks as model
from uws_adapter.model.callbacks import MAX_CALLBACK_NODES
from uws_adapter.model.frozen import made
from uws_adapter.wire import CALLBACK_SERVICES, NS_SOAP12_ENV, NS_SOAP_ENV, NS_V2, NS_XSI
from uws_adapter.xmlsafe import MAX_BYTES, parse_untrusted

_V = f"{{{NS_V2}}}"
_NIL = f"{{{NS_XSI}}}nil"
# As bytes: lxml takes an attribute's name as either, and bytes spare it encoding the str on every read.
_NIL_KEY = _NIL.encode()
_NIL_TRUE = ("true", "1")
# The defect in the carrier's documented example: an end tag written as </Name/>.
_SLASHED_END_TAG = r"</([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)\s*/>"
_SLASHED_END_TAG_TEXT = re.compile(_SLASHED_END_TAG)
_SLASHED_END_TAG_BYTES = re.compile(_SLASHED_END_TAG.encode())
SUSPEND_FIELDS = {
    "ExpectedResumeDate": "expected_resume_date",
    "MaxSuspendDaysAllowed": "max_suspend_days_allowed",
    "NumDaysSuspendedLast12Months": "num_days_suspended_last_12_months",
    "NumDaysSuspendAllowedCurrent12Months": "num_days_suspend_allowed_current_12_months",
}


def parse_callback(
    data: Union[bytes, str], *, repair: bool = False, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_CALLBACK_NODES
) -> model.CallbackRequest:
    """Parse a UWS SOAP callback: a SOAP 1.1 envelope or a bare ``CallbackRequest`` element.

    ``repair=True`` mends exactly one known defect of old senders (an end tag written
    ``</Name/>``, as in the carrier's own example) and nothing else. At most ``max_nodes``
    elements and comments (:data:`~uws_adapter.model.callbacks.MAX_CALLBACK_NODES`).
    """
    return parse_callback_mended(data, repair=repair, max_bytes=max_bytes, max_nodes=max_nodes)[0]


def parse_callback_mended(
    data: Union[bytes, str], *, repair: bool = False, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_CALLBACK_NODES
) -> Tuple[model.CallbackRequest, bool]:
    """As :func:`parse_callback`, and whether the repair was needed (for services to count it)."""
    request, mended = callback_element(data, repair=repair, max_bytes=max_bytes, max_nodes=max_nodes)
    return read_callback(request), mended


def callback_element(
    data: Union[bytes, str], *, repair: bool = False, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_CALLBACK_NODES
) -> Tuple[etree._Element, bool]:
    """The ``CallbackRequest`` element of a document, parsed hardened and bounded but not yet read
    (:func:`callback_credentials` reads its credentials, :func:`read_callback` the rest), and
    whether the repair was needed."""

    def parse(document: Union[bytes, str]) -> etree._Element:
        return parse_untrusted(
            document, max_bytes=max_bytes, error=CallbackParseError, what="callback", max_nodes=max_nodes
        )

    mended_used = False
    try:
        root = parse(data)
    except CallbackParseError as exc:
        if not isinstance(data, (str, bytes, bytearray)):  # not text (None, a memoryview): nothing to mend
            raise
        # Looked for only where a callback could be (a few "<" per node): the search costs a step
        # per end tag, and a flood of them must not pay for it.
        markup = data.count("<" if isinstance(data, str) else b"<")  # type: ignore[arg-type]
        mended = _mend_end_tags(data) if markup <= 2 * max_nodes else None
        if mended is None:
            raise
        if not repair:
            raise CallbackParseError(
                f"{exc} (an end tag written like </Name/>; pass repair=True, or --repair, to mend exactly that)",
                line=exc.line,
            ) from None
        root = parse(mended)
        mended_used = True
    return _callback_element(root), mended_used


def callback_credentials(request: etree._Element) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """(Username, Password, RequestId) of a ``CallbackRequest`` element, the first of each, read
    as :func:`read_callback` reads them: enough to authenticate it before the rest is walked."""
    found: Dict[str, Optional[str]] = {}
    for child in request:
        name = _TAGS.get(child.tag) or _local(child)
        if name in ("Username", "Password", "RequestId") and name not in found:
            found[name] = _leaf_text(child)
            if len(found) == 3:
                break
    return found.get("Username"), found.get("Password"), found.get("RequestId")


def read_callback(request: etree._Element) -> model.CallbackRequest:
    """The callback a ``CallbackRequest`` element holds (see :func:`callback_element`)."""
    return _Reader().read(request)


CARRIER_SECTIONS = (
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
CALLBACK_ACTION_ORDER = ("Activate", "Deactivate", "Restore", "Suspend", "Reconnect")
#: A SOAP fault's children, in the order of :class:`~uws_adapter.model.callbacks.CallbackFault`'s fields.
FAULT_NAMES = ("faultcode", "faultstring", "faultactor", "detail")
OTHER_SECTIONS = ("ExternalProvisioningChange", "PromoChange", "SMSDelivery", "PRLInformation", "GoToState")

# Known names, qualified and unqualified, map straight to their local name: the parser looks up
# every element's tag, and a dict hit is far cheaper than splitting the string each time.
_KNOWN_NAMES = (
    "CallbackRequest", "Username", "Password", "RequestId", "Device", "Kind", "Identifier", "Data",
    *CALLBACK_SERVICES, "ChangeDeviceState", *model.ACTIONS, "Fault", "Comment", "Summary", "Status", "CallbackCount",
    "MaxCallbackThreshold", "AccountName", "Reason", "State",
    "ProfileStatus", "ProfileRole", "ExpectedResumeDate", "MaxSuspendDaysAllowed", "NumDaysSuspendedLast12Months",
    "NumDaysSuspendAllowedCurrent12Months", *CARRIER_SECTIONS, *OTHER_SECTIONS, "DeviceSuspendStatus", "Usage",
)  # fmt: skip
# Empty elements whose emptiness still says something: an empty service section or Fault is
# present (unless nil), and a scalar seen twice is an error even when empty.
_EMPTY_MATTERS = frozenset({*CALLBACK_SERVICES, "Fault", "Status", "Comment", "CallbackCount", "MaxCallbackThreshold"})
_TAGS = {**{name: name for name in _KNOWN_NAMES}, **{f"{{{NS_V2}}}{name}": name for name in _KNOWN_NAMES}}


def _mend_end_tags(data: object) -> Union[bytes, str, None]:
    """``data`` with every ``</Name/>`` written ``</Name>``, in its own type (so that a str keeps
    being read as text, whatever its declaration says); None when there is no such defect."""
    if isinstance(data, str):
        text, count = _SLASHED_END_TAG_TEXT.subn(r"</\1>", data)
        return text if count else None
    if isinstance(data, (bytes, bytearray)):
        raw, count = _SLASHED_END_TAG_BYTES.subn(rb"</\1>", bytes(data))
        return raw if count else None
    return None


def _local(element: etree._Element) -> Optional[str]:
    """The local name of a v2 (or unqualified) element; None for others, comments and PIs."""
    tag = element.tag
    known = _TAGS.get(tag)  # a comment's tag is a function: no hit
    if known is not None:
        return known
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


_ENVELOPES = {f"{{{NS_SOAP_ENV}}}Envelope": NS_SOAP_ENV, f"{{{NS_SOAP12_ENV}}}Envelope": NS_SOAP12_ENV}


def _callback_element(root: etree._Element) -> etree._Element:
    namespace = _ENVELOPES.get(root.tag)
    if namespace is not None:
        body_tag = f"{{{namespace}}}Body"
        body = first = None
        for child in root:  # plain loops: cheaper than generators, on every callback
            if child.tag == body_tag:
                body = child
                break
        for child in () if body is None else body:
            if isinstance(child.tag, str):
                first = child
                break
        if first is None:
            raise _error(root if body is None else body, " is empty: no callback in the SOAP Body")
        if first.tag == f"{{{namespace}}}Fault":
            raise _error(first, ": a SOAP Fault, not a callback")
        root = first
    if _local(root) != "CallbackRequest":
        raise _error(root, ": the document is not a CallbackRequest")
    return root


def _nil(element: etree._Element) -> bool:
    value = element.get(_NIL_KEY)
    return value is not None and value.strip() in _NIL_TRUE


def _text(element: etree._Element) -> Optional[str]:
    return None if not _has_content(element) else _leaf_text(element)


def _children(element: etree._Element) -> Iterator[Tuple[str, etree._Element]]:
    """(local name, element) for each v2 (or unqualified) child element."""
    for child in element:
        name = _TAGS.get(child.tag) or _local(child)
        if name is not None:
            yield name, child


def _has_content(element: etree._Element) -> bool:
    return len(element) > 0 or bool((element.text or "").strip())


def _present(element: etree._Element) -> bool:
    """Present and not nil. xsi:nil is read only for empty elements, where it means something
    (an empty <Restore/> is the action that ran; <Suspend xsi:nil="true"/> is not): reading a
    namespaced attribute costs more than the rest of an element's handling."""
    return _has_content(element) or not _nil(element)


def _leaf_text(element: etree._Element) -> Optional[str]:
    # An element with children (rare: a fault detail with markup) reads as all of its text.
    text = "".join(str(t) for t in element.itertext()) if len(element) else (element.text or "")
    return text.strip() or None


class _Reader:
    """Reads one CallbackRequest; remembers which single-valued elements it has seen."""

    # What most callbacks never set stays a class default (None): no assignment per callback.
    service: Optional[str] = None
    action: Optional[str] = None
    suspend: Optional[model.SuspendResult] = None
    fault: Optional[model.CallbackFault] = None
    nidd: Optional[model.NiddResult] = None
    profile: Optional[model.ProfileResult] = None

    def __init__(self) -> None:
        self.values: Dict[str, Optional[str]] = {}
        self.counts: Dict[str, Optional[int]] = {}
        self.unmodeled: List[str] = []
        self.devices: List[model.ReportedDevice] = []

    def scalar(self, element: etree._Element, name: str) -> None:
        if name in self.values:
            raise _error(element, " appears twice")
        self.values[name] = _leaf_text(element) if len(element) else (element.text or "").strip() or None

    def integer(self, element: etree._Element) -> Optional[int]:
        text = _leaf_text(element)
        return None if text is None else _count(element, text)

    def read(self, request: etree._Element) -> model.CallbackRequest:
        data_seen = False
        values = self.values
        for child in request:  # _children and scalar, inlined: this runs for every callback received
            name = _TAGS.get(child.tag) or _local(child)
            if name is None:
                continue
            if name in ("Username", "Password", "RequestId"):
                if name in values:
                    raise _error(child, " appears twice")
                values[name] = _leaf_text(child) if len(child) else (child.text or "").strip() or None
            elif name == "Device":
                self.devices.append(_device(child))
            elif name == "Data":
                if data_seen:
                    raise _error(child, " appears twice")
                data_seen = True
                if _has_content(child):
                    self.data(_innermost_data(child))
            elif _has_content(child):
                self.unmodeled.append(name)
        request_id = values.get("RequestId")
        if request_id is None:
            raise _error(request, " has no RequestId")
        status = values.get("Status")
        fault = self.fault
        restore = None
        if self.action == "Restore":
            # UWS sends Restore empty; whether it worked is in Status and Fault, as for `succeeded`.
            restore = made(model.RestoreResult, {"restored": model.succeeds(status, fault)})
        counts = self.counts
        # Every field, `succeeded` by its one rule: made without the frozen __init__ (see model.frozen).
        return made(
            model.CallbackRequest,
            {
                "request_id": request_id,
                "devices": tuple(self.devices),
                "username": values.get("Username"),
                "password": values.get("Password"),
                "service": self.service,
                "action": self.action,
                "status": status,
                "callback_count": counts.get("CallbackCount"),
                "max_callback_threshold": counts.get("MaxCallbackThreshold"),
                "comment": values.get("Comment"),
                "suspend": self.suspend,
                "restore": restore,
                "fault": fault,
                "nidd": self.nidd,
                "profile": self.profile,
                "unmodeled": tuple(self.unmodeled),
                "succeeded": model.succeeds(status, fault),
            },
        )

    def data(self, data: etree._Element) -> None:
        # The hot loop of the parser (a callback is mostly empty sections): _children, _has_content,
        # scalar and integer are inlined here, each leaf's text read once, which measurably cuts
        # the cost per callback.
        values = self.values
        counts = self.counts
        for child in data:
            name = _TAGS.get(child.tag) or _local(child)
            if name is None:
                continue
            nested = len(child) > 0  # a section, or markup inside a leaf (rare)
            text = None if nested else (child.text or "").strip() or None
            content = nested or text is not None
            if not content and name not in _EMPTY_MATTERS:
                continue
            if name in ("Status", "Comment"):
                if name in values:
                    raise _error(child, " appears twice")
                values[name] = _leaf_text(child) if nested else text
            elif name in ("CallbackCount", "MaxCallbackThreshold"):
                if name in counts:
                    raise _error(child, " appears twice")
                if nested:
                    text = _leaf_text(child)
                counts[name] = None if text is None else _count(child, text)
            elif name in CALLBACK_SERVICES:
                if content or not _nil(child):
                    self.service_section(name, child)
            elif name == "Fault":
                if content or not _nil(child):
                    self.fault = _fault(child)
            elif content:
                self.unmodeled.append(name)

    def service_section(self, name: str, section: etree._Element) -> None:
        if self.service is not None:
            raise _error(section, f" beside {self.service}: one service per callback")
        self.service = name
        if name == "CarrierService":
            self.carrier_service(section)
        elif name == "NiddService":
            self.nidd = model.NiddResult(
                _child_text(section, "AccountName"), _child_text(section, "Reason"), _devices(section)
            )
        else:
            self.profile = model.ProfileResult(
                _devices(section),
                _child_text(section, "State"),
                _child_text(section, "ProfileStatus"),
                _child_text(section, "ProfileRole"),
            )

    def carrier_service(self, section: etree._Element) -> None:
        for child in section:
            if len(child) == 0 and not (child.text or "").strip():
                continue  # nil or empty: neither an action nor an unmodeled section
            name = _TAGS.get(child.tag) or _local(child)
            if name is None:
                continue
            if name != "ChangeDeviceState":
                self.unmodeled.append(f"CarrierService/{name}")
                continue
            for action in child:  # _children and _present, inlined: five actions in every callback
                action_name = _TAGS.get(action.tag) or _local(action)
                if action_name is None:
                    continue
                if action_name in model.ACTIONS:
                    if len(action) == 0 and not (action.text or "").strip():
                        nil = action.get(_NIL_KEY)  # _nil, inlined
                        if nil is not None and nil.strip() in _NIL_TRUE:
                            continue
                    if self.action is not None:
                        raise _error(action, f" beside {self.action}: one action per callback")
                    self.action = action_name
                    if action_name == "Suspend":
                        self.suspend = self.suspend_result(action)
                elif _has_content(action):
                    self.unmodeled.append(f"CarrierService/ChangeDeviceState/{action_name}")

    def suspend_result(self, section: etree._Element) -> model.SuspendResult:
        found: Dict[str, object] = {}
        if not len(section):  # how the carrier sends it (an empty <Suspend/>): nothing to walk
            return made(model.SuspendResult, _NO_SUSPEND_VALUES)
        for name, child in _children(section):
            field_name = SUSPEND_FIELDS.get(name)
            if field_name == "expected_resume_date":
                text = _leaf_text(child)
                where = f"callback: ExpectedResumeDate (line {_line(child)})"
                found[field_name] = None if text is None else model.parse_date(text, where, _line(child))
            elif field_name is not None:
                found[field_name] = self.integer(child)
        return model.SuspendResult(**found)  # type: ignore[arg-type]


_NO_SUSPEND_VALUES = {name: None for name in SUSPEND_FIELDS.values()}


def _innermost_data(data: etree._Element) -> etree._Element:
    # The 2018 example nests Data twice, the 2017 one once [doc]: accept both.
    elements = data if len(data) == 1 else [c for c in data if isinstance(c.tag, str)]
    if len(elements) == 1 and _local(elements[0]) == "Data" and _present(elements[0]):
        return elements[0]
    return data


def _device(element: etree._Element) -> model.ReportedDevice:
    kind = identifier = None
    for child in element:  # _children inlined: every callback has a device or two
        name = _TAGS.get(child.tag) or _local(child)
        if name == "Kind":
            kind = _leaf_text(child)
        elif name == "Identifier":
            identifier = _leaf_text(child)
    if kind is None or identifier is None:
        raise _error(element, " needs a Kind and an Identifier")
    return made(model.ReportedDevice, {"kind": model.reported_kind(kind), "identifier": identifier})


def _count(element: etree._Element, text: str) -> int:
    """The count ``text`` of ``element`` (stripped, not empty), or the error naming it."""
    try:
        return model.a_count(wire_integer(text))
    except ValueError as exc:
        raise _error(element, f": {exc}") from None


def _devices(section: etree._Element) -> Tuple[model.ReportedDevice, ...]:
    return tuple(_device(child) for child in section if _local(child) == "Device")


def _child_text(element: etree._Element, name: str) -> Optional[str]:
    for child in element:
        if _local(child) == name:
            return _text(child)
    return None


def _fault(element: etree._Element) -> model.CallbackFault:
    values: Dict[str, Optional[str]] = {}
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        name = tag.rpartition("}")[2]  # fault children are unqualified in SOAP; accept any namespace
        name = "faultactor" if name == "faultfactor" else name
        if name in FAULT_NAMES:
            values[name] = _text(child)
    return model.CallbackFault(*(values.get(name) for name in FAULT_NAMES))
