"""The exception tree: input errors carry the carrier's fault code from where they are raised."""

from __future__ import annotations

from typing import Callable

import pytest

from uws_adapter import CustomField, Device, DeviceIdentifier, DeviceList, InputError
from uws_adapter.errors import REQUEST_UNDEFINED

_MANY = tuple(Device.of("IMEI", f"{350000000000000 + n}") for n in range(10_001))


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: DeviceIdentifier("IMEIX", "350000000000000"), "INPUT_INVALID.Device.Kind.Invalid"),
        (lambda: DeviceIdentifier(7, "350000000000000"), "INPUT_INVALID.Device.Kind.Invalid"),
        (lambda: DeviceIdentifier("IMEI", "12X"), "INPUT_INVALID.Device.Identifier.Invalid"),
        (lambda: DeviceIdentifier("IMEI", 350000000000000), "INPUT_INVALID.Device.Identifier.Invalid"),
        (lambda: DeviceIdentifier.parse("IMEI"), "INPUT_INVALID.Device.Identifier.Invalid"),
        (lambda: CustomField("CustomField9", "x"), "INPUT_INVALID.CustomField.InvalidName"),
        (lambda: CustomField("", "x"), "INPUT_INVALID.CustomField.InvalidName"),
        (lambda: CustomField("CustomField1", "x" * 51), "INPUT_INVALID.CustomField.TooLong"),
        (lambda: CustomField("CustomField1", "a<b"), "INPUT_INVALID.Request.InvalidCharacter"),
        (lambda: CustomField("CustomField1", " "), "INPUT_INVALID.Request.InvalidCharacter"),
        (lambda: CustomField.parse("CustomField1"), "INPUT_INVALID.Request.InvalidCharacter"),
        (lambda: DeviceList(_MANY), "INPUT_INVALID.MaxRequestsExceeded"),
        (lambda: DeviceList(()), REQUEST_UNDEFINED),
    ],
    ids=["unknown-kind", "kind-not-text", "short-imei", "identifier-not-text", "no-colon", "unknown-field",
         "empty-field-name", "value-too-long", "forbidden-character", "empty-value", "no-equals",
         "over-10000-devices", "empty-list"],
)  # fmt: skip
def test_input_errors_carry_their_wire_code(make: Callable[[], object], code: str) -> None:
    with pytest.raises(InputError) as raised:
        make()
    assert raised.value.code == code


def test_a_located_error_keeps_its_code() -> None:
    with pytest.raises(InputError) as raised:
        DeviceIdentifier("IMEI", "12X")
    located = raised.value.within("devices[3].")
    assert (located.field, located.code) == ("devices[3].identifier", "INPUT_INVALID.Device.Identifier.Invalid")
