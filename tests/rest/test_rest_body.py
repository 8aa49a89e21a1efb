"""REST bodies: the documented field names, nesting, value types and key order, and the
selection rules that differ from UWS (a device list may carry accountName)."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from conftest import CARRIER_DOCS, DATA

from uws_adapter import CustomField, Device, InputError, Restore, Suspend, select
from uws_adapter.rest.body import profile_resume_body, rest_body, rest_request

ICCID = "89148000000800784259"


def doc_example(name: str) -> Dict[str, Any]:
    """A documented example with its ICCID placeholder filled in (the placeholder is not an ICCID)."""
    text = (DATA / name).read_text().replace("20-digit ICCID", ICCID)
    data: Dict[str, Any] = json.loads(text)
    return data


def subset(data: Dict[str, Any], keys: List[str]) -> Dict[str, Any]:
    return {key: value for key, value in data.items() if key in keys}


@pytest.mark.parametrize("name", ["restore", "suspend", "profile-resume"])
def test_fixtures_are_the_documented_examples(name: str) -> None:
    doc = {"restore": "rest-restore-devices.txt", "suspend": "rest-suspend-devices.txt"}.get(
        name, "rest-esim-profile-resume.txt"
    )
    assert (DATA / f"doc-rest-{name}-request.json").read_text().strip() in (CARRIER_DOCS / doc).read_text()


@pytest.mark.parametrize(
    ("action", "example"),
    [(Restore(), "doc-rest-restore-request.json"), (Suspend(True), "doc-rest-suspend-request.json")],
    ids=["restore", "suspend-with-billing"],
)
def test_device_list_with_account_matches_the_documented_fields(action: Any, example: str) -> None:
    doc = doc_example(example)
    body = rest_body(action, select([Device.of("iccid", ICCID)], account="0000123456-00001"))
    expected = subset(doc, ["accountName", "devices", "withBilling"])
    assert body == expected
    assert list(body) == list(expected)  # the documented key order
    assert json.dumps(body) == json.dumps(expected)  # types too: withBilling a JSON boolean


@pytest.mark.parametrize(
    ("action", "example"),
    [(Restore(), "doc-rest-restore-request.json"), (Suspend(True), "doc-rest-suspend-request.json")],
    ids=["restore", "suspend-with-billing"],
)
def test_query_matches_the_documented_fields(action: Any, example: str) -> None:
    doc = doc_example(example)
    query = select(
        account="0000123456-00001",
        group="name of the group",
        service_plan="service plan name",
        custom_fields=[CustomField("customfield2", "SuperVend")],
    )
    body = rest_body(action, query)
    expected = {key: value for key, value in doc.items() if key != "devices"}
    assert json.dumps(body) == json.dumps(expected)


def test_several_custom_fields_and_rest_only_kinds_are_fine_for_rest() -> None:
    query = select(account="1", custom_fields=[CustomField("CustomField1", "a"), CustomField("CustomField5", "b")])
    assert rest_body(Restore(), query)["customFields"] == [
        {"key": "CustomField1", "value": "a"},
        {"key": "CustomField5", "value": "b"},
    ]
    listed = rest_body(Restore(), select([Device.parse(f"EID:{'1' * 32}+IMSI:310150123456789")]))
    assert listed == {
        "devices": [{"deviceIds": [{"id": "1" * 32, "kind": "eid"}, {"id": "310150123456789", "kind": "imsi"}]}]
    }


def test_without_billing_is_false_and_absent_when_unset() -> None:
    devices = select([Device.of("ICCID", ICCID)])
    assert rest_body(Suspend(False), devices)["withBilling"] is False
    assert "withBilling" not in rest_body(Suspend(), devices)


@pytest.mark.parametrize(
    "extra",
    [{"group": "g"}, {"service_plan": "p"}, {"custom_fields": [CustomField("CustomField1", "v")]}],
    ids=["group", "service-plan", "custom-field"],
)
def test_the_mix_the_docs_forbid_is_refused(extra: Dict[str, Any]) -> None:
    with pytest.raises(InputError, match="a device list cannot be combined with"):
        select([Device.of("ICCID", ICCID)], account="1", **extra)


def test_request_url_per_action() -> None:
    devices = select([Device.of("ICCID", ICCID)])
    assert (
        rest_request(Restore(), devices, base_url="http://h/api/").url == "http://h/api/m2m/v1/devices/actions/restore"
    )
    assert rest_request(Suspend(), devices).url == "https://thingspace.verizon.com/api/m2m/v1/devices/actions/suspend"


def test_profile_resume_body_matches_the_documented_example() -> None:
    body = profile_resume_body(
        [Device.of("ICCID", ICCID)], account="0000123456-00001", service_plan="service plan name"
    )
    assert json.dumps(body) == json.dumps(doc_example("doc-rest-profile-resume-request.json"))


@pytest.mark.parametrize(
    ("devices", "account", "message"),
    [
        ([Device.of("IMEI", "990003420535573")], "1", r"devices\[0\]: IMEI:990003420535573 has no ICCID"),
        ([], "1", "devices: no devices"),
        ([Device.of("ICCID", ICCID)], " ", "account: is empty"),
        ([Device.of("ICCID", ICCID)] * 2, "1", r"devices\[1\]: ICCID:89148000000800784259 is already devices\[0\]"),
    ],
    ids=["no-iccid", "empty", "no-account", "twice"],
)
def test_profile_resume_refusals(devices: List[Device], account: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        profile_resume_body(devices, account=account)
