"""``wsdl diff``: our WSDL against the emulator's served one (no difference) and against copies
altered by one difference each (each with the verdict it deserves), WCF's split layout over HTTP,
and the hardened fetch (another host, a DOCTYPE, a size cap, a file outside the folder)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest
import requests
from firstcontact import DocumentServer, run_cli
from lxml import etree

from uws_adapter import Emulator
from uws_adapter.errors import InputError
from uws_adapter.wsdldiff import BENIGN, BREAKING, Difference, diff
from uws_adapter.wsdldiff.sources import read_documents

BUNDLED = Path(__file__).resolve().parents[2] / "wsdl"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as served:
        yield served


def altered(tmp_path: Path, file: str, change: Callable[[str], str]) -> Path:
    """A copy of the bundled WSDL folder with ``file`` changed; the path of its uws.wsdl."""
    folder = tmp_path / "altered"
    shutil.copytree(BUNDLED, folder)
    target = folder / file
    before = target.read_text(encoding="utf-8")
    after = change(before)
    assert after != before, "the alteration changed nothing"
    target.write_text(after, encoding="utf-8")
    return folder / "uws.wsdl"


def kinds(found: List[Difference], verdict: str) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for difference in found:
        if difference.verdict == verdict:
            out.setdefault(difference.kind, []).append(difference.where)
    return out


@pytest.mark.parametrize("query", ["CarrierService.svc?wsdl", "SessionService.svc?wsdl",
                                   "CarrierService.svc?singleWsdl", "SessionService.svc?singleWsdl", "uws.wsdl"])  # fmt: skip
def test_the_emulators_served_wsdl_has_no_difference(emulator: Emulator, query: str) -> None:
    result = diff(f"{emulator.base_url}/{query}")
    assert result.differences == ()
    assert not result.breaking
    assert result.services


def test_the_cli_exits_0_with_json_for_the_emulator(emulator: Emulator, tmp_path: Path) -> None:
    done = run_cli(["wsdl", "diff", f"{emulator.base_url}/CarrierService.svc?wsdl", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["breaking"] is False
    assert answer["differences"] == []
    assert answer["services"] == ["CarrierService"]


def _swap(text: str, first: str, second: str) -> str:
    lines = text.splitlines(keepends=True)
    a = next(i for i, line in enumerate(lines) if f'name="{first}"' in line)
    b = next(i for i, line in enumerate(lines) if f'name="{second}"' in line)
    lines[a], lines[b] = lines[b], lines[a]
    return "".join(lines)


def test_members_swapped_is_breaking(tmp_path: Path) -> None:
    source = altered(tmp_path, "uws-carrier.xsd", lambda t: _swap(t, "DeviceGroupName", "AccountName"))
    result = diff(str(source))
    assert result.breaking
    order = kinds(list(result.differences), BREAKING)["order"]
    assert order == ["CarrierService.ChangeDeviceState input ChangeDeviceState/Input/AccountName"]


def test_kind_and_identifier_swapped_is_breaking(tmp_path: Path) -> None:
    source = altered(tmp_path, "uws-common.xsd", lambda t: _swap(t, "Kind", "Identifier"))
    found = kinds(list(diff(str(source)).differences), BREAKING)
    assert any(where.endswith("DeviceIdentifier/Identifier") for where in found["order"])


def test_a_namespace_changed_is_breaking(tmp_path: Path) -> None:
    source = altered(tmp_path, "uws-session.xsd", lambda t: t.replace("Contract.SessionService", "Contract.Session"))
    # uws-v2.xsd imports that namespace by name too: change it there as the service would.
    v2 = source.parent / "uws-v2.xsd"
    v2.write_text(v2.read_text().replace("Contract.SessionService", "Contract.Session"))
    result = diff(str(source))
    found = kinds(list(result.differences), BREAKING)
    assert "SessionService.LogIn input LogIn/Input/Username" in found["namespace"]
    assert "SessionService.LogIn input LogIn/Input/Password" in found["namespace"]


def test_an_unqualified_contract_is_a_namespace_change(tmp_path: Path) -> None:
    source = altered(tmp_path, "uws-carrier.xsd", lambda t: t.replace('elementFormDefault="qualified"',
                                                                      'elementFormDefault="unqualified"'))  # fmt: skip
    found = kinds(list(diff(str(source)).differences), BREAKING)
    assert "CarrierService.ChangeDeviceState input ChangeDeviceState/Input/DeviceList" in found["namespace"]


def _drop_operation(text: str) -> str:
    root = etree.fromstring(text.encode())
    for operation in root.iter("{http://schemas.xmlsoap.org/wsdl/}operation"):
        if operation.get("name") == "LogOut":
            operation.getparent().remove(operation)
    return etree.tostring(root, encoding="unicode")


def test_an_operation_removed_is_breaking(tmp_path: Path) -> None:
    result = diff(str(altered(tmp_path, "uws.wsdl", _drop_operation)))
    assert [(d.verdict, d.kind, d.where) for d in result.differences] == [
        (BREAKING, "operation", "SessionService.LogOut")
    ]


def test_a_member_made_required_is_breaking(tmp_path: Path) -> None:
    def required(text: str) -> str:
        return text.replace('name="DeviceGroupName" type="xs:string" minOccurs="0"',
                            'name="DeviceGroupName" type="xs:string" minOccurs="1"')  # fmt: skip

    result = diff(str(altered(tmp_path, "uws-carrier.xsd", required)))
    assert [(d.verdict, d.kind, d.where) for d in result.differences] == [
        (BREAKING, "required", "CarrierService.ChangeDeviceState input ChangeDeviceState/Input/DeviceGroupName")
    ]


def test_a_documentation_change_is_benign(tmp_path: Path, emulator: Emulator) -> None:
    source = altered(tmp_path, "uws-common.xsd", lambda t: t.replace("Order Kind, then Identifier", "Kind first"))
    result = diff(str(source))
    assert not result.breaking
    assert {d.kind for d in result.differences} == {"documentation"}
    assert all(d.verdict == BENIGN for d in result.differences)
    done = run_cli(["wsdl", "diff", str(source)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "BENIGN" in done.stdout
    assert "0 breaking" in done.stdout


def test_a_soap_action_changed_is_breaking_and_the_cli_exits_1(tmp_path: Path) -> None:
    source = altered(tmp_path, "uws.wsdl", lambda t: t.replace("ICarrierService/ChangeDeviceState",
                                                               "CarrierService/ChangeDeviceState"))  # fmt: skip
    done = run_cli(["wsdl", "diff", str(source), "--json"], tmp_path)
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert [d["kind"] for d in answer["differences"]] == ["soap-action"]


def test_what_we_never_send_or_call_is_benign(tmp_path: Path) -> None:
    def extra(text: str) -> str:  # an optional member we never send, and Reconnect made required
        text = text.replace('<xs:element name="Suspend" type="tns:SuspendDeviceRequest" minOccurs="0" nillable="true"/>',
                            '<xs:element name="Suspend" type="tns:SuspendDeviceRequest" minOccurs="0" nillable="true"/>'
                            '<xs:element name="Comment" type="xs:string" minOccurs="0"/>')  # fmt: skip
        return text.replace('name="Reconnect" type="tns:ReconnectDeviceRequest" minOccurs="0"',
                            'name="Reconnect" type="tns:ReconnectDeviceRequest" minOccurs="1"')  # fmt: skip

    result = diff(str(altered(tmp_path, "uws-carrier.xsd", extra)))
    assert not result.breaking
    assert [(d.kind, d.where.rpartition("/")[2]) for d in result.differences] == [("extra", "Comment")]


def test_a_required_member_we_never_send_is_breaking(tmp_path: Path) -> None:
    def extra(text: str) -> str:
        return text.replace('<xs:element name="DeviceList"', '<xs:element name="Reason" type="xs:string"/>\n'
                            '      <xs:element name="DeviceList"')  # fmt: skip

    found = kinds(list(diff(str(altered(tmp_path, "uws-carrier.xsd", extra))).differences), BREAKING)
    assert found == {"required": ["CarrierService.ChangeDeviceState input ChangeDeviceState/Input/Reason"]}


# WCF's layout, over HTTP -------------------------------------------------------------------------


def wcf_split(emulator: Emulator, server: DocumentServer, service: str) -> str:
    """``service``'s WSDL as WCF publishes it: ``?wsdl`` holds the binding and the service and
    imports ``?wsdl=wsdl0`` (messages, port type, types importing ``?xsd=xsdN``)."""
    import requests

    base = f"{server.url}/{service}.svc"
    whole = etree.fromstring(requests.get(f"{emulator.base_url}/{service}.svc?wsdl", timeout=10).content)
    wsdl = "{http://schemas.xmlsoap.org/wsdl/}"
    names = {}
    for number, element in enumerate(whole.iter("{http://www.w3.org/2001/XMLSchema}import")):
        location = element.get("schemaLocation")
        name = location.rpartition("=")[2]
        names[name] = f"xsd{number}"
    outer = etree.Element(f"{wsdl}definitions", nsmap={**whole.nsmap, "tns": "http://tempuri.org/"})
    outer.set("targetNamespace", "http://tempuri.org/")
    outer.set("name", service)
    etree.SubElement(outer, f"{wsdl}import", namespace=whole.get("targetNamespace"), location=f"{base}?wsdl=wsdl0")
    for child in list(whole):
        if child.tag in (f"{wsdl}binding", f"{wsdl}service"):
            outer.append(child)  # the binding now in WCF's tempuri namespace, as the port names it
    for port in outer.iter(f"{wsdl}port"):
        port.set("binding", "tns:" + str(port.get("binding")).partition(":")[2])
    server.documents[f"/{service}.svc?wsdl"] = etree.tostring(outer, xml_declaration=True, encoding="utf-8")
    text = etree.tostring(whole, encoding="unicode")
    for name, alias in names.items():
        text = text.replace(f"?xsd={name}", f"?xsd={alias}").replace(emulator.base_url, server.url)
    server.documents[f"/{service}.svc?wsdl=wsdl0"] = text.encode()
    for name, alias in names.items():
        xsd = requests.get(f"{emulator.base_url}/{service}.svc?xsd={name}", timeout=10).text
        for other, other_alias in names.items():
            xsd = xsd.replace(f"?xsd={other}", f"?xsd={other_alias}")
        server.documents[f"/{service}.svc?xsd={alias}"] = xsd.replace(emulator.base_url, server.url).encode()
    # The XSDs import each other: serve every bundled one under the service, as WCF numbers them.
    for path in BUNDLED.glob("*.xsd"):
        key = f"/{service}.svc?xsd={path.name}"
        if key not in server.documents:
            text = requests.get(f"{emulator.base_url}/{service}.svc?xsd={path.name}", timeout=10).text
            server.documents[key] = text.replace(emulator.base_url, server.url).encode()
    return f"{base}?wsdl"


def test_wcf_split_wsdl_over_http(emulator: Emulator) -> None:
    with DocumentServer() as server:
        result = diff(wcf_split(emulator, server, "CarrierService"))
        assert result.differences == ()
        assert result.services == ("CarrierService",)
        assert any("?wsdl=wsdl0" in path for path in server.requested)


def test_an_import_from_another_host_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    with DocumentServer() as server:
        source = wcf_split(emulator, server, "SessionService")
        elsewhere = server.url.replace("127.0.0.1", "localhost")
        key = "/SessionService.svc?wsdl"
        server.documents[key] = server.documents[key].replace(f"{server.url}/".encode(), f"{elsewhere}/".encode())
        with pytest.raises(InputError, match=r"an import points at .*localhost.*refused"):
            diff(source)
        assert not any("wsdl0" in path for path in server.requested)
        done = run_cli(["wsdl", "diff", source], tmp_path)
        assert done.returncode == 2
        assert "refused" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_doctype_and_an_oversized_document_are_refused(tmp_path: Path) -> None:
    with DocumentServer() as server:
        server.documents["/x.svc?wsdl"] = (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "boom">]>'
            b'<definitions xmlns="http://schemas.xmlsoap.org/wsdl/">&e;</definitions>'
        )
        with pytest.raises(InputError, match="DOCTYPE is not allowed"):
            diff(f"{server.url}/x.svc?wsdl")
        server.documents["/big.svc?wsdl"] = b"<definitions>" + b" " * 5000 + b"</definitions>"
        done = run_cli(["wsdl", "diff", f"{server.url}/big.svc?wsdl", "--max-bytes", "1000"], tmp_path)
        assert done.returncode == 2
        assert "1,000-byte limit" in done.stderr
        # Its own option is named, not the client's settings (which do not bound it).
        assert "--max-bytes" in done.stderr
        assert "UWS_ADAPTER_" not in done.stderr
        assert "--max-answer-bytes" not in done.stderr
        done = run_cli(["wsdl", "diff", f"{server.url}/missing.svc?wsdl"], tmp_path)
        assert done.returncode == 2
        assert "HTTP 404" in done.stderr


def test_a_source_that_is_no_file_is_told_from_a_missing_one(tmp_path: Path) -> None:
    # A folder exists: "no file" sent the user looking for a path that is there.
    with pytest.raises(InputError, match=r"^SOURCE: .* is not a file; give a \.svc\?wsdl URL"):
        diff(str(tmp_path))
    with pytest.raises(InputError, match=r"^SOURCE: no file .*gone\.wsdl; give"):
        diff(str(tmp_path / "gone.wsdl"))


@pytest.mark.parametrize(
    ("deadline", "message"),
    [
        ("0", "0.0 is not a positive number of seconds"),
        ("inf", "inf is not a finite number of seconds"),
        ("1e9", "1000000000.0 seconds is longer than a year"),
    ],
    ids=["zero", "infinite", "past-a-year"],
)
def test_the_deadline_is_checked_as_every_wait_is(tmp_path: Path, deadline: str, message: str) -> None:
    # Its own check let an infinite deadline through (and said "not a number" of 0).
    done = run_cli(["wsdl", "diff", str(tmp_path / "x.wsdl"), "--deadline", deadline], tmp_path)
    assert done.returncode == 2
    assert f"--deadline: {message}; write e.g. 60" in done.stderr  # as written, not as a Python argument


def test_a_local_import_outside_the_folder_is_refused(tmp_path: Path) -> None:
    source = altered(tmp_path, "uws-v2.xsd", lambda t: t.replace('schemaLocation="uws-session.xsd"',
                                                                 'schemaLocation="../outside.xsd"'))  # fmt: skip
    (tmp_path / "outside.xsd").write_text((BUNDLED / "uws-session.xsd").read_text())
    with pytest.raises(InputError, match="outside"):
        diff(str(source))


@pytest.mark.parametrize("location", ["http://[bad/y.xsd", "http://u:pw@[::1/y.xsd"], ids=["bad-ipv6", "with-password"])
def test_an_import_location_that_is_not_a_url_is_refused_in_one_line(tmp_path: Path, location: str) -> None:
    # urljoin's ValueError ("Invalid IPv6 URL") ended the command as an unexpected error.
    source = altered(tmp_path, "uws-v2.xsd", lambda t: t.replace('schemaLocation="uws-session.xsd"',
                                                                 f'schemaLocation="{location}"'))  # fmt: skip
    with pytest.raises(InputError, match=r"^SOURCE: uws-v2.xsd imports '.*', which is not a URL") as caught:
        diff(str(source))
    assert "pw" not in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_local_import_that_is_not_a_file_is_refused_without_waiting(tmp_path: Path) -> None:
    # The WSDL itself is refused when it is no file; a FIFO it imports (no one writing to it) hung
    # the command in read_bytes(), as --devices-file and --config did (see localfiles).
    source = altered(tmp_path, "uws-v2.xsd", lambda t: t.replace('schemaLocation="uws-session.xsd"',
                                                                 'schemaLocation="pipe.xsd"'))  # fmt: skip
    os.mkfifo(source.parent / "pipe.xsd")
    outcome: List[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            diff(str(source))
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(60), "wsdl diff waited for a writer to the FIFO"
    assert isinstance(outcome[0], InputError)
    assert str(outcome[0]) == "SOURCE: pipe.xsd is not a file; give the import the path of a file beside the WSDL"


def test_a_local_import_naming_a_nul_is_refused_in_one_line(tmp_path: Path) -> None:
    # url2pathname decodes %00: Path.resolve() then ended the command in a raw ValueError.
    source = altered(tmp_path, "uws-v2.xsd", lambda t: t.replace('schemaLocation="uws-session.xsd"',
                                                                 'schemaLocation="a%00.xsd"'))  # fmt: skip
    with pytest.raises(InputError, match=r"^SOURCE: an import names 'a%00.xsd', which is not a file name; fix"):
        diff(str(source))


def test_a_wsdl_importing_more_documents_than_allowed_is_refused() -> None:
    # Our WSDL is 5 documents: the WSDL and 4 XSDs reached through its imports.
    assert len(read_documents(str(BUNDLED / "uws.wsdl"), max_documents=5).roots) == 5
    with pytest.raises(InputError, match="SOURCE: imports more than 4 documents; give a smaller WSDL"):
        read_documents(str(BUNDLED / "uws.wsdl"), max_documents=4)


def test_a_saved_svc_wsdl_says_to_save_the_single_wsdl_which_then_diffs(emulator: Emulator, tmp_path: Path) -> None:
    # What a user saves from a .svc?wsdl imports its XSDs by absolute URL; a local file is never
    # allowed to fetch, so the fix must name a file that needs no import: the ?singleWsdl.
    saved = tmp_path / "CarrierService.wsdl"
    saved.write_bytes(requests.get(f"{emulator.base_url}/CarrierService.svc?wsdl", timeout=30).content)
    done = run_cli(["wsdl", "diff", str(saved)], tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "a local WSDL imports" in done.stderr
    assert "save the service's ?singleWsdl (everything inlined) and diff that file" in done.stderr
    single = tmp_path / "single.wsdl"
    single.write_bytes(requests.get(f"{emulator.base_url}/CarrierService.svc?singleWsdl", timeout=30).content)
    assert diff(str(single)).differences == ()


def test_a_source_with_none_of_our_services(tmp_path: Path) -> None:
    other = tmp_path / "other.wsdl"
    other.write_text('<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" targetNamespace="urn:x">'
                     '<service name="Weather"/></definitions>')  # fmt: skip
    done = run_cli(["wsdl", "diff", str(other)], tmp_path)
    assert done.returncode == 2
    assert "none of our services" in done.stderr


def test_the_carriers_type_names_are_benign(tmp_path: Path) -> None:
    """The UWS reference pages name the filter type CustomFieldFilterObj: a name that never travels."""
    source = altered(tmp_path, "uws-common.xsd", lambda t: t.replace('name="CustomFieldFilter"',
                                                                     'name="CustomFieldFilterObj"'))  # fmt: skip
    carrier = source.parent / "uws-carrier.xsd"
    carrier.write_text(carrier.read_text().replace("common:CustomFieldFilter", "common:CustomFieldFilterObj"))
    result = diff(str(source))
    assert [(d.verdict, d.kind, d.ours, d.theirs) for d in result.differences] == [
        (BENIGN, "type-name", "CustomFieldFilter", "CustomFieldFilterObj")
    ]


def test_a_base_type_and_references_are_read_as_wcf_writes_them(tmp_path: Path) -> None:
    """Members inherited through complexContent/extension and declared by ref count as their own."""

    def derived(text: str) -> str:
        text = text.replace(
            '<xs:complexType name="DeviceIdentifier">',
            '<xs:complexType name="IdentifierBase"><xs:sequence><xs:element name="Kind" type="xs:string"/>'
            '</xs:sequence></xs:complexType>\n<xs:element name="Identifier" type="xs:string"/>\n'
            '<xs:complexType name="DeviceIdentifier">',
        )
        return text.replace(
            '<xs:sequence>\n      <xs:element name="Kind" type="xs:string"/>\n      <xs:element name="Identifier" '
            'type="xs:string"/>\n    </xs:sequence>',
            '<xs:complexContent><xs:extension base="tns:IdentifierBase"><xs:sequence>'
            '<xs:element ref="tns:Identifier"/></xs:sequence></xs:extension></xs:complexContent>',
        )

    result = diff(str(altered(tmp_path, "uws-common.xsd", derived)))
    assert result.differences == ()


def test_a_soap_12_binding_only_is_breaking(tmp_path: Path) -> None:
    def soap12(text: str) -> str:
        return text.replace("http://schemas.xmlsoap.org/wsdl/soap/", "http://schemas.xmlsoap.org/wsdl/soap12/")

    found = kinds(list(diff(str(altered(tmp_path, "uws.wsdl", soap12))).differences), BREAKING)
    assert set(found) == {"soap-version"}
    assert len(found["soap-version"]) == 3


def test_a_redirect_is_not_followed(emulator: Emulator) -> None:
    with DocumentServer() as server:
        server.redirects["/CarrierService.svc?wsdl"] = f"{emulator.base_url}/CarrierService.svc?wsdl"
        with pytest.raises(InputError, match=r"answered HTTP 302 \(to .*CarrierService.svc\?wsdl.*\)"):
            diff(f"{server.url}/CarrierService.svc?wsdl")
        assert server.requested == ["/CarrierService.svc?wsdl"]


def test_too_deep_a_document_is_refused() -> None:
    with DocumentServer() as server:
        deep = b"<x>" * 200 + b"</x>" * 200
        server.documents["/deep.svc?wsdl"] = (
            b'<definitions xmlns="http://schemas.xmlsoap.org/wsdl/">' + deep + (b"</definitions>")
        )
        with pytest.raises(InputError, match="nesting deeper than"):
            diff(f"{server.url}/deep.svc?wsdl")
