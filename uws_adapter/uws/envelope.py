"""ChangeDeviceState envelopes for UWS, built with zeep from the bundled WSDL.

zeep renders the envelope from the WSDL, so names, namespaces and element order come from the XSD.
For a device list zeep renders the first device only; the rest are rendered from a template of that
same device and spliced in. The text around the devices is rendered by zeep once per action, token
and kinds of the first device (not per request), and each time it is, the template is checked to
reproduce zeep's own rendering of the first device, so the two cannot drift apart silently. This
keeps zeep's output exactly while avoiding its per-element cost on 10,000 devices (and its cost per
request on one), and declares every namespace once, on the envelope.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Iterable, List, Mapping, Tuple

from lxml import etree

from uws_adapter.errors import InputError, UnsupportedByApi
from uws_adapter.forksafe import ForkSafeLock
from uws_adapter.model.actions import Action, Suspend
from uws_adapter.model.devices import REST_ONLY_KINDS, Device
from uws_adapter.model.selection import DeviceList, DeviceQuery, Selection, check_request, check_uws_query
from uws_adapter.model.text import xml_text
from uws_adapter.provisioning.urls import URL_FIX, check_service_base
from uws_adapter.uws.bindings import bindings
from uws_adapter.wire import CONTENT_TYPE, NS_SESSION, REQUEST_PREFIXES, UWS_BASE_URL, soap_action

OPERATION = "ChangeDeviceState"


def service_url(base_url: str, service: str) -> str:
    """``<base>/<Service>.svc``, e.g. the emulator's or the carrier's CarrierService endpoint."""
    if not isinstance(base_url, str):
        raise InputError("base_url", f"a {type(base_url).__name__} is not a URL", URL_FIX)
    base = check_service_base(base_url.rstrip("/"), UWS_BASE_URL)
    return f"{base}/{service}.svc"


def _headers(service: str, operation: str) -> Dict[str, str]:
    return {"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{soap_action(service, operation)}"'}


@dataclass(frozen=True)
class SoapRequest:
    """A SOAP request ready to POST: ``url``, HTTP ``headers`` and the UTF-8 ``body``."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    @property
    def text(self) -> str:
        """The envelope as a string."""
        return self.body.decode("utf-8")


def check_soap_request(action: Action, selection: Selection) -> None:
    """Refuse what UWS cannot carry, instead of dropping it silently."""
    check_request(action, selection)
    if isinstance(action, Suspend) and action.with_billing is not None:
        raise UnsupportedByApi(
            "with_billing",
            "UWS ChangeDeviceState has no withBilling field",
            "leave it unset for SOAP, or send the suspend through the REST API",
        )
    if isinstance(selection, DeviceList):
        if selection.account is not None:
            raise UnsupportedByApi(
                "account",
                "UWS forbids AccountName beside a device list",
                "drop the account for SOAP (it is REST-only with a device list), or send through the REST API",
            )
        for position, device in enumerate(selection.devices):
            for ident in device.identifiers:
                if ident.kind in REST_ONLY_KINDS:
                    raise UnsupportedByApi(
                        f"devices[{position}]",
                        f"{ident.kind} identifiers exist only in the REST API",
                        "name the device by another kind (ICCID, IMEI, MDN, ...)",
                    )
    else:
        check_uws_query(selection)
    if isinstance(selection, DeviceQuery) and len(selection.custom_fields) > 1:
        raise UnsupportedByApi(
            "custom_fields",
            "UWS ChangeDeviceState takes one custom-field filter",
            "keep one filter for SOAP, or send the request through the REST API",
        )


def _check_token(token: object) -> str:
    if not isinstance(token, str) or not token.strip():
        raise InputError("token", "a session token is required", "log in first (SessionService LogIn)")
    return xml_text("token", token)


def _zeep_device(device: Device) -> Dict[str, Any]:
    ids = [{"Kind": i.kind, "Identifier": i.identifier} for i in device.identifiers]
    return {"DeviceIdentifiers": {"DeviceIdentifier": ids}}


def _zeep_input(action: Action, selection: Selection) -> Dict[str, Any]:
    data: Dict[str, Any] = {}
    if isinstance(selection, DeviceList):
        data["DeviceList"] = {"DeviceIdentifierCollection": [_zeep_device(d) for d in selection.devices]}
    else:
        data["DeviceGroupName"] = selection.group
        data["AccountName"] = selection.account
        data["DeviceServicePlanFilter"] = selection.service_plan
        if selection.custom_fields:
            only = selection.custom_fields[0]
            data["DeviceCustomFieldFilter"] = {"Name": only.name, "Value": only.value}
    data[action.element] = {}
    return data


def zeep_envelope(action: Action, selection: Selection, *, token: str) -> etree._Element:
    """The envelope exactly as plain zeep ``create_message`` renders it (our baseline)."""
    check_soap_request(action, selection)
    return _zeep_message(action, selection, token)


def _zeep_message(action: Action, selection: Selection, token: str) -> etree._Element:
    found = bindings()
    message: etree._Element = found.client.create_message(  # type: ignore[no-untyped-call]
        found.carrier, OPERATION, Input=_zeep_input(action, selection), _soapheaders={"token": _check_token(token)}
    )
    return message


# The Common contract is the envelope's default namespace (REQUEST_PREFIXES); identifiers and
# kinds are validated against [0-9A-Za-z] patterns, so they need no XML escaping.
_ID_TEMPLATE = "<DeviceIdentifier><Kind>{}</Kind><Identifier>{}</Identifier></DeviceIdentifier>"
_DEVICE_OPEN = "<DeviceIdentifierCollection><DeviceIdentifiers>"
_DEVICE_CLOSE = "</DeviceIdentifiers></DeviceIdentifierCollection>"


def _render_devices(devices: Iterable[Device]) -> str:
    parts: List[str] = []
    append = parts.append
    template = _ID_TEMPLATE.format
    for device in devices:
        append(_DEVICE_OPEN)
        for ident in device.identifiers:
            append(template(ident.kind, ident.identifier))
        append(_DEVICE_CLOSE)
    return "".join(parts)


def _rendered(action: Action, selection: Selection, token: str) -> str:
    """zeep's rendering, its namespaces declared once on the envelope."""
    message = _zeep_message(action, selection, token)
    # lxml takes None as the default-namespace key; lxml-stubs does not know that.
    etree.cleanup_namespaces(message, top_nsmap=REQUEST_PREFIXES)  # type: ignore[arg-type]
    text: str = etree.tostring(message, encoding="unicode")
    return text


#: The text around a device list, by (action, token, the first device's kinds): what zeep renders
#: there does not depend on the identifiers' values (plain text, [0-9A-Za-z+-]: nothing to escape),
#: so zeep renders it once per key, not per request (a third of a one-device call's CPU, issue 19).
_FRAMES: OrderedDict[Tuple[Action, str, Tuple[str, ...]], Tuple[str, str]] = OrderedDict()
_FRAMES_LOCK = ForkSafeLock()
#: A few actions and kinds over a session or two: more keys only means rendering again.
_FRAMES_KEPT = 32


def _frame(action: Action, first: Device, token: str) -> Tuple[str, str]:
    """The envelope before and after the devices, for a device list whose first device is
    ``first``. Made by rendering ``first`` with zeep and finding the device template's rendering
    of it there, once per key: the template cannot drift from zeep's rendering silently."""
    key = (action, token, tuple(i.kind for i in first.identifiers))
    with _FRAMES_LOCK:
        found = _FRAMES.get(key)
        if found is not None:
            _FRAMES.move_to_end(key)
            return found
    text = _rendered(action, DeviceList((first,)), token)
    device = _render_devices((first,))
    before, matched, after = text.partition(device)
    if not matched or device in after:
        raise AssertionError("device template no longer matches zeep's rendering; fix _ID_TEMPLATE")
    with _FRAMES_LOCK:
        _FRAMES[key] = (before, after)
        while len(_FRAMES) > _FRAMES_KEPT:
            _FRAMES.popitem(last=False)
    return before, after


def build_envelope(
    action: Action, selection: Selection, *, token: str, base_url: str = UWS_BASE_URL, checked: bool = False
) -> SoapRequest:
    """The ChangeDeviceState request for ``action`` on ``selection``, with the token header;
    ``checked``: the caller ran :func:`check_soap_request` already (once per send)."""
    if not checked:
        check_soap_request(action, selection)
    if isinstance(selection, DeviceList) and selection.devices:
        before, after = _frame(action, selection.devices[0], _check_token(token))
        text = before + _render_devices(selection.devices) + after
    else:
        text = _rendered(action, selection, token)
    return SoapRequest(
        service_url(base_url, "CarrierService"), text.encode("utf-8"), _headers("CarrierService", OPERATION)
    )


def _session_message(operation: str, **kwargs: Any) -> bytes:
    found = bindings()
    message: etree._Element = found.client.create_message(found.session, operation, **kwargs)  # type: ignore[no-untyped-call]
    etree.cleanup_namespaces(message, top_nsmap={"v2": REQUEST_PREFIXES["v2"], "ses": NS_SESSION})
    text: bytes = etree.tostring(message, encoding="utf-8")
    return text


def build_login(username: str, password: str, *, base_url: str = UWS_BASE_URL) -> SoapRequest:
    """SessionService LogIn (no token header)."""
    for field_name, value in (("username", username), ("password", password)):
        if not isinstance(value, str) or not value:
            raise InputError(field_name, "is required to log in", f"pass the UWS {field_name}")
        xml_text(field_name, value)
    body = _session_message("LogIn", Input={"Username": username, "Password": password})
    return SoapRequest(service_url(base_url, "SessionService"), body, _headers("SessionService", "LogIn"))


def build_logout(token: str, *, base_url: str = UWS_BASE_URL) -> SoapRequest:
    """SessionService LogOut, with the token in the header and the body."""
    token = _check_token(token)
    body = _session_message("LogOut", Input={"SessionToken": token}, _soapheaders={"token": token})
    return SoapRequest(service_url(base_url, "SessionService"), body, _headers("SessionService", "LogOut"))
