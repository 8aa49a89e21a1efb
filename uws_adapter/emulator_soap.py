"""The emulator's UWS front: SessionService and CarrierService as our WSDL describes them, every
request validated against our XSD (``DeserializationFailed`` otherwise), faults written
``<Service>.<CODE>`` with HTTP 500 like WCF [inferred status]."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from lxml import etree

from .bindings import WSDL_FILE, resource_dir
from .devices import DeviceIdentifier
from .emulator import MAX_BODY, Emulator, EmulatorFault, Target
from .errors import DocumentError, InputError
from .schemas import lxml_schema
from .selection import CustomField
from .wire import CONTENT_TYPE, NS_CARRIER, NS_SOAP_ENV, NS_V2, UWS_BASE_URL
from .xmlsafe import parse_untrusted

Reply = Tuple[int, bytes, str]
_ACTIONS = ("Activate", "Deactivate", "Reconnect", "Restore", "Suspend")
_QUERY = ("AccountName", "DeviceGroupName", "DeviceServicePlanFilter", "DeviceCustomFieldFilter")


class SoapFault(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def soap_envelope(body: str) -> bytes:
    return f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


def soap_fault_envelope(faultcode: str, message: str) -> bytes:
    """A SOAP 1.1 fault with ``faultcode`` and ``faultstring`` (escaped)."""
    code = etree.Element("faultcode")
    code.text = faultcode
    text = etree.Element("faultstring")
    text.text = message
    detail = etree.tostring(code, encoding="unicode") + etree.tostring(text, encoding="unicode")
    return soap_envelope(f"<s:Fault>{detail}</s:Fault>")


def wsdl_document(address: str) -> bytes:
    """Our WSDL with the service addresses pointing at ``address`` (a ``.../api/v2`` base)."""
    return (resource_dir() / WSDL_FILE).read_bytes().replace(UWS_BASE_URL.encode(), address.encode())


def schema_file(path: str) -> Optional[bytes]:
    """A bundled XSD named by the last part of ``path``, or None."""
    name = path.partition("?")[0].rpartition("/")[2]
    target = resource_dir() / name
    return target.read_bytes() if name.endswith(".xsd") and target.is_file() else None


class SoapFront:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def get(self, path: str) -> Reply:
        if path.endswith("?wsdl") or path.partition("?")[0].endswith(WSDL_FILE):
            return 200, wsdl_document(self.emulator.base_url), CONTENT_TYPE
        data = schema_file(path)
        return (200, data, CONTENT_TYPE) if data is not None else (404, b"not found", "text/plain")

    def post(self, path: str, body: bytes) -> Reply:
        service = path.rstrip("/").rpartition("/")[2].removesuffix(".svc") if path.endswith(".svc") else ""
        if service not in ("SessionService", "CarrierService"):
            return 404, b"no such service", "text/plain"
        emulator = self.emulator
        with emulator.lock:
            emulator.counters["requests"] += 1
        try:
            return 200, self._operation(service, body), CONTENT_TYPE
        except SoapFault as fault:
            with emulator.lock:
                emulator.counters["faults"] += 1
            return 500, soap_fault_envelope(f"{service}.{fault.code}", str(fault)), CONTENT_TYPE

    def _operation(self, service: str, body: bytes) -> bytes:
        try:
            root = parse_untrusted(body, max_bytes=MAX_BODY, what="request")
        except DocumentError as exc:
            raise SoapFault("DeserializationFailed", str(exc)) from None
        schema = lxml_schema()
        if not schema.validate(root):
            # The first complaint names the element and line, as WCF's message does.
            first = next(iter(schema.error_log), None)  # type: ignore[call-overload]  # lxml-stubs
            raise SoapFault("DeserializationFailed", str(first) if first else "the request does not match the contract")
        payload = root.find(f"{{{NS_SOAP_ENV}}}Body")[0]  # type: ignore[index]
        operation = etree.QName(payload).localname
        token = root.findtext(f"{{{NS_SOAP_ENV}}}Header/{{{NS_V2}}}token")
        try:
            if (service, operation) == ("SessionService", "LogIn"):
                username = payload.findtext("{*}Input/{*}Username") or ""
                password = payload.findtext("{*}Input/{*}Password") or ""
                session = self.emulator.open_session(username, password)
                return soap_envelope(
                    f'<LogInResponse xmlns="{NS_V2}"><Output><SessionToken>{session}</SessionToken>'
                    "</Output></LogInResponse>"
                )
            if (service, operation) == ("SessionService", "LogOut"):
                self.emulator.touch_session(token)
                self.emulator.close_session(token)
                return soap_envelope(f'<LogOutResponse xmlns="{NS_V2}"/>')
            if (service, operation) == ("CarrierService", "ChangeDeviceState"):
                self.emulator.touch_session(token)
                request_id = self._change_device_state(payload[0])
                return soap_envelope(
                    f'<ChangeDeviceStateResponse xmlns="{NS_V2}"><Output xmlns:a="{NS_CARRIER}">'
                    f"<a:RequestId>{request_id}</a:RequestId></Output></ChangeDeviceStateResponse>"
                )
        except EmulatorFault as fault:
            raise SoapFault(fault.code, str(fault)) from None
        raise SoapFault("INPUT_INVALID.RequestUndefined", f"{operation} is not a {service} operation")

    def _change_device_state(self, request: etree._Element) -> str:
        fields = {etree.QName(child).localname: child for child in request}
        actions = [name for name in _ACTIONS if name in fields]
        if len(actions) != 1:
            raise SoapFault("INPUT_INVALID.RequestUndefined", "send exactly one action element")
        if actions[0] not in ("Restore", "Suspend"):
            raise SoapFault("INPUT_INVALID.RequestUndefined", f"the emulator does not model {actions[0]}")
        return self.emulator.provision(actions[0], self._targets(fields))

    def _targets(self, fields: Dict[str, etree._Element]) -> List[Target]:
        query = [name for name in _QUERY if name in fields]
        if "DeviceList" in fields:
            if query:
                raise SoapFault("INPUT_INVALID.RequestUndefined", f"DeviceList with {', '.join(query)}")
            devices = []
            for collection in fields["DeviceList"]:
                given = []
                for pair in collection.iterfind("{*}DeviceIdentifiers/{*}DeviceIdentifier"):
                    try:
                        given.append(
                            DeviceIdentifier(pair.findtext("{*}Kind") or "", pair.findtext("{*}Identifier") or "")
                        )
                    except InputError as exc:
                        code = "Kind" if exc.field == "kind" else "Identifier"
                        raise SoapFault(f"INPUT_INVALID.Device.{code}.Invalid", str(exc)) from None
                devices.append(tuple(given))
            return self.emulator.listed(devices)
        custom = []
        if "DeviceCustomFieldFilter" in fields:
            element = fields["DeviceCustomFieldFilter"]
            try:
                custom.append(CustomField(element.findtext("{*}Name") or "", element.findtext("{*}Value") or ""))
            except InputError as exc:
                raise SoapFault(custom_field_code(exc), str(exc)) from None
        text = {name: fields[name].text for name in _QUERY[:3] if name in fields}
        return self.emulator.query(
            text.get("AccountName"), text.get("DeviceGroupName"), text.get("DeviceServicePlanFilter"), custom
        )


def custom_field_code(exc: InputError) -> str:
    """The carrier's code for a refused custom field [doc]."""
    if "name" in exc.field:
        return "INPUT_INVALID.CustomField.InvalidName"
    if "characters," in exc.problem:
        return "INPUT_INVALID.CustomField.TooLong"
    return "INPUT_INVALID.Request.InvalidCharacter"
