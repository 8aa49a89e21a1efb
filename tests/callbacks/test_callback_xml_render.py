"""Rendering callbacks as UWS SOAP documents: valid against our callback XSD, shaped like the
carrier's example, and read back by the parser to the same model."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DATA, parse_trusted

from uws_adapter import CallbackRequest, InputError, parse_callback, render_callback, render_rest_callback
from uws_adapter.model.callbacks import CallbackFault, NiddResult, ReportedDevice, SuspendResult
from uws_adapter.soap.schemas import CALLBACK_XSD, lxml_schema, xmlschema_schema

DOC = (DATA / "doc-restore-callback.xml").read_bytes()


def test_rendering_is_valid_and_shaped_like_the_documented_example() -> None:
    cb = parse_callback(DOC, repair=True)
    rendered = render_callback(cb)
    lxml_schema(CALLBACK_XSD).assertValid(parse_trusted(rendered))
    xmlschema_schema(CALLBACK_XSD).validate(rendered.decode())
    ours = [e.tag for e in parse_trusted(rendered).iter()]
    documented = [
        e.tag for e in parse_trusted(DOC.replace(b"</MaxCallbackThreshold/>", b"</MaxCallbackThreshold>")).iter()
    ]
    assert ours == documented
    assert parse_callback(rendered) == cb


def test_suspend_rendering_round_trips() -> None:
    cb = parse_callback((DATA / "suspend-callback-one-data.xml").read_bytes())
    rendered = render_callback(cb)
    lxml_schema(CALLBACK_XSD).assertValid(parse_trusted(rendered))
    again = parse_callback(rendered)
    assert again.unmodeled == ()  # only names of unmodeled sections are kept, so they are not rendered
    assert again == CallbackRequest(**{**_fields(cb), "unmodeled": ()})
    assert b"<ExpectedResumeDate>03/15/2017</ExpectedResumeDate>" in rendered


def _fields(cb: CallbackRequest) -> dict:  # type: ignore[type-arg]
    return {name: getattr(cb, name) for name in cb.__dataclass_fields__ if name != "succeeded"}


def test_kinds_are_written_as_the_carrier_writes_them() -> None:
    parsed = parse_callback(DOC, repair=True)
    assert [d.kind for d in parsed.devices] == ["IMEI", "ICCID"]  # the model keeps its normalized kind
    rendered = render_callback(parsed)
    assert b"<Kind>imei</Kind>" in rendered
    assert b"<Kind>iccid</Kind>" in rendered


@pytest.mark.parametrize(
    ("callback", "field"),
    [(None, "callback"), ({"request_id": "r"}, "callback"), (CallbackRequest(request_id="r", devices=[1]), "callback.devices"),  # type: ignore[arg-type]
     (CallbackRequest(request_id="r", devices=5), "callback.devices"),  # type: ignore[arg-type]
     # A field of another type than declared, as a program may build one by hand.
     (CallbackRequest(request_id=5), "callback.request_id"),  # type: ignore[arg-type]
     (CallbackRequest(request_id="r", devices=(ReportedDevice(None, "1"),)), "callback.devices.kind"),  # type: ignore[arg-type]
     (CallbackRequest(request_id="r", callback_count=10**5000), "callback.callback_count"),
     (CallbackRequest(request_id="r", callback_count=True), "callback.callback_count"),
     # What the parsers refuse (every integer of a callback is a count) is not sent either.
     (CallbackRequest(request_id="r", callback_count=-1), "callback.callback_count"),
     (CallbackRequest(request_id="r", suspend=SuspendResult(max_suspend_days_allowed=-(10**5000))),
      "callback.suspend.max_suspend_days_allowed"),
     (CallbackRequest(request_id="r", suspend=SuspendResult(expected_resume_date="2020-01-01")),  # type: ignore[arg-type]
      "callback.suspend.expected_resume_date"),
     (CallbackRequest(request_id="r", unmodeled=("a", 1)), "callback.unmodeled"),  # type: ignore[arg-type]
     (CallbackRequest(request_id="r", fault=CallbackFault(code=3)), "callback.fault.code"),  # type: ignore[arg-type]
     (CallbackRequest(request_id="r", nidd=NiddResult(devices=(ReportedDevice("IMEI", 5),))),  # type: ignore[arg-type]
      "callback.nidd.devices.identifier")],
    ids=["none", "a-dict", "a-device-that-is-not-one", "devices-not-a-collection", "request-id-a-number",
         "kind-none", "count-past-64-bits", "count-a-bool", "count-negative", "days-far-below-0", "date-a-string", "unmodeled-a-number",
         "fault-code-a-number", "nidd-identifier-a-number"],
)  # fmt: skip
@pytest.mark.parametrize("render", [render_callback, render_rest_callback], ids=["uws", "rest"])
def test_what_is_not_a_callback_is_refused_by_name(callback: object, field: str, render: Any) -> None:
    # Both renderers raised a raw AttributeError or TypeError.
    with pytest.raises(InputError) as info:
        render(callback)
    assert info.value.field == field


def test_a_lone_surrogate_is_refused_by_the_rest_renderer_as_the_uws_one_refuses_it() -> None:
    # The REST renderer's UTF-8 encoding raised a raw UnicodeEncodeError.
    callback = CallbackRequest(request_id="r", comment="\ud800")
    for render in (render_callback, render_rest_callback):
        with pytest.raises(InputError):
            render(callback)
