"""The callback model, its JSON form, and properties over both parsers and renderers."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Optional

import jsonschema
import pytest
from conftest import DATA, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uws_adapter import (
    CallbackFault,
    CallbackParseError,
    CallbackRequest,
    NiddResult,
    ProfileResult,
    ReportedDevice,
    RestoreResult,
    SuspendResult,
    callback_json_schema,
    parse_callback,
    parse_rest_callback,
    render_callback,
    render_rest_callback,
)
from uws_adapter.model.callbacks import ACTIONS, REDACTED, SUCCESS_STATUSES

# Text as the parsers give it back: stripped, non-empty, and carried by XML 1.0.
_chars = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
text = st.text(_chars, min_size=1, max_size=20).map(str.strip).filter(bool)
maybe_text = st.none() | text
maybe_int = st.none() | st.integers(0, 2**40)  # counts: 0 or more (negatives are refused)
kinds = st.sampled_from(["ESN", "MEID", "IMEI", "ICCID", "MDN", "MSISDN", "MIN", "EID", "IMSI"]) | text.map(
    str.upper
).filter(lambda k: k == k.strip().upper())
devices = st.lists(st.builds(ReportedDevice, kinds, text), max_size=4).map(tuple)
statuses = st.none() | st.sampled_from(["Success", "Failed", "SUCCESS", "ConfigCreated", "ConfigFailed"]) | text
suspends = st.builds(SuspendResult, st.none() | st.dates(), maybe_int, maybe_int, maybe_int)


def _succeeded(status: Optional[str], fault: Optional[CallbackFault]) -> bool:
    return status is not None and status.lower() in SUCCESS_STATUSES and fault is None


@st.composite
def callbacks(draw: st.DrawFn, fmt: str) -> CallbackRequest:
    """Callbacks that ``fmt`` ("soap" or "rest") can carry in full."""
    status = draw(statuses)
    if fmt == "soap":
        fault = draw(st.none() | st.builds(CallbackFault, maybe_text, maybe_text, maybe_text, maybe_text))
    else:  # REST leaves a fault with no field out altogether
        fault = draw(
            st.none()
            | st.builds(CallbackFault, maybe_text, maybe_text, maybe_text, maybe_text).filter(
                lambda f: any(v is not None for v in (f.code, f.string, f.actor, f.detail))
            )
        )
    services = ["CarrierService", "NiddService", "DeviceProfileService", None]
    service = draw(st.sampled_from(services))
    action = suspend = restore = nidd = profile = None
    if service == "CarrierService":
        action = draw(st.sampled_from(ACTIONS) if fmt == "rest" else st.none() | st.sampled_from(ACTIONS))
        if action == "Suspend":
            suspend = draw(suspends)
        if action == "Restore":
            restored = _succeeded(status, fault) if fmt == "soap" else draw(st.none() | st.booleans())
            restore = RestoreResult(restored)
    elif service == "NiddService":
        nidd = draw(st.builds(NiddResult, maybe_text, maybe_text, devices))
    elif service == "DeviceProfileService":
        profile = draw(st.builds(ProfileResult, devices, maybe_text, maybe_text, maybe_text))
    return CallbackRequest(
        request_id=draw(text),
        devices=draw(devices),
        username=draw(maybe_text),
        password=draw(maybe_text),
        service=service,
        action=action,
        status=status,
        callback_count=draw(maybe_int),
        max_callback_threshold=draw(maybe_int),
        comment=draw(maybe_text),
        suspend=suspend,
        restore=restore,
        fault=fault,
        nidd=nidd,
        profile=profile,
    )


@settings(max_examples=examples(400))
@given(callbacks("soap"))
def test_soap_round_trip(callback: CallbackRequest) -> None:
    assert parse_callback(render_callback(callback)) == callback


@settings(max_examples=examples(400))
@given(callbacks("rest"))
def test_rest_round_trip(callback: CallbackRequest) -> None:
    assert parse_rest_callback(render_rest_callback(callback)) == callback


_VALIDATOR = jsonschema.Draft202012Validator(callback_json_schema())


@settings(max_examples=examples(200))
@given(st.one_of(callbacks("soap"), callbacks("rest")))
def test_json_form_matches_its_schema_and_round_trips(callback: CallbackRequest) -> None:
    form = callback.to_dict(reveal_password=True)
    _VALIDATOR.validate(json.loads(json.dumps(form)))
    assert CallbackRequest.from_dict(form) == callback


def test_json_form_redacts_the_password() -> None:
    callback = parse_rest_callback((DATA / "doc-rest-restore-callback.json").read_bytes())
    form = callback.to_dict()
    assert form["password"] == REDACTED
    assert form["succeeded"] is True
    assert "password" not in repr(callback).replace("password=", "")
    _VALIDATOR.validate(form)


def test_json_form_of_the_documented_suspend_callback() -> None:
    form = parse_rest_callback((DATA / "doc-rest-suspend-callback.json").read_bytes()).to_dict()
    assert form["suspend"] == {
        "expected_resume_date": "2018-05-25",
        "max_suspend_days_allowed": 180,
        "num_days_suspended_last_12_months": 93,
        "num_days_suspend_allowed_current_12_months": 87,
    }
    assert (form["service"], form["action"], form["password"]) == ("CarrierService", "Suspend", None)


def test_from_dict_refuses_other_shapes() -> None:
    with pytest.raises(CallbackParseError, match="not the JSON form"):
        CallbackRequest.from_dict({"requestId": "r"})


def test_succeeded_is_derived_not_given() -> None:
    assert CallbackRequest("r", status="Success").succeeded
    assert not CallbackRequest("r", status="Success", fault=CallbackFault(code="X")).succeeded
    assert not CallbackRequest("r", status="Failed").succeeded
    with pytest.raises(TypeError):
        CallbackRequest("r", succeeded=True)  # type: ignore[call-arg]


def test_soap_and_rest_give_the_same_model() -> None:
    soap = parse_callback((DATA / "doc-restore-callback.xml").read_bytes(), repair=True)
    rest = parse_rest_callback(render_rest_callback(soap))
    assert rest == soap
    assert parse_callback(render_callback(rest)) == soap


# Fuzz: whatever the bytes, the parsers return a callback or raise CallbackParseError, nothing else.

_SEEDS = [
    (DATA / "doc-restore-callback.xml").read_bytes(),
    (DATA / "suspend-callback-one-data.xml").read_bytes(),
    (DATA / "doc-rest-suspend-callback.json").read_bytes(),
    (DATA / "doc-rest-esim-profile-callback.json").read_bytes(),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(
            st.binary(min_size=1, max_size=6) | st.sampled_from([b"<", b">", b"&", b'"', b"{", b"}", b"/", b"\x00"])
        )
        if op == "insert":
            data[position:position] = chunk
        elif op == "delete":
            del data[position : position + len(chunk)]
        else:
            data[position : position + len(chunk)] = chunk
    return bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
json_callbacks = st.fixed_dictionaries(
    {"requestId": json_values},
    optional={
        key: json_values
        for key in ("deviceIds", "deviceResponse", "niddResponse", "faultResponse", "status", "callbackCount",
                    "maxCallbackThreshold", "username", "password", "comment")
    },
)  # fmt: skip
any_input = st.one_of(mutated(), st.binary(max_size=200), st.text(max_size=200), json_callbacks)


def _only_parse_errors(parse: Any, data: Any) -> None:
    try:
        result = parse(data)
    except CallbackParseError:
        return
    assert isinstance(result, CallbackRequest)


@settings(max_examples=examples(1000), suppress_health_check=[HealthCheck.too_slow])
@given(any_input)
def test_fuzz_both_parsers_raise_only_parse_errors(data: Any) -> None:
    """Each input goes to every parser: generating it costs far more than parsing it."""
    _only_parse_errors(parse_rest_callback, data)
    if isinstance(data, dict):
        data = json.dumps(data)
    _only_parse_errors(parse_callback, data)
    _only_parse_errors(lambda d: parse_callback(d, repair=True), data)


def _generic_form(value: object) -> object:
    """The JSON form by a generic walk over the dataclasses: what to_dict must equal."""
    if dataclasses.is_dataclass(value):
        return {f.name: _generic_form(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_generic_form(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def test_to_dict_writes_every_field_of_every_part() -> None:
    device = ReportedDevice("IMEI", "990003420535573")
    full = CallbackRequest(
        "r-1", (device,), "user", "pw", "CarrierService", "Suspend", "Failed", 2, 4, "comment",
        SuspendResult(datetime.date(2026, 5, 25), 180, 93, 87), RestoreResult(False),
        CallbackFault("c", "s", "a", "d"), NiddResult("acct", "why", (device,)),
        ProfileResult((device,), "ACTIVE", "ENABLE", "LOCAL"), ("Usage",),
    )  # fmt: skip
    assert full.to_dict(reveal_password=True) == _generic_form(full)
    empty = CallbackRequest("r-2")
    assert empty.to_dict() == _generic_form(empty)
