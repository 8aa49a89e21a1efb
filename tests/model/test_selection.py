from __future__ import annotations

from typing import Any, Dict

import pytest

from uws_adapter import CustomField, Device, DeviceList, DeviceQuery, InputError, select
from uws_adapter.errors import Code, UnsupportedByApi
from uws_adapter.model.selection import check_uws_query
from uws_adapter.wire import MAX_DEVICES_PER_REQUEST

ONE = Device.of("ESN", "09611822299")


def _imeis(count: int) -> list[Device]:
    return [Device.of("IMEI", f"{350000000000000 + n}") for n in range(count)]


def test_select_with_devices_gives_a_device_list() -> None:
    assert select([ONE]) == DeviceList((ONE,))


def test_select_with_account_and_filters_gives_a_query() -> None:
    query = select(account="0000123456-00001", service_plan="Plan", custom_fields=[CustomField("customfield2", "x")])
    assert query == DeviceQuery("0000123456-00001", None, "Plan", (CustomField("CustomField2", "x"),))


@pytest.mark.parametrize(
    "extra",
    [{"group": "g"}, {"service_plan": "p"}, {"custom_fields": [CustomField("CustomField1", "v")]}],
    ids=["group", "service-plan", "custom-field"],
)
def test_device_list_mixed_with_a_query_is_refused(extra: Dict[str, Any]) -> None:
    with pytest.raises(InputError, match=r"selection: a device list cannot be combined with") as info:
        select([ONE], **extra)
    assert next(iter(extra)) in str(info.value)


def test_device_list_may_name_its_account() -> None:
    selection = select([ONE], account=" 0000123456-00001 ")
    assert isinstance(selection, DeviceList)
    assert selection.account == "0000123456-00001"
    with pytest.raises(InputError, match="account: expected a string"):
        DeviceList((ONE,), 123456)  # type: ignore[arg-type]


def test_an_empty_selection_is_refused() -> None:
    with pytest.raises(InputError, match="no devices, account, device group, service plan or custom field given"):
        select()


@pytest.mark.parametrize(
    "kwargs",
    [{"service_plan": "p"}, {"custom_fields": [CustomField("CustomField1", "v")]}],
    ids=["plan-only", "field-only"],
)
def test_a_filter_alone_is_a_rest_selection_that_uws_refuses(kwargs: Dict[str, Any]) -> None:
    # REST: "any combination of groupName, servicePlan, and customFields" [doc]; UWS: "an
    # AccountName or a DeviceGroupName plus one or both filters" [doc].
    selection = select(**kwargs)
    with pytest.raises(UnsupportedByApi, match="UWS needs an account or a device group"):
        check_uws_query(selection)
    check_uws_query(select(account="0000123456-00001", **kwargs))


def test_account_given_as_a_number_is_refused() -> None:
    with pytest.raises(InputError, match=r"account: expected a string, got a number \(123456\); give the account name"):
        select(account=123456)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "blank"])
def test_empty_group_is_refused(value: str) -> None:
    with pytest.raises(InputError, match="group: is empty"):
        DeviceQuery(group=value)


@pytest.mark.parametrize("name", ["CustomField0", "CustomField6", "Field1", "custom field 1"])
def test_custom_field_names_other_than_the_five_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="use CustomField1 to CustomField5"):
        CustomField(name, "v")


def test_custom_field_value_over_50_characters_is_refused() -> None:
    CustomField("CustomField1", "x" * 50)
    with pytest.raises(InputError, match="51 characters, the carrier allows 50"):
        CustomField("CustomField1", "x" * 51)


@pytest.mark.parametrize("char", ["'", "<", "\\"], ids=["quote", "less-than", "backslash"])
def test_custom_field_characters_the_carrier_refuses(char: str) -> None:
    with pytest.raises(InputError, match=r"custom field CustomField3 value: contains .*which the carrier refuses"):
        CustomField("CustomField3", f"a{char}b")


@pytest.mark.parametrize("char", ["\x00", "\x07", "\ud800", "\ufffe"], ids=["nul", "bell", "lone-surrogate", "ufffe"])
@pytest.mark.parametrize(
    ("field", "build"),
    [
        ("account", lambda text: DeviceQuery(account=text)),
        ("group", lambda text: DeviceQuery(group=text)),
        ("service_plan", lambda text: DeviceQuery(service_plan=text)),
        ("custom field CustomField2 value", lambda text: CustomField("CustomField2", text)),
        ("account", lambda text: DeviceList((ONE,), account=text)),
    ],
    ids=["account", "group", "service-plan", "custom-field", "device-list-account"],
)
def test_text_xml_cannot_carry_is_refused_by_name(field: str, build: Any, char: str) -> None:
    with pytest.raises(InputError, match=f"^{field}: has a character XML cannot carry at position 2") as refused:
        build(f"ab{char}cd")
    assert refused.value.code == Code.INVALID_CHARACTER


def test_tabs_and_line_breaks_inside_text_are_kept() -> None:
    assert DeviceQuery(account="a\tb\nc").account == "a\tb\nc"


def test_custom_field_parse() -> None:
    assert CustomField.parse("CustomField2=Super=Vend") == CustomField("CustomField2", "Super=Vend")
    with pytest.raises(InputError) as refused:
        CustomField.parse("CustomField2")
    assert str(refused.value) == "custom field: 'CustomField2' is not NAME=VALUE; write e.g. CustomField2=SuperVend"
    assert refused.value.code == Code.INVALID_CHARACTER


def test_the_same_custom_field_twice_is_refused() -> None:
    with pytest.raises(InputError, match="CustomField1 is given twice"):
        DeviceQuery(account="1", custom_fields=(CustomField("CustomField1", "a"), CustomField("customfield1", "b")))


def test_the_same_device_twice_is_refused() -> None:
    other = Device.parse("IMEI:990003420535573+ESN:09611822299")
    with pytest.raises(InputError, match=r"devices\[1\]: ESN:09611822299 is already devices\[0\]"):
        DeviceList((ONE, other))


def test_hex_identifiers_are_compared_without_case() -> None:
    with pytest.raises(InputError, match="already"):
        DeviceList((Device.of("MEID", "A100003685A2D0"), Device.of("MEID", "a100003685a2d0")))


def test_empty_device_list_is_refused() -> None:
    with pytest.raises(InputError, match="the device list is empty"):
        select([])


def test_device_count_limit() -> None:
    assert len(DeviceList(tuple(_imeis(MAX_DEVICES_PER_REQUEST))).devices) == MAX_DEVICES_PER_REQUEST
    with pytest.raises(InputError, match="10,001 devices, the carrier takes at most 10,000"):
        DeviceList(tuple(_imeis(MAX_DEVICES_PER_REQUEST + 1)))


def test_non_device_entries_are_refused() -> None:
    with pytest.raises(InputError, match=r"devices\[0\]: expected a Device, got str"):
        DeviceList(("IMEI:990003420535573",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [("CustomField1=x", "custom_fields: expected CustomField objects"), (["CustomField1=x"], r"custom_fields\[0\]: expected a CustomField, got str")],
    ids=["a-string", "a-list-of-strings"],
)  # fmt: skip
def test_custom_fields_must_be_custom_field_objects(fields: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        DeviceQuery(account="1", custom_fields=fields)


def test_a_single_custom_field_is_taken_as_one() -> None:
    field = CustomField("CustomField1", "x")
    assert DeviceQuery(account="1", custom_fields=field).custom_fields == (field,)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"devices": 0}, "devices"), ({"account": "a", "custom_fields": None}, "custom_fields"),
     ({"account": "a", "custom_fields": 5}, "custom_fields")],
)  # fmt: skip
def test_select_refuses_what_is_not_a_collection_by_name(kwargs: Dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as info:  # they were a raw TypeError from tuple()
        select(**kwargs)
    assert info.value.field == field
