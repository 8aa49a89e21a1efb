"""The bundled WSDL and XSDs: they load offline, describe the documented wire, and validate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xmlschema
from conftest import CARRIER_DOCS, DATA, parse_trusted
from lxml import etree

from uws_adapter import wire
from uws_adapter.soap.resources import resource_dir
from uws_adapter.soap.schemas import CALLBACK_XSD, lxml_schema, xmlschema_schema

WSDL_NS = {"wsdl": "http://schemas.xmlsoap.org/wsdl/", "soap": "http://schemas.xmlsoap.org/wsdl/soap/"}
TOP_WSDL = Path(__file__).resolve().parents[2] / "wsdl"


def test_the_fixture_is_the_documented_example(doc_request: bytes) -> None:
    text = (CARRIER_DOCS / "uws-soap-changedevicestate-restore.txt").read_text()
    assert doc_request.decode().strip() in text


def test_the_installed_files_are_the_top_level_wsdl_folder() -> None:
    installed = {p.name: p.read_bytes() for p in resource_dir().iterdir() if p.suffix in (".wsdl", ".xsd")}
    top = {p.name: p.read_bytes() for p in TOP_WSDL.iterdir() if p.suffix in (".wsdl", ".xsd")}
    assert installed == top


def test_documented_request_validates_with_lxml(doc_request: bytes) -> None:
    lxml_schema().assertValid(parse_trusted(doc_request))


def test_documented_request_validates_with_xmlschema(doc_request: bytes) -> None:
    xmlschema_schema().validate(doc_request.decode())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "<nph1:Kind>ESN</nph1:Kind> <nph1:Identifier>09611822299</nph1:Identifier>",
            "<nph1:Identifier>09611822299</nph1:Identifier> <nph1:Kind>ESN</nph1:Kind>",
        ),
        ("<nph:Restore/>", "<nph:Restore/><nph:AccountName>1</nph:AccountName>"),
        ("<nph:Restore/>", "<nph:Pause/>"),
        ("<nph:Restore/>", "<nph1:Restore/>"),
    ],
    ids=["identifier-before-kind", "account-after-action", "unknown-action", "wrong-namespace"],
)
def test_misordered_or_unknown_elements_are_invalid(doc_request: bytes, old: str, new: str) -> None:
    text = doc_request.decode()
    assert old in text
    bad = text.replace(old, new)
    assert not lxml_schema().validate(parse_trusted(bad))
    assert not xmlschema_schema().is_valid(bad)


def test_namespaces_are_spelled_as_in_wire_py() -> None:
    expected = {
        "uws-v2.xsd": wire.NS_V2,
        "uws-callback.xsd": wire.NS_V2,
        "uws-carrier.xsd": wire.NS_CARRIER,
        "uws-common.xsd": wire.NS_COMMON,
        "uws-session.xsd": wire.NS_SESSION,
        "soap-envelope.xsd": wire.NS_SOAP_ENV,
    }
    for name, namespace in expected.items():
        assert parse_trusted((TOP_WSDL / name).read_bytes()).get("targetNamespace") == namespace, name
    assert wire.NS_CARRIER.endswith("2004/07/NPhase.UnifiedWebService.APIs.v2.Contract.CarrierService")


def _wsdl() -> etree._Element:
    return parse_trusted((TOP_WSDL / "uws.wsdl").read_bytes())


def test_services_have_the_real_endpoints() -> None:
    addresses = {
        address.getparent().getparent().get("name"): address.get("location")
        for address in _wsdl().iterfind("wsdl:service/wsdl:port/soap:address", WSDL_NS)
    }
    assert addresses == {
        "CarrierService": "https://uws.apps.nphase.com/api/v2/CarrierService.svc",
        "SessionService": "https://uws.apps.nphase.com/api/v2/SessionService.svc",
    }


def test_token_header_on_every_operation_but_login() -> None:
    with_header = {}
    for op in _wsdl().iterfind("wsdl:binding/wsdl:operation", WSDL_NS):
        headers = op.findall("wsdl:input/soap:header", WSDL_NS)
        with_header[op.get("name")] = [h.get("part") for h in headers]
        action = op.find("soap:operation", WSDL_NS).get("soapAction")
        assert re.fullmatch(
            r"http://nphase\.com/unifiedwebservice/v2/I(Carrier|Session)Service/" + op.get("name"), action
        )
    assert with_header == {"ChangeDeviceState": ["token"], "LogIn": [], "LogOut": ["token"]}


def test_all_five_actions_are_in_the_schema() -> None:
    carrier = parse_trusted((TOP_WSDL / "uws-carrier.xsd").read_bytes())
    xs = "{http://www.w3.org/2001/XMLSchema}"
    request = carrier.find(f"{xs}complexType[@name='ChangeDeviceStateRequest']")
    names = [e.get("name") for e in request.iter(f"{xs}element")]
    assert names == [
        "DeviceList",
        "DeviceGroupName",
        "AccountName",
        "DeviceServicePlanFilter",
        "DeviceCustomFieldFilter",
        "Activate",
        "Deactivate",
        "Reconnect",
        "Restore",
        "Suspend",
    ]


@pytest.fixture(scope="module")
def doc_callback_repaired() -> str:
    # The documented callback closes with </MaxCallbackThreshold/>, which is not XML; the schema
    # question is about its content, so the test mends that one defect itself.
    text = (DATA / "doc-restore-callback.xml").read_text()
    assert "</MaxCallbackThreshold/>" in text
    return text.replace("</MaxCallbackThreshold/>", "</MaxCallbackThreshold>")


def test_documented_callback_validates(doc_callback_repaired: str) -> None:
    lxml_schema(CALLBACK_XSD).assertValid(parse_trusted(doc_callback_repaired))
    xmlschema_schema(CALLBACK_XSD).validate(doc_callback_repaired)


def test_callback_schema_is_open_to_unknown_elements_and_order(doc_callback_repaired: str) -> None:
    text = doc_callback_repaired.replace("<Status>Success</Status>", "<NewSection2031><X>1</X></NewSection2031>")
    text = text.replace("<CallbackCount>1</CallbackCount>", "<Status>Success</Status><CallbackCount>1</CallbackCount>")
    text = text.replace("<Data> <Data>", "<Data>").replace("</Data> </Data>", "</Data>")
    lxml_schema(CALLBACK_XSD).assertValid(parse_trusted(text))
    assert xmlschema_schema(CALLBACK_XSD).is_valid(text)


def test_callback_schema_types_known_sections(doc_callback_repaired: str) -> None:
    text = doc_callback_repaired.replace("<CallbackCount>1</CallbackCount>", "<CallbackCount>once</CallbackCount>")
    assert not lxml_schema(CALLBACK_XSD).validate(parse_trusted(text))
    assert not xmlschema_schema(CALLBACK_XSD).is_valid(text)


def test_suspend_callback_fields_are_typed() -> None:
    ns = 'xmlns="http://nphase.com/unifiedwebservice/v2"'
    good = (
        f"<CallbackRequest {ns}><RequestId>r</RequestId><Data><CarrierService><ChangeDeviceState><Suspend>"
        "<ExpectedResumeDate>05/25/2018</ExpectedResumeDate><MaxSuspendDaysAllowed>180</MaxSuspendDaysAllowed>"
        "<NumDaysSuspendedLast12Months>93</NumDaysSuspendedLast12Months>"
        "<NumDaysSuspendAllowedCurrent12Months>87</NumDaysSuspendAllowedCurrent12Months>"
        "</Suspend></ChangeDeviceState></CarrierService><Status>Success</Status></Data></CallbackRequest>"
    )
    schema = xmlschema.XMLSchema10(str(resource_dir() / CALLBACK_XSD))
    assert schema.is_valid(good)
    assert not schema.is_valid(good.replace(">93<", ">ninety<"))
    assert etree.XMLSchema(file=str(resource_dir() / CALLBACK_XSD)).validate(parse_trusted(good))
