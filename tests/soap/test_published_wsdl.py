"""The WSDL we publish is what WCF would publish (issue 20, item 24): every portType input and output
carries its ``wsaw:Action``, and the published types hold DataContract schemas, without ``xs:any``,
so that .NET's svcutil builds DataContract proxies (tests/interop/test_dotnet.py builds one). The
leniency to members the carrier may add to its answers lives in our client's reading instead."""

from __future__ import annotations

from typing import Dict, Iterator, Tuple

import pytest
import requests
from conftest import client_for
from lxml import etree
from servers import HttpServer

from uws_adapter import Device, Emulator, select
from uws_adapter.wire import NS_CARRIER, NS_SESSION, NS_SOAP_ENV, NS_V2

NS = {
    "wsdl": "http://schemas.xmlsoap.org/wsdl/",
    "soap": "http://schemas.xmlsoap.org/wsdl/soap/",
    "wsaw": "http://www.w3.org/2006/05/addressing/wsdl",
    "xs": "http://www.w3.org/2001/XMLSchema",
}
SERVICES = ("SessionService", "CarrierService")


@pytest.fixture(scope="module")
def published() -> Iterator[Dict[str, etree._Element]]:
    """Each service's ?wsdl and ?singleWsdl as the emulator serves them."""
    with Emulator() as emulator:
        yield {
            f"{service}?{query}": etree.fromstring(
                requests.get(f"{emulator.base_url}/{service}.svc?{query}", timeout=10).content
            )
            for service in SERVICES
            for query in ("wsdl", "singleWsdl")
        }


@pytest.mark.parametrize("document", [f"{s}?{q}" for s in SERVICES for q in ("wsdl", "singleWsdl")])
def test_every_port_type_message_carries_its_wsaw_action(published: Dict[str, etree._Element], document: str) -> None:
    root = published[document]
    bound = {
        str(op.get("name")): str(op.find("soap:operation", NS).get("soapAction"))  # type: ignore[union-attr]
        for op in root.iterfind("wsdl:binding/wsdl:operation", NS)
    }
    operations = root.findall("wsdl:portType/wsdl:operation", NS)
    assert operations
    for operation in operations:
        name = str(operation.get("name"))
        action = f"{{{NS['wsaw']}}}Action"
        # As WCF writes them: the input's Action is the SOAPAction, the output's the same + "Response".
        assert operation.find("wsdl:input", NS).get(action) == bound[name]  # type: ignore[union-attr]
        assert operation.find("wsdl:output", NS).get(action) == bound[name] + "Response"  # type: ignore[union-attr]


@pytest.mark.parametrize("service", SERVICES)
def test_the_published_types_have_no_wildcards(published: Dict[str, etree._Element], service: str) -> None:
    types = published[f"{service}?singleWsdl"].find("wsdl:types", NS)
    assert types is not None
    assert len(types.findall("xs:schema", NS)) == 4
    wildcards = [etree.QName(e).localname for e in types.iter(f"{{{NS['xs']}}}any", f"{{{NS['xs']}}}anyAttribute")]
    assert wildcards == []


def test_our_client_reads_answers_with_members_the_carrier_adds() -> None:
    """Members the published schema does not declare, in the contract's namespace and in others,
    before and after the ones we read: our client still finds the token and the RequestId."""
    extra = '<a:Expires>2030-01-01T00:00:00Z</a:Expires><x:Trace xmlns:x="urn:carrier-trace">t-1</x:Trace>'

    def answer(body: bytes) -> Tuple[int, str, bytes]:
        if b"LogIn" in body:
            output = f'<LogInResponse xmlns="{NS_V2}"><Output xmlns:a="{NS_SESSION}">{extra}<a:SessionToken>tok'
            output += f"</a:SessionToken>{extra}</Output><Later>1</Later></LogInResponse>"
        else:
            output = f'<ChangeDeviceStateResponse xmlns="{NS_V2}"><Output xmlns:a="{NS_CARRIER}">{extra}'
            output += f"<a:RequestId>req-1</a:RequestId>{extra}</Output></ChangeDeviceStateResponse>"
        envelope = f'<s:Envelope xmlns:s="{NS_SOAP_ENV}"><s:Body>{output}</s:Body></s:Envelope>'
        return 200, "text/xml; charset=utf-8", envelope.encode()

    server = HttpServer(answer)
    try:
        client = client_for(server.url)
        assert client.suspend(select([Device.of("ESN", "09611822299")])) == "req-1"
        assert client.token == "tok"
    finally:
        server.close()
