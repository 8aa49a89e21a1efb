"""Which devices a request acts on: EITHER a device list OR a query by account, device group,
service plan and custom fields (the carrier refuses the mix [doc]). UWS needs an account or a
device group in a query, which the filters narrow [doc]; REST takes "any combination of groupName,
servicePlan, and customFields" [doc], a service plan alone included.

A device list may name the billing account its devices are in. The REST API recommends sending
``accountName`` with a device list whenever the login reaches several billing accounts [doc]; UWS
forbids AccountName beside DeviceList [doc], so the SOAP envelope builder refuses such a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

from uws_adapter.errors import Code, InputError, UnsupportedByApi, shown
from uws_adapter.model.actions import Restore, Suspend
from uws_adapter.model.devices import Device, as_tuple_of, identity, split_pair
from uws_adapter.model.text import a_string, xml_text

# Limits [doc].
MAX_DEVICES_PER_REQUEST = 10_000
CUSTOM_FIELD_NAMES = tuple(f"CustomField{n}" for n in range(1, 6))
CUSTOM_FIELD_VALUE_MAX = 50
#: Refused by UWS with INPUT_INVALID.Request.InvalidCharacter [doc].
CUSTOM_FIELD_FORBIDDEN_CHARS = ("'", "<", "\\")

ACCOUNT_FIX = "give the account name as a string, e.g. '0000123456-00001'"
_CUSTOM_FIELD_BY_LOWER = {name.lower(): name for name in CUSTOM_FIELD_NAMES}


def required_text(field: str, value: object, fix: str, *, code: str = Code.REQUEST_UNDEFINED) -> str:
    """A non-empty string XML can carry; numbers are refused because account names keep their
    leading zeros."""
    stripped = a_string(field, value, fix, code=code).strip()
    if not stripped:
        raise InputError(field, "is empty", fix, code=code)
    # The carrier's code for characters it refuses in a custom field [doc]; for the other text
    # fields the same code is [inferred].
    return xml_text(field, stripped, code=Code.INVALID_CHARACTER)


@dataclass(frozen=True)
class CustomField:
    """A custom-field filter: ``CustomField1`` … ``CustomField5`` equal to ``value``
    (matched case-insensitively by the carrier, no wildcards)."""

    name: str
    value: str

    def __post_init__(self) -> None:
        name = required_text(
            "custom field name", self.name, "use CustomField1 to CustomField5", code=Code.CUSTOM_FIELD_NAME
        )
        canonical = _CUSTOM_FIELD_BY_LOWER.get(name.lower())
        if canonical is None:
            raise InputError(
                "custom field name",
                f"{shown(name)} is not a custom field",
                "use CustomField1 to CustomField5",
                code=Code.CUSTOM_FIELD_NAME,
            )
        value = required_text(
            f"custom field {canonical} value", self.value, "give the value to match", code=Code.INVALID_CHARACTER
        )
        if len(value) > CUSTOM_FIELD_VALUE_MAX:
            raise InputError(
                f"custom field {canonical} value",
                f"{len(value)} characters, the carrier allows {CUSTOM_FIELD_VALUE_MAX}",
                "shorten the value",
                code=Code.CUSTOM_FIELD_TOO_LONG,
            )
        bad = [c for c in CUSTOM_FIELD_FORBIDDEN_CHARS if c in value]
        if bad:
            raise InputError(
                f"custom field {canonical} value",
                "contains " + " and ".join(repr(c) for c in bad) + ", which the carrier refuses",
                "remove the characters ' < and \\",
                code=Code.INVALID_CHARACTER,
            )
        object.__setattr__(self, "name", canonical)
        object.__setattr__(self, "value", value)

    @classmethod
    def parse(cls, text: str) -> CustomField:
        """Parse ``NAME=VALUE``."""
        return cls(
            *split_pair(text, "=", "custom field", "NAME=VALUE", "CustomField2=SuperVend", code=Code.INVALID_CHARACTER)
        )


@dataclass(frozen=True)
class DeviceList:
    """Up to 10,000 distinct devices, named one by one; ``account`` is the billing account they
    are in (REST only)."""

    devices: Tuple[Device, ...]
    account: Optional[str] = None

    def __post_init__(self) -> None:
        if self.account is not None:
            object.__setattr__(self, "account", required_text("account", self.account, ACCOUNT_FIX))
        devices = as_tuple_of(self.devices, Device, "devices", "build devices with Device.parse('KIND:ID')")
        if not devices:
            raise InputError("devices", "the device list is empty", "name at least one device")
        if len(devices) > MAX_DEVICES_PER_REQUEST:
            raise InputError(
                "devices",
                f"{len(devices):,} devices, the carrier takes at most {MAX_DEVICES_PER_REQUEST:,} per request",
                "split them into several requests",
                code=Code.MAX_REQUESTS_EXCEEDED,
            )
        first_seen: Dict[str, int] = {}
        for position, device in enumerate(devices):
            for ident in device.identifiers:
                key = identity(ident.kind, ident.identifier)
                earlier = first_seen.setdefault(key, position)
                if earlier != position:
                    raise InputError(
                        f"devices[{position}]", f"{ident} is already devices[{earlier}]", "name each device once"
                    )
        object.__setattr__(self, "devices", devices)


@dataclass(frozen=True)
class DeviceQuery:
    """Every device that matches all the criteria given (what each API needs: see the module and
    :func:`check_uws_query`). ``account`` is a string such as ``"0000123456-00001"``: leading zeros matter."""

    account: Optional[str] = None
    group: Optional[str] = None
    service_plan: Optional[str] = None
    custom_fields: Tuple[CustomField, ...] = ()

    def __post_init__(self) -> None:
        account = None if self.account is None else required_text("account", self.account, ACCOUNT_FIX)
        group = None if self.group is None else required_text("group", self.group, "give the device group name")
        plan = self.service_plan
        plan = None if plan is None else required_text("service_plan", plan, "give the service plan name")
        fields = as_tuple_of(self.custom_fields, CustomField, "custom_fields", "use CustomField(name, value)")
        if account is None and group is None and plan is None and not fields:
            raise InputError(
                "selection",
                "no devices, account, device group, service plan or custom field given",
                "name devices, or give an account, a device group, a service plan and/or custom fields",
            )
        names = set()
        for position, item in enumerate(fields):
            if item.name in names:
                raise InputError(
                    f"custom_fields[{position}]", f"{item.name} is given twice", "filter on each field once"
                )
            names.add(item.name)
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "service_plan", plan)
        object.__setattr__(self, "custom_fields", fields)


Selection = Union[DeviceList, DeviceQuery]


def check_uws_query(selection: Selection) -> None:
    """Refuse a query UWS cannot carry: filters (service plan, custom field) without an account
    or a device group ("an AccountName or a DeviceGroupName plus one or both filters" [doc])."""
    if isinstance(selection, DeviceQuery) and selection.account is None and selection.group is None:
        raise UnsupportedByApi(
            "selection",
            "UWS needs an account or a device group; a service plan or custom field only narrows them",
            "add --account or --group, or send the request through the REST API",
            wire_fix="add AccountName or DeviceGroupName",
        )


def select(
    devices: Optional[Sequence[Device]] = None,
    *,
    account: Optional[str] = None,
    group: Optional[str] = None,
    service_plan: Optional[str] = None,
    custom_fields: Sequence[CustomField] = (),
) -> Selection:
    """The selection the arguments describe. A device list may carry ``account`` (REST only);
    group, service plan and custom fields never go with a device list."""
    if devices is not None:
        given = (("group", group), ("service_plan", service_plan), ("custom_fields", custom_fields))
        mixed = [name for name, value in given if value]
        if mixed:
            raise InputError(
                "selection",
                "a device list cannot be combined with " + ", ".join(mixed),
                "name devices, or select by account/group with filters, not both",
            )
        return DeviceList(devices, account)  # type: ignore[arg-type]  # each checks and makes its tuple
    return DeviceQuery(account, group, service_plan, custom_fields)  # type: ignore[arg-type]


def check_request(action: object, selection: object) -> None:
    """Refuse anything but an action and a selection of this package (both APIs' first check)."""
    if not isinstance(action, (Restore, Suspend)):
        raise InputError(
            "action", f"expected Restore() or Suspend(), got {shown(action)}", "use action_named('restore')"
        )
    if not isinstance(selection, (DeviceList, DeviceQuery)):
        raise InputError(
            "selection", f"expected a DeviceList or DeviceQuery, got {shown(selection)}", "use select(...)"
        )
