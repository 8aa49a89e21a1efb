"""Rendering :class:`CallbackRequest` as the UWS SOAP callback document the carrier sends (the
emulator's callbacks, the bridge's relayed ones, ``uws-adapter parse --to soap``). The element
names and orders it writes are the parser's, in :mod:`uws_adapter.callbacks.uws_xml`. Also the
headers of a callback POST (:func:`callback_headers`): its media type and, per listener, its
SOAPAction."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from lxml import etree

from uws_adapter.callbacks import uws_xml as names
from uws_adapter.errors import InputError
from uws_adapter.model.callbacks import CallbackRequest, ReportedDevice, SuspendResult, format_date, renderable
from uws_adapter.model.text import xml_text
from uws_adapter.wire import CONTENT_TYPE, NS_SOAP_ENV, NS_V2, NS_XSI

__all__ = ["SOAP_ACTION_MAX", "callback_headers", "check_soap_action", "render_callback"]

#: The longest SOAPAction a listener may be given: a URI, not a document.
SOAP_ACTION_MAX = 1000

_V = f"{{{NS_V2}}}"
_NIL = f"{{{NS_XSI}}}nil"

# ASCII only: str.lower() changes the length of some letters (İ), and kinds are ASCII names.
_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def check_soap_action(value: Optional[str], field: str = "listener SOAPAction") -> Optional[str]:
    """``value`` as a callback's SOAPAction may carry it (None: no header); :class:`.InputError`
    naming ``field`` for a value a header cannot hold (quotes, control or non-ASCII characters)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > SOAP_ACTION_MAX:
        raise InputError(
            field, f"is not a SOAPAction of up to {SOAP_ACTION_MAX} characters", "give the listener's action URI"
        )
    if not all(" " <= c <= "~" and c != '"' for c in value):
        raise InputError(
            field, f"{value[:60]!r} has quotes, control or non-ASCII characters", "give the listener's action URI"
        )
    return value


def callback_headers(soap_action: Optional[str] = None) -> Dict[str, str]:
    """The headers of a UWS SOAP callback POST. ``soap_action`` None (the default): no SOAPAction
    header, as our callbacks have always gone (the carrier's value is not documented); a string
    (``""`` included) is sent quoted, as SOAP 1.1 section 6.1.1 writes it. Which listener takes
    what: docs/interop.md (a WCF operation with a specific Action needs exactly its value;
    ``""`` breaks ASMX services routed by SOAPAction, the default)."""
    headers = {"Content-Type": CONTENT_TYPE}
    if check_soap_action(soap_action) is not None:
        headers["SOAPAction"] = f'"{soap_action}"'
    return headers


def _sub(parent: etree._Element, name: str, text: Optional[object] = None, *, nil: bool = False) -> etree._Element:
    element = etree.SubElement(parent, _V + name)
    if nil:
        element.set(_NIL, "true")
    elif text is not None:
        try:
            element.text = str(text)
        except ValueError:  # control characters, which JSON can carry and XML 1.0 cannot
            xml_text(name, str(text))  # raises the one error for such text
            raise
    return element


def _sub_devices(parent: etree._Element, devices: Tuple[ReportedDevice, ...]) -> None:
    for device in devices:
        element = _sub(parent, "Device")
        # The carrier's callbacks write kinds in lower case (<Kind>imei</Kind>) [doc]; a legacy
        # listener comparing them as strings must see the same behind the bridge.
        _sub(element, "Kind", device.kind.translate(_ASCII_LOWER))
        _sub(element, "Identifier", device.identifier)


def render_callback(callback: CallbackRequest) -> bytes:
    """The UWS SOAP callback the carrier would send for ``callback``, shaped like its documented
    example (CallbackRequest in the v2 default namespace, Data nested twice, unused sections nil).

    Not rendered: ``unmodeled`` (only names are kept) and ``restore.restored``, which UWS derives
    from Status. NiddService and DeviceProfileService sections are our own [inferred] shape: UWS
    documents no such callbacks.
    """
    callback = renderable(callback)
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
            for action in names.CALLBACK_ACTION_ORDER:
                section = _sub(state, action, nil=action != callback.action)
                if action == "Suspend" and callback.action == "Suspend" and callback.suspend is not None:
                    _render_suspend(section, callback.suspend)
        for name in names.CARRIER_SECTIONS:
            _sub(carrier, name, nil=True)
    else:
        _sub(data, "CarrierService", nil=True)
    for name in names.OTHER_SECTIONS:
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
    fault, given = _sub(data, "Fault", nil=callback.fault is None), callback.fault
    if given is not None:
        for name, value in zip(names.FAULT_NAMES, (given.code, given.string, given.actor, given.detail)):
            if value is not None:
                _sub(fault, name, value)
    _sub(data, "Comment", callback.comment, nil=callback.comment is None)
    _sub(data, "Summary", nil=True)
    _sub(data, "Status", callback.status, nil=callback.status is None)
    _sub(data, "CallbackCount", callback.callback_count, nil=callback.callback_count is None)
    _sub(data, "MaxCallbackThreshold", callback.max_callback_threshold, nil=callback.max_callback_threshold is None)
    return etree.tostring(envelope, encoding="utf-8")


def _render_suspend(section: etree._Element, result: SuspendResult) -> None:
    for element_name, field_name in names.SUSPEND_FIELDS.items():
        value = getattr(result, field_name)
        if value is not None:
            _sub(section, element_name, format_date(value) if field_name == "expected_resume_date" else value)
