"""model.frozen.made: a frozen dataclass made without its __init__ is the one __init__ makes."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Dict

import pytest
from conftest import DATA

from uws_adapter import (
    CallbackFault,
    CallbackRequest,
    ReportedDevice,
    RestoreResult,
    SuspendResult,
    render_callback,
)
from uws_adapter.callbacks.uws_xml import callback_element, read_callback
from uws_adapter.model.frozen import made
from uws_adapter.receiver.app import _NOT_STORED, _XML_ACK, Intake
from uws_adapter.store.interfaces import CallbackWrite


def _fields(instance: Any) -> Dict[str, Any]:
    return {field.name: getattr(instance, field.name) for field in dataclasses.fields(instance)}


@pytest.mark.parametrize(
    "instance",
    [
        ReportedDevice("IMEI", "350000000000001"),
        SuspendResult(max_suspend_days_allowed=90),
        RestoreResult(True),
        CallbackRequest("r-1", (ReportedDevice("IMEI", "1"),), status="Success", action="Suspend", callback_count=2),
        CallbackWrite(CallbackRequest("r-2"), ("relay",), document=b"<doc/>", media_type="text/xml"),
        Intake(CallbackWrite(CallbackRequest("r-3")), _XML_ACK, _NOT_STORED, is_callback=True),
    ],
    ids=lambda instance: type(instance).__name__,
)
def test_made_equals_init_hashes_alike_and_stays_frozen(instance: Any) -> None:
    twin = made(type(instance), _fields(instance))
    assert type(twin) is type(instance)
    assert twin == instance
    assert hash(twin) == hash(instance)
    assert repr(twin) == repr(instance)
    name = dataclasses.fields(instance)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(twin, name, None)


def _documents() -> Dict[str, bytes]:
    suspend = CallbackRequest(
        "r-4", (ReportedDevice("IMEI", "350000000000002"),), service="CarrierService", action="Suspend",
        status="Success", callback_count=1, max_callback_threshold=4,
        suspend=SuspendResult(datetime.date(2026, 12, 31), 90, 10, 80),
    )  # fmt: skip
    failed = CallbackRequest(
        "r-5", (ReportedDevice("ICCID", "8901"),), service="CarrierService", action="Restore", status="Failed",
        fault=CallbackFault("REQUEST_FAILED.DeviceNotFound", "not found"),
    )  # fmt: skip
    return {
        "doc-restore-callback.xml": (DATA / "doc-restore-callback.xml").read_bytes(),
        "suspend-callback-one-data.xml": (DATA / "suspend-callback-one-data.xml").read_bytes(),
        "suspend with values": render_callback(suspend),
        "restore with a fault": render_callback(failed),
    }


@pytest.mark.parametrize("name", sorted(_documents()))
def test_the_reader_makes_what_init_makes(name: str) -> None:
    # Every field of each class the reader makes without __init__ (succeeded included), against the
    # same values given to __init__.
    document = _documents()[name]
    callback = read_callback(callback_element(document, repair=True)[0])
    values = _fields(callback)
    del values["succeeded"]  # derived by __post_init__
    again = CallbackRequest(**values)
    assert callback == again
    assert hash(callback) == hash(again)
    assert callback.succeeded is again.succeeded
    assert callback.devices == tuple(ReportedDevice(d.kind, d.identifier) for d in again.devices)
    if callback.suspend is not None:
        assert callback.suspend == SuspendResult(**_fields(callback.suspend))
    if callback.restore is not None:
        assert callback.restore == RestoreResult(**_fields(callback.restore))
