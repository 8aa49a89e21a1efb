from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from uws_adapter import Device, DeviceIdentifier, InputError, read_devices_csv
from uws_adapter.model.devices import KINDS

DATA = Path(__file__).parents[1] / "data"

# The carrier's documented forms are never refused: ESN decimal, ICCID up to 20 digits, IMEI up to
# 16 digits, MEID hexadecimal [doc]; the other kinds have no documented form and are lenient.
VALID = {
    "ESN": ["09611822299", "12345678"],
    "MEID": ["A100003685A2D0", "270113177609606065"],
    "IMEI": ["990003420535573", "9900034205355731", "99000342053557"],
    "ICCID": ["8914800000080078425", "89148000000800784259", "891480000008007842"],
    "MDN": ["5551234567", "555123456", "555-123-4567"],
    "MSISDN": ["15551234567", "+15551234567"],
    "MIN": ["5551234567"],
    "EID": ["8" * 32, "8" * 31],
    "IMSI": ["311480123456789", "3114801234567890"],
}

INVALID = [
    ("IMEI", "99000342053557312"),  # 17 digits: over the documented 16
    ("IMEI", "99000342053557X"),
    ("ICCID", "891480000008007842591"),  # 21 digits: over the documented 20
    ("ICCID", "8914800000080078425F"),
    ("MEID", "A100003685A2DZ"),  # not hexadecimal
    ("ESN", "A1B2C3D4"),  # not decimal
    ("MDN", "555 123 4567"),  # spaces: no identifier has them
    ("EID", "8" * 65),  # over the sanity cap
    ("MSISDN", "1555*1234"),
]


def test_every_kind_has_a_valid_example() -> None:
    assert set(VALID) == set(KINDS)


@pytest.mark.parametrize(
    ("kind", "identifier"), [(k, i) for k, ids in VALID.items() for i in ids], ids=lambda v: str(v)[:12]
)
def test_valid_identifiers_are_accepted(kind: str, identifier: str) -> None:
    ident = DeviceIdentifier(kind.lower(), f" {identifier} ")
    assert (ident.kind, ident.identifier) == (kind, identifier)


@pytest.mark.parametrize(("kind", "identifier"), INVALID, ids=[f"{k}-{i}" for k, i in INVALID])
def test_identifiers_that_cannot_be_of_their_kind_are_refused(kind: str, identifier: str) -> None:
    with pytest.raises(InputError, match=rf"identifier: '{re.escape(identifier)}' is not a valid {kind}") as info:
        DeviceIdentifier(kind, identifier)
    assert info.value.field == "identifier"
    assert "digits" in info.value.fix
    assert info.value.code == "INPUT_INVALID.Device.Identifier.Invalid"


@pytest.mark.parametrize("spelling", ["imei", "Imei", "IMEI", " iMeI "])
def test_kind_matching_ignores_case_and_writes_upper_case(spelling: str) -> None:
    assert DeviceIdentifier(spelling, "990003420535573").kind == "IMEI"


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"kind: unknown identifier kind 'IMEX'; use one of ESN, MEID, IMEI"):
        DeviceIdentifier("IMEX", "990003420535573")


def test_identifier_given_as_a_number_is_refused() -> None:
    with pytest.raises(InputError, match="leading zeros"):
        DeviceIdentifier("ESN", 9611822299)  # type: ignore[arg-type]


def test_device_parse_joins_identifiers_with_plus() -> None:
    device = Device.parse("IMEI:990003420535573+iccid:89148000000800784259")
    assert [str(i) for i in device.identifiers] == ["IMEI:990003420535573", "ICCID:89148000000800784259"]
    assert str(device) == "IMEI:990003420535573+ICCID:89148000000800784259"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("990003420535573", "is not KIND:IDENTIFIER"),
        ("IMEI:", "is not KIND:IDENTIFIER"),
        (" :990003420535573", "identifier: ' :990003420535573' is not KIND:IDENTIFIER; write e.g. IMEI:99000"),
        ("IMEI:990003420535573+", "part 2"),
        ("IMEI:990003420535573+IMEI:9900034205355731", "a second IMEI for one device"),
    ],
    ids=["no-kind", "no-identifier", "blank-kind", "empty-part", "kind-twice"],
)
def test_device_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Device.parse(text)


def test_device_needs_an_identifier() -> None:
    with pytest.raises(InputError, match="at least one identifier"):
        Device(())


def test_devices_are_frozen_and_hashable() -> None:
    device = Device.of("MDN", "5551234567")
    assert device == Device.parse("mdn:5551234567")
    assert len({device, Device.parse("MDN:5551234567")}) == 1
    with pytest.raises(AttributeError):
        device.identifiers = ()  # type: ignore[misc]


def test_csv_rows_become_devices() -> None:
    devices = read_devices_csv(DATA / "devices.csv")
    assert [str(d) for d in devices] == [
        "IMEI:990003420535573+ICCID:89148000000800784259",
        "ESN:09611822299",
        "MEID:A100003685A2D0",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("IMEI,990003420535573\nIMEI\n", r"devices file line 2: 1 cells"),
        ("IMEI,990003420535573\nIMEI,12X\n", r"devices file line 2: identifier: '12X' is not a valid IMEI"),
        ("XYZ,1\n", r"devices file line 1: kind: unknown"),
    ],
    ids=["odd-cells", "bad-identifier", "bad-kind"],
)
def test_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_devices_csv(io.StringIO(text))


def test_csv_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_devices_csv(tmp_path / "absent.csv")


def test_identifiers_must_be_identifier_objects() -> None:
    with pytest.raises(InputError, match=r"identifiers\[1\]: expected a DeviceIdentifier, got str"):
        Device((DeviceIdentifier("MDN", "5551234567"), "IMEI:990003420535573"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="identifiers: expected DeviceIdentifier objects, got 'IMEI:1'"):
        Device("IMEI:1")  # type: ignore[arg-type]
