"""The REST device list for previews, against the emulator's: every page read, each line once,
the same filters as restore and suspend, the states counted, 202 while more data is to come."""

from __future__ import annotations

from typing import Dict, Iterator, List

import pytest
import requests
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, rest_client_for

from uws_adapter import Emulator, generated_devices
from uws_adapter.emulator.core import DEFAULT_ACCOUNT, SUSPENDED
from uws_adapter.emulator.lines import EmulatedDevice
from uws_adapter.errors import ServiceFault
from uws_adapter.model.selection import CustomField, DeviceQuery
from uws_adapter.rest.devicelist import device_list_body, preview, read_page

OTHER_ACCOUNT = "0000999999-00001"


def fleet() -> List[EmulatedDevice]:
    lines = generated_devices(9)
    for line in lines[:6]:
        line.group = "fleet-a"
    for line in lines[2:5]:
        line.state = SUSPENDED
    lines[3].service_plan = "Plan B"
    lines[4].custom_fields = {"CustomField2": "SuperVend"}
    lines[8].account = OTHER_ACCOUNT
    return lines


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(devices=fleet()) as served:
        served.rest.list_page_size = 2  # five pages for the group: paging is exercised
        yield served


def test_a_group_is_counted_across_pages_each_line_once(emulator: Emulator) -> None:
    with rest_client_for(emulator.rest_url) as client:
        found = preview(client.list_devices, DeviceQuery(account=DEFAULT_ACCOUNT, group="fleet-a"), first=4)
    assert found.complete
    assert found.count == 6
    assert found.states == {"Active": 3, "Suspended": 3}
    assert [line.identifiers[0].identifier for line in found.first] == [str(350000000000000 + n) for n in range(4)]
    assert "6 line(s) match" in found.lines("x")[0]
    assert found.lines("x")[-2] == "  ... and 2 more"
    assert (found.ready_for("restore"), found.ready_for("suspend"), found.ready_for("other")) == (3, 3, None)
    assert found.lines("x", "suspend")[-1] == (
        "suspend acts on active lines: 3 of these are not; each of them would get a failed callback (DeviceState.Invalid)"
    )


@pytest.mark.parametrize(
    ("query", "count"),
    [
        (DeviceQuery(account=DEFAULT_ACCOUNT), 8),
        (DeviceQuery(service_plan="Plan B"), 1),
        (DeviceQuery(custom_fields=(CustomField("CustomField2", "supervend"),)), 1),  # value case-insensitive
        (DeviceQuery(account=DEFAULT_ACCOUNT, group="fleet-a", service_plan="M2M Flex"), 5),
        (DeviceQuery(group="nobody"), 0),
    ],
    ids=["account", "plan-alone", "custom-field", "combined", "none"],
)
def test_the_filters_of_restore_and_suspend(emulator: Emulator, query: DeviceQuery, count: int) -> None:
    with rest_client_for(emulator.rest_url) as client:
        found = preview(client.list_devices, query)
    expected = emulator.query(query.account, query.group, query.service_plan, query.custom_fields)
    assert found.count == len(expected) == count


def test_an_unknown_account_is_the_carriers_fault(emulator: Emulator) -> None:
    with rest_client_for(emulator.rest_url) as client, pytest.raises(ServiceFault, match="AccountNotFound"):
        preview(client.list_devices, DeviceQuery(account="0000000000-00009"))


def test_nothing_changes(emulator: Emulator) -> None:
    before = [line.state for line in emulator.devices]
    with rest_client_for(emulator.rest_url) as client:
        preview(client.list_devices, DeviceQuery(account=DEFAULT_ACCOUNT))
    assert [line.state for line in emulator.devices] == before
    assert emulator.counters["requests"] == 0


def logged_in(emulator: Emulator) -> Dict[str, str]:
    """The two headers of a REST call: the OAuth bearer and the M2M session token, got over the wire."""
    token = requests.post(f"{emulator.rest_url}/ts/v1/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()["access_token"]  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.post(f"{emulator.rest_url}/m2m/v1/session/login", json={"username": USER, "password": PASSWORD},
                            headers=headers, timeout=10).json()["sessionToken"]  # fmt: skip
    headers["VZ-M2M-Token"] = session
    return headers


def test_the_wire_202_while_more_data_and_the_documented_fields(emulator: Emulator) -> None:
    headers = logged_in(emulator)
    url = f"{emulator.rest_url}/m2m/v1/devices/actions/list"
    body = device_list_body(DeviceQuery(account=DEFAULT_ACCOUNT, group="fleet-a"))
    first = requests.post(url, json=body, headers=headers, timeout=10)
    assert first.status_code == 202
    page = first.json()
    assert page["hasMoreData"] is True
    device = page["devices"][0]
    assert set(device) >= {"accountName", "deviceIds", "carrierInformations", "groupNames", "createdAt"}
    assert device["carrierInformations"][0]["state"] == "Active"
    lines, more = read_page(page)
    assert more
    assert len(lines) == 2
    last = requests.post(url, json={**body, "largestDeviceIdSeen": 5}, headers=headers, timeout=10)
    assert last.status_code == 200
    assert last.json()["hasMoreData"] is False
    assert len(last.json()["devices"]) == 1  # the sixth line, after device ID 5
    refused = requests.post(url, json={**body, "deviceList": []}, headers=headers, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["errorCode"] == "INPUT_INVALID.RequestUndefined"
    one = requests.post(url, json={**body, "maxNumberOfDevices": 1}, headers=headers, timeout=10)
    assert (one.status_code, len(one.json()["devices"])) == (202, 1)
    # 0 was taken for "no limit" (a full page): the refusal written for it could never be given.
    none = requests.post(url, json={**body, "maxNumberOfDevices": 0}, headers=headers, timeout=10)
    assert none.status_code == 400
    assert none.json()["errorMessage"] == "maxNumberOfDevices must be 1 or more"


def test_a_page_that_adds_nothing_ends_an_incomplete_count() -> None:
    page = {"devices": [{"deviceIds": [{"kind": "imei", "id": "350000000000001"}], "createdAt": "t1"}],
            "hasMoreData": True}  # fmt: skip
    asked: List[dict] = []

    def same_page(body: dict) -> dict:
        asked.append(body)
        return page

    found = preview(same_page, DeviceQuery(group="g"))
    assert (found.count, found.complete) == (1, False)
    assert [body.get("earliest") for body in asked] == [None, "t1"]
    assert "lower bound" in found.lines("g")[-1]


def test_an_identifier_of_the_wrong_json_type_is_named_in_json_words(emulator: Emulator) -> None:
    # The emulator's REST front said "kind: expected a string, got int 5" to a JSON client.
    headers = logged_in(emulator)
    body = {"accountName": DEFAULT_ACCOUNT, "devices": [{"deviceIds": [{"kind": 5, "id": 350000000000001}]}]}
    answer = requests.post(f"{emulator.rest_url}/m2m/v1/devices/actions/suspend", json=body, headers=headers,
                           timeout=10)  # fmt: skip
    assert answer.status_code == 400
    assert "kind: expected a string, got a number (5)" in answer.text
