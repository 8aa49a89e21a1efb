from __future__ import annotations

import datetime as dt

import pytest
from conftest import DATA

from uws_adapter import (
    CallbackFault,
    CallbackParseError,
    CallbackRequest,
    ReportedDevice,
    RestoreResult,
    SuspendResult,
    parse_callback,
)

DOC = (DATA / "doc-restore-callback.xml").read_bytes()
NS = 'xmlns="http://nphase.com/unifiedwebservice/v2"'


def _bare(data: str, head: str = "<RequestId>r1</RequestId>") -> str:
    return f"<CallbackRequest {NS} xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'>{head}{data}</CallbackRequest>"


def test_documented_example_is_an_error_naming_the_line_by_default() -> None:
    with pytest.raises(CallbackParseError, match=r"at line 1, column \d+: .*pass repair=True") as info:
        parse_callback(DOC)
    assert info.value.line == 1
    assert isinstance(info.value, ValueError)


def test_documented_example_parses_in_repair_mode() -> None:
    cb = parse_callback(DOC, repair=True)
    assert cb == CallbackRequest(
        request_id="2c90bd28-ece4-42ef-9f02-7e3bd4fbff33",
        devices=(ReportedDevice("IMEI", "990003420535573"), ReportedDevice("ICCID", "89148000000800784259")),
        username=None,
        password=None,
        service="CarrierService",
        action="Restore",
        status="Success",
        callback_count=1,
        max_callback_threshold=4,
        restore=RestoreResult(True),
    )
    assert cb.succeeded


def test_repair_mends_only_slashed_end_tags() -> None:
    broken = _bare("<Data><Status>Success</Status></Data>").replace("</Data>", "</Data")
    with pytest.raises(CallbackParseError, match="not well-formed"):
        parse_callback(broken, repair=True)


def test_older_sender_with_one_data_level_prefixes_and_latin1() -> None:
    cb = parse_callback((DATA / "suspend-callback-one-data.xml").read_bytes())
    assert (cb.username, cb.password, cb.action, cb.status, cb.succeeded) == (
        "listener", "s3cret", "Suspend", "Success", True
    )  # fmt: skip
    assert cb.devices == (ReportedDevice("MEID", "A100003685A2D0"),)
    assert cb.suspend == SuspendResult(dt.date(2017, 3, 15), 180, 93, 87)
    assert cb.comment == "Device Suspended - Applicable Charges Will Continue (é)"
    assert (cb.callback_count, cb.max_callback_threshold) == (2, 4)
    assert cb.unmodeled == ("FutureSection",)
    assert "s3cret" not in repr(cb)


@pytest.mark.parametrize(
    "prefix", [b"", b"\xef\xbb\xbf", b'<?xml version="1.0" encoding="utf-8"?>\n'], ids=["plain", "bom", "declaration"]
)
def test_utf8_with_or_without_bom(prefix: bytes) -> None:
    assert parse_callback(prefix + _bare("<Data><Comment>Grüße</Comment></Data>").encode()).comment == "Grüße"


def test_utf16_named_by_bom() -> None:
    assert parse_callback(_bare("").encode("utf-16")).request_id == "r1"


def test_str_input_ignores_the_declared_encoding() -> None:
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>' + _bare("<Data><Comment>é</Comment></Data>")
    assert parse_callback(text).comment == "é"


def test_fault_with_the_documented_misspelling() -> None:
    cb = parse_callback(
        _bare(
            "<Data><Fault><faultcode>REQUEST_FAILED.DeviceNotFound</faultcode><faultstring>no such device</faultstring>"
            "<faultfactor>urn:x</faultfactor><detail><a>d1</a></detail></Fault><Status>Failed</Status></Data>"
        )
    )
    assert cb.fault == CallbackFault("REQUEST_FAILED.DeviceNotFound", "no such device", "urn:x", "d1")
    assert not cb.succeeded


def test_unknown_elements_anywhere_are_named_or_ignored() -> None:
    cb = parse_callback(
        _bare(
            "<Data><CarrierService><ChangeDeviceState><Restore/><Pause>x</Pause></ChangeDeviceState>"
            "<ChangeDeviceServicePlan><Plan>p</Plan></ChangeDeviceServicePlan><Nothing/></CarrierService>"
            "<Summary xsi:nil='true'/><Extra xmlns='urn:other'>ignored: foreign namespace</Extra></Data><Trailer>t</Trailer>"
        )
    )
    assert cb.action == "Restore"
    assert cb.unmodeled == (
        "CarrierService/ChangeDeviceState/Pause",
        "CarrierService/ChangeDeviceServicePlan",
        "Trailer",
    )


@pytest.mark.parametrize(
    ("document", "message", "line"),
    [
        (_bare("", head=""), "has no RequestId", 1),
        (_bare("<RequestId>r2</RequestId>"), "RequestId \\(line 1\\) appears twice", 1),
        (_bare("<Data>\n<CallbackCount>abc</CallbackCount></Data>"), "CallbackCount \\(line 2\\): 'abc' is not an integer", 2),
        (_bare("<Data><MaxCallbackThreshold>4.0</MaxCallbackThreshold></Data>"), "'4.0' is not an integer", 1),
        (_bare("<Data>\n<CallbackCount>-1</CallbackCount></Data>"),
         "CallbackCount \\(line 2\\): -1 is negative: a count is 0 or more", 2),
        (_bare("<Data><CarrierService><ChangeDeviceState><Suspend><MaxSuspendDaysAllowed>-90</MaxSuspendDaysAllowed>"
               "</Suspend></ChangeDeviceState></CarrierService></Data>"), "MaxSuspendDaysAllowed \\(line 1\\): -90 is negative", 1),
        (_bare("<Device><Kind>IMEI</Kind></Device>"), "Device \\(line 1\\) needs a Kind and an Identifier", 1),
        (_bare("<Data><CarrierService><ChangeDeviceState><Restore/><Suspend/></ChangeDeviceState></CarrierService></Data>"),
         "Suspend \\(line 1\\) beside Restore", 1),
        (_bare("<Data><CarrierService><ChangeDeviceState><Suspend><ExpectedResumeDate>May 25</ExpectedResumeDate>"
               "</Suspend></ChangeDeviceState></CarrierService></Data>"), "ExpectedResumeDate \\(line 1\\): 'May 25' is not a date", 1),
        (f"<Other {NS}/>", "Other \\(line 1\\): the document is not a CallbackRequest", 1),
        ("<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body/></s:Envelope>", "Body \\(line 1\\) is empty", 1),
        ("<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><s:Fault><faultcode>x</faultcode>"
         "</s:Fault></s:Body></s:Envelope>", "a SOAP Fault", 1),
    ],
    ids=["no-request-id", "two-request-ids", "count-not-integer", "threshold-decimal", "count-negative",
         "days-negative", "device-without-identifier",
         "two-actions", "bad-date", "not-a-callback", "empty-body", "soap-fault"],
)  # fmt: skip
def test_strict_where_it_matters(document: str, message: str, line: int) -> None:
    with pytest.raises(CallbackParseError, match=message) as info:
        parse_callback(document)
    assert info.value.line == line


def test_repair_keeps_str_input_as_text_whatever_its_declaration_says() -> None:
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>' + _bare(
        "<Data><Comment>é</Comment><CallbackCount>1</CallbackCount/></Data>"
    )
    with pytest.raises(CallbackParseError, match="repair=True"):
        parse_callback(text)
    cb = parse_callback(text, repair=True)
    assert (cb.comment, cb.callback_count) == ("é", 1)


@pytest.mark.parametrize("data", [None, 0, memoryview(b"<CallbackRequest"), "<a>\udcff</a>"])
def test_what_is_not_a_document_is_a_parse_error(data: object) -> None:
    # None and a memoryview ended in an AttributeError (the repair's search), a lone surrogate in
    # text in a UnicodeEncodeError.
    with pytest.raises(CallbackParseError):
        parse_callback(data)  # type: ignore[arg-type]
