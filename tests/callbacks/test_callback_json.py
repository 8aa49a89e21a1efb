from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict

import pytest
from conftest import DATA

from uws_adapter import (
    CallbackFault,
    CallbackParseError,
    ReportedDevice,
    RestoreResult,
    SuspendResult,
    parse_rest_callback,
    render_rest_callback,
)
from uws_adapter.callbacks.rest_json import rest_callback_dict

RID = "595f5c44-c31c-4552-8670-020a1545a84d"


def _doc(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_documented_restore_callback() -> None:
    cb = parse_rest_callback(_doc("doc-rest-restore-callback.json"))
    assert (cb.request_id, cb.username, cb.password) == (RID, "user name", "password")
    assert cb.devices == (ReportedDevice("IMEI", "990003420535573"), ReportedDevice("ICCID", "89148000000800784259"))
    assert (cb.service, cb.action, cb.status, cb.succeeded) == ("CarrierService", "Restore", "Success", True)
    assert cb.restore == RestoreResult(True)
    assert (cb.callback_count, cb.max_callback_threshold, cb.suspend, cb.fault, cb.unmodeled) == (1, 4, None, None, ())


def test_documented_suspend_callback() -> None:
    cb = parse_rest_callback(_doc("doc-rest-suspend-callback.json"))
    assert (cb.username, cb.password) == (None, None)
    assert cb.devices == (ReportedDevice("MEID", "14-character MEID"), ReportedDevice("MDN", "10-digit MDN"))
    assert (cb.service, cb.action) == ("CarrierService", "Suspend")
    assert cb.suspend == SuspendResult(dt.date(2018, 5, 25), 180, 93, 87)
    assert cb.comment == "Device Suspended - Applicable Charges Will Continue"
    assert cb.succeeded


@pytest.mark.parametrize(
    ("name", "status", "reason", "succeeded"),
    [
        ("doc-rest-nidd-created-callback.json", "ConfigCreated", None, True),
        # The carrier's page omits this example's opening brace; the fixture restores it.
        ("doc-rest-nidd-failed-callback.json", "ConfigFailed", "Not CatM or NBIoT Device", False),
    ],
    ids=["config-created", "config-failed"],
)
def test_documented_nidd_callbacks(name: str, status: str, reason: str, succeeded: bool) -> None:
    cb = parse_rest_callback(_doc(name))
    assert (cb.service, cb.action, cb.status, cb.succeeded) == ("NiddService", None, status, succeeded)
    assert cb.nidd is not None
    assert (cb.nidd.account_name, cb.nidd.reason) == ("9992330389-00001", reason)
    assert cb.nidd.devices == (
        ReportedDevice("EID", "99962019000000000000000000000002"),
        ReportedDevice("IMEI", "9996201900000000000345"),
    )


def test_documented_esim_profile_callback() -> None:
    cb = parse_rest_callback(_doc("doc-rest-esim-profile-callback.json"))
    assert cb.request_id == "d1f08526-5443-4054-9a29-4456490ea9f8"
    assert [d.kind for d in cb.devices] == ["EID", "IMEI", "MSISDN", "ICCID"]
    assert (cb.service, cb.status, cb.succeeded) == ("DeviceProfileService", "SUCCESS", True)
    assert cb.profile is not None
    assert cb.profile.devices == cb.devices
    assert (cb.profile.state, cb.profile.profile_status, cb.profile.profile_role) == ("ACTIVE", "ENABLE", "LOCAL")


def _upper_kinds(value: Any) -> Any:
    """Kinds are written in the documented upper case whatever case they arrived in."""
    if isinstance(value, dict):
        return {k: v.upper() if k == "kind" else _upper_kinds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_upper_kinds(v) for v in value]
    return value


def _base(**extra: Any) -> Dict[str, Any]:
    return {"requestId": "r1", "status": "Success", **extra}


def test_numbers_and_booleans_as_strings() -> None:
    cb = parse_rest_callback(
        _base(callbackCount="2", maxCallbackThreshold=" 4 ", deviceResponse={"restoreResponse": {"restored": "true"}})
    )
    assert (cb.callback_count, cb.max_callback_threshold, cb.restore) == (2, 4, RestoreResult(True))


def test_iso_dates_and_mapping_input_and_bom() -> None:
    body = _base(deviceResponse={"suspendResponse": {"expectedResumeDate": "2018-05-25"}})
    assert parse_rest_callback(body).suspend == SuspendResult(dt.date(2018, 5, 25))
    assert parse_rest_callback(b"\xef\xbb\xbf" + json.dumps(body).encode()).suspend == SuspendResult(
        dt.date(2018, 5, 25)
    )


def test_fault_response() -> None:
    cb = parse_rest_callback(
        _base(status="Failed", faultResponse={"faultcode": "REQUEST_FAILED.DeviceNotFound", "faultstring": "x"})
    )
    assert cb.fault == CallbackFault("REQUEST_FAILED.DeviceNotFound", "x", None, None)
    assert not cb.succeeded


def test_unknown_sections_are_named_not_dropped() -> None:
    cb = parse_rest_callback(_base(newThing={"a": 1}, empty={}, deviceResponse={"futureResponse": {"x": 1}}))
    assert cb.unmodeled == ("newThing", "deviceResponse.futureResponse")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "Success"}, "requestId is missing"),
        (_base(callbackCount="two"), "callbackCount: 'two' is not an integer"),
        (_base(callbackCount=1.5), "callbackCount: 1.5 is not an integer"),
        (_base(callbackCount=True), "callbackCount: True is not an integer"),
        (_base(callbackCount=-1), "callbackCount: -1 is negative: a count is 0 or more"),
        (_base(maxCallbackThreshold="-4"), "maxCallbackThreshold: -4 is negative"),
        (_base(deviceResponse={"suspendResponse": {"numDaysSuspendedLast12Months": -3}}),
         r"deviceResponse\.suspendResponse\.numDaysSuspendedLast12Months: -3 is negative"),
        (_base(deviceIds=[{"kind": "IMEI"}]), r"deviceIds\[0\]: needs both kind and id"),
        (_base(deviceIds="IMEI:1"), "deviceIds: expected an array, got a string"),
        (_base(deviceResponse=[]), "deviceResponse: expected an object"),
        (_base(deviceResponse={"suspendResponse": {"expectedResumeDate": "25.05.2018"}}), "is not a date"),
        (_base(deviceResponse={"restoreResponse": {"restored": "maybe"}}), "is not true or false"),
        (_base(status={"a": 1}), "status: expected a string"),
        (_base(requestId="a\u0000b"), "requestId: has a control character"),
        (_base(deviceIds=[{"kind": "IMEI", "id": "1\u001b"}]), r"deviceIds\[0\]\.id: has a control character"),
    ],
    ids=["no-request-id", "count-word", "count-float", "count-bool", "count-negative", "threshold-negative",
         "days-negative", "device-no-id", "devices-not-list",
         "response-not-object", "bad-date", "bad-bool", "status-object", "nul-in-request-id", "escape-in-device-id"],
)  # fmt: skip
def test_wrong_types_are_parse_errors(body: Dict[str, Any], message: str) -> None:
    with pytest.raises(CallbackParseError, match=message):
        parse_rest_callback(json.dumps(body))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"[1, 2]", "is an array, not an object"),
        (b"<CallbackRequest/>", "this is XML, not JSON"),
        (b"{'a': 1}", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        # 100,000 lists, each a value: counted (before the decode) before their depth is seen.
        (b"[" * 100_000 + b"]" * 100_000, "more than 4,096 JSON values"),
        (b"[" * 1_000 + b"]" * 1_000, "nested deeper than 32 levels"),
        (b'{"requestId": "' + b"x" * (1024 * 1024) + b'"}', "over the 1,048,576-byte limit"),
    ],
    ids=["empty", "array", "xml", "single-quotes", "not-utf8", "deep", "deep-within-the-count", "oversized"],
)
def test_malformed_documents(data: bytes, message: str) -> None:
    with pytest.raises(CallbackParseError, match=message):
        parse_rest_callback(data)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_base(callbackCount=[10**5000]), "callbackCount: a list holding an integer too long to write is not an"),
        (_base(deviceResponse={"restoreResponse": {"restored": 10**5000}}), "an integer of 16,610 bits is not true"),
        (_base(faultResponse={"faultcode": "x", "detail": {"n": 10**5000}}), "faultResponse.detail: not a JSON value"),
        (_base(faultResponse={"faultcode": "x", "detail": b"raw"}), "faultResponse.detail: not a JSON value"),
    ],
    ids=["count-list", "restored-integer", "detail-integer", "detail-bytes"],
)
def test_a_mapping_holding_what_no_json_text_holds_is_a_parse_error(body: Dict[str, Any], message: str) -> None:
    # Each was a raw ValueError or TypeError (quoting or writing such a value back as JSON).
    with pytest.raises(CallbackParseError, match=message):
        parse_rest_callback(body)


@pytest.mark.parametrize("where", ["requestId", "status", "device id"])
def test_a_mapping_holding_an_integer_too_long_to_write_is_a_parse_error(where: str) -> None:
    # A decoded mapping is not bounded by the JSON decoder: str() of such an integer was a raw ValueError.
    huge = 10**5000
    body: Dict[str, Any] = {"requestId": huge} if where == "requestId" else _base(status=huge)
    if where == "device id":
        body = _base(deviceIds=[{"kind": "IMEI", "id": huge}])
    with pytest.raises(CallbackParseError, match="expected a string, got an integer of 16,610 bits"):
        parse_rest_callback(body)


def test_deep_mapping_input_is_refused_without_recursion() -> None:
    deep: Dict[str, Any] = {"requestId": "r"}
    node = deep
    for _ in range(10_000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(CallbackParseError, match="nested deeper"):
        parse_rest_callback(deep)


@pytest.mark.parametrize(
    "name",
    ["doc-rest-restore-callback.json", "doc-rest-suspend-callback.json", "doc-rest-nidd-created-callback.json",
     "doc-rest-nidd-failed-callback.json", "doc-rest-esim-profile-callback.json"],
)  # fmt: skip
def test_rendering_gives_back_the_documented_document(name: str) -> None:
    original = json.loads(_doc(name))
    rendered = rest_callback_dict(parse_rest_callback(original))
    # The rendering always carries username and password ("" when none), as the carrier's do.
    original.setdefault("username", "")
    original.setdefault("password", "")
    assert rendered == _upper_kinds(original)
    assert parse_rest_callback(render_rest_callback(parse_rest_callback(original))) == parse_rest_callback(original)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_base(status={"a": 1}), "status: expected a string, got an object"),
        (_base(status=[True]), "status: expected a string, got an array"),
        (_base(deviceIds={}), "deviceIds: expected an array, got an object"),
        (_base(deviceIds=[5]), r"deviceIds\[0\]: expected an object, got a number"),
        (_base(deviceIds=[None]), r"deviceIds\[0\]: expected an object, got null"),
        (_base(deviceResponse=[1]), "deviceResponse: expected an object, got an array"),
        (_base(faultResponse=True), "faultResponse: expected an object, got a boolean"),
    ],
    ids=["object", "array", "devices-object", "device-number", "device-null", "response-array",
         "fault-boolean"],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_named_in_json_words(body: Dict[str, Any], message: str) -> None:
    # The sender of a JSON callback knows no Python type: "got dict", "got list", "got int" said them.
    with pytest.raises(CallbackParseError, match=message) as info:
        parse_rest_callback(json.dumps(body))
    assert not any(f"got {name}" in str(info.value) for name in ("dict", "list", "int", "NoneType", "bool"))
