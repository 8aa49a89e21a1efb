from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from uws_adapter import CustomField, Device, DeviceIdentifier, DeviceList, InputError, read_devices_csv
from uws_adapter.errors import Code, shown
from uws_adapter.model.devices import KINDS, MAX_CSV_LINE

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
    # Quoted as every error quotes a value (errors.shown): a long one by its first characters.
    with pytest.raises(InputError, match=rf"identifier: {re.escape(shown(identifier))} is not a valid {kind}") as info:
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("IMEI," + "9" * 3_000_000, r"devices\.csv line 1: is longer than 65,536 characters"),  # /dev/zero: no end
        ('IMEI,"' + ("9" * 60_000 + "\n") * 3, r"devices\.csv line 3: is not CSV \(field larger than field limit"),
    ],
    ids=["a-line-without-end", "a-quoted-field-past-csvs-limit"],
)
def test_csv_a_file_cannot_make_a_line_or_a_field_unbounded(tmp_path: Path, text: str, message: str) -> None:
    # The first was read whole into memory, then both raised csv.Error from outside our tree.
    path = tmp_path / "devices.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_devices_csv(path)


def test_csv_an_open_stream_is_read_a_bounded_line_at_a_time() -> None:
    # A stream (stdin, a pipe) was iterated by line with no bound: a line without end read whole.
    class Endless(io.TextIOBase):
        def readable(self) -> bool:
            return True

        def readline(self, size: int = -1) -> str:
            assert 0 < size <= MAX_CSV_LINE + 2, "a line read without a bound"
            return "9" * size

    with pytest.raises(InputError, match=r"devices file line 1: is longer than 65,536 characters"):
        read_devices_csv(Endless())
    assert [str(d) for d in read_devices_csv(io.StringIO("IMEI,990003420535573\n"))] == ["IMEI:990003420535573"]
    assert [str(d) for d in read_devices_csv(["IMEI,990003420535573"])] == ["IMEI:990003420535573"]  # type: ignore[arg-type]


@pytest.mark.parametrize("end", ["", "\n", "\r\n", "\r"], ids=["last", "lf", "crlf", "cr"])
def test_csv_a_line_of_the_longest_length_is_read_whatever_its_end(tmp_path: Path, end: str) -> None:
    # The line's end was counted: a line of 65,536 characters was read only as the file's last.
    longest = "#" + "x" * (MAX_CSV_LINE - 1)  # a comment row: skipped once read
    text = f"{longest}{end}IMEI,990003420535573{end}" if end else f"IMEI,990003420535573\n{longest}"
    path = tmp_path / "devices.csv"
    path.write_bytes(text.encode())
    assert [str(device) for device in read_devices_csv(path)] == ["IMEI:990003420535573"]
    path.write_bytes(text.replace(longest, longest + "x").encode())
    with pytest.raises(InputError, match=r"devices\.csv line \d: is longer than 65,536 characters"):
        read_devices_csv(path)


def test_csv_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_devices_csv(tmp_path / "absent.csv")


def test_identifiers_must_be_identifier_objects() -> None:
    with pytest.raises(InputError, match=r"identifiers\[1\]: expected a DeviceIdentifier, got str"):
        Device((DeviceIdentifier("MDN", "5551234567"), "IMEI:990003420535573"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="identifiers: expected DeviceIdentifier objects, got 'IMEI:1'"):
        Device("IMEI:1")  # type: ignore[arg-type]


@pytest.mark.parametrize("source", [None, 0, True, b"IMEI,990003420535573\n", "a\x00b.csv"])
def test_csv_a_source_that_is_neither_a_path_nor_text_is_refused_by_name(source: object) -> None:
    with pytest.raises(InputError, match="devices file"):
        read_devices_csv(source)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [None, 0, b"IMEI:1", ["IMEI", "1"]])
def test_parse_refuses_what_is_not_text_by_name(text: object) -> None:
    with pytest.raises(InputError, match="device: expected a string"):
        Device.parse(text)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="custom field: expected a string"):
        CustomField.parse(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("device", lambda: Device.parse(990003420535573)),  # type: ignore[arg-type]
        ("custom field", lambda: CustomField.parse(2)),  # type: ignore[arg-type]
        ("kind", lambda: DeviceIdentifier(1, "990003420535573")),  # type: ignore[arg-type]
        ("identifier", lambda: DeviceIdentifier("IMEI", 990003420535573)),  # type: ignore[arg-type]
        ("account", lambda: DeviceList([Device.of("IMEI", "1")], account=123456)),  # type: ignore[arg-type]
    ],
)
def test_a_value_that_is_not_a_string_is_refused_in_one_wording(field: str, make: Any) -> None:
    # One rule (model/text.py a_string): the field, the type and the value given, wherever it is.
    with pytest.raises(InputError, match=rf"^{field}: expected a string, got a number \(\d+\); "):
        make()


@pytest.mark.parametrize(
    "build",
    [
        lambda text: DeviceIdentifier.parse(text),
        lambda text: DeviceIdentifier("IMEI", text),
        lambda text: DeviceIdentifier(text, "1"),
        lambda text: CustomField.parse(text),
    ],
    ids=["parse", "identifier", "kind", "custom-field-parse"],
)
def test_a_refusal_quotes_a_long_value_by_its_start(build: Any) -> None:
    with pytest.raises(InputError) as info:
        build("9" * 100_000)
    assert len(str(info.value)) < 300


def test_device_key_of_one_identifier_is_that_of_any_iterable_of_it() -> None:
    # One identifier in a tuple (every single-device callback) takes a shorter path: the same key.
    from uws_adapter import ReportedDevice
    from uws_adapter.model.devices import device_key

    one = ReportedDevice("imei", " 35000000000000a ")
    assert device_key((one,)) == device_key([one]) == device_key(iter([one])) == "IMEI:35000000000000A"
    two = (ReportedDevice("ICCID", "89148"), one)
    assert device_key(two) == device_key(tuple(reversed(two))) == "ICCID:89148|IMEI:35000000000000A"


def test_csv_reading_stops_at_the_row_past_max_devices(tmp_path: Path) -> None:
    # Without the bound every row was read and held before a caller could count them: ten million
    # rows took 3.8 GB and minutes, only to be refused for being over 10,000. The row past the
    # bound is refused; what follows it (a row that is not even valid here) is never read.
    path = tmp_path / "devices.csv"
    path.write_text("kind,identifier\n" + "".join(f"IMEI,{n:015d}\n" for n in range(3)) + "# the end\n")
    assert len(read_devices_csv(path, max_devices=3)) == 3
    path.write_text("kind,identifier\n" + "".join(f"IMEI,{n:015d}\n" for n in range(4)) + "IMEI,not-read\n")
    with pytest.raises(InputError, match=r"devices\.csv line 5: more than 3 devices; split it") as raised:
        read_devices_csv(path, max_devices=3)
    assert raised.value.code == Code.MAX_REQUESTS_EXCEEDED
    with pytest.raises(InputError, match=r"devices file line 4: more than 3 devices"):
        read_devices_csv(io.StringIO("".join(f"IMEI,{n:015d}\n" for n in range(5))), max_devices=3)
