"""The UWS messages our SOAP server (:mod:`uws_adapter.soap.server`) reads and answers, shared by the
emulator's UWS front and the bridge's SOAP façade: the LogIn credentials, a ChangeDeviceState
``Input`` turned back into the request model, the answers written as UWS writes them. Their
sessions are in :mod:`uws_adapter.soap.sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple
from xml.sax.saxutils import escape

from lxml import etree

from uws_adapter.errors import Code, InputError, Refused
from uws_adapter.model.actions import Action, Restore, Suspend
from uws_adapter.model.callbacks import ACTIONS
from uws_adapter.model.devices import Device, DeviceIdentifier, normalize_kind
from uws_adapter.model.selection import CustomField, DeviceList, Selection, check_uws_query, select
from uws_adapter.wire import MAX_DEVICES_PER_REQUEST, NS_CARRIER, NS_SESSION, NS_SOAP_ENV, NS_V2, UWS_SERVICES

#: The operations of each service, as the WSDL binds them.
OPERATIONS = dict(zip(UWS_SERVICES, (("LogIn", "LogOut"), ("ChangeDeviceState",))))
SERVICES = UWS_SERVICES
_QUERY = ("AccountName", "DeviceGroupName", "DeviceServicePlanFilter", "DeviceCustomFieldFilter")
_UNDEFINED = Code.REQUEST_UNDEFINED


@dataclass(frozen=True)
class SoapCall:
    """A validated incoming call: its operation, its payload element and the header token."""

    service: str
    operation: str
    payload: etree._Element
    token: Optional[str]


def login_credentials(call: SoapCall) -> Tuple[str, str]:
    return call.payload.findtext("{*}Input/{*}Username") or "", call.payload.findtext("{*}Input/{*}Password") or ""


def read_change_device_state(call: SoapCall) -> Tuple[Action, Selection]:
    """The action and selection of a ChangeDeviceState ``Input`` (already schema-valid)."""
    fields: Dict[str, etree._Element] = {etree.QName(child).localname: child for child in call.payload[0]}
    actions = [name for name in ACTIONS if name in fields]
    if len(actions) != 1:
        raise Refused(_UNDEFINED, "send exactly one action element")
    if actions[0] not in ("Restore", "Suspend"):
        raise Refused(_UNDEFINED, f"{actions[0]} is not supported here (Restore and Suspend are)")
    action: Action = Restore() if actions[0] == "Restore" else Suspend()
    query = [name for name in _QUERY if name in fields]
    try:
        if "DeviceList" in fields:
            if query:
                raise Refused(_UNDEFINED, f"DeviceList with {', '.join(query)}")
            collections = list(fields["DeviceList"])
            if len(collections) > MAX_DEVICES_PER_REQUEST:
                raise Refused(Code.MAX_REQUESTS_EXCEEDED, f"{len(collections)} devices")
            return action, DeviceList(tuple(_device(c) for c in collections))
        custom: List[CustomField] = []
        if "DeviceCustomFieldFilter" in fields:
            element = fields["DeviceCustomFieldFilter"]
            custom.append(CustomField(element.findtext("{*}Name") or "", element.findtext("{*}Value") or ""))
        text = {name: fields[name].text or "" for name in _QUERY[:3] if name in fields}
        selection = select(
            account=text.get("AccountName"),
            group=text.get("DeviceGroupName"),
            service_plan=text.get("DeviceServicePlanFilter"),
            custom_fields=custom,
        )
        check_uws_query(selection)  # UWS needs an account or a group; a filter alone is refused
        return action, selection
    except InputError as exc:
        raise Refused(exc.code, exc.fault_text()) from None


def _local(node: etree._Element) -> str:
    """An element's local name in any namespace, as ``{*}`` matches it ("" for a comment or PI)."""
    tag = node.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _device(collection: etree._Element) -> Device:
    # Kinds as UWS takes them: EID and IMSI exist only in the REST API [doc], here as in the fault's list.
    # Walked child by child (the payload is schema-valid): ElementPath's find per element cost more
    # than the rest of a 10,000-device request's reading together.
    identifiers = []
    for part in collection:
        if _local(part) != "DeviceIdentifiers":
            continue
        for pair in part:
            if _local(pair) != "DeviceIdentifier":
                continue
            fields: Dict[str, str] = {}
            for field in pair:
                name = _local(field)
                if name in ("Kind", "Identifier") and name not in fields:  # the first, as findtext reads
                    fields[name] = field.text or ""
            kind = normalize_kind(fields.get("Kind", ""), "soap")
            identifiers.append(DeviceIdentifier(kind, fields.get("Identifier", "")))
    return Device(tuple(identifiers))


def soap_envelope(body: str) -> bytes:
    return f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


def login_response(token: str) -> bytes:
    # Output is a v2 element; its children are in the SessionService contract namespace [seen].
    return soap_envelope(
        f'<LogInResponse xmlns="{NS_V2}"><Output xmlns:a="{NS_SESSION}"><a:SessionToken>{escape(token)}'
        "</a:SessionToken></Output></LogInResponse>"
    )


def logout_response() -> bytes:
    return soap_envelope(f'<LogOutResponse xmlns="{NS_V2}"/>')


def change_response(request_id: str) -> bytes:
    # Escaped: a requestId relayed from the REST API is not ours to trust.
    return soap_envelope(
        f'<ChangeDeviceStateResponse xmlns="{NS_V2}"><Output xmlns:a="{NS_CARRIER}">'
        f"<a:RequestId>{escape(request_id)}</a:RequestId></Output></ChangeDeviceStateResponse>"
    )
