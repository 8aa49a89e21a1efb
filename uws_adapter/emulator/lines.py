"""The emulated inventory: lines, and what each provisioning action does to one of them by the
documented state machine (Suspend from Active, Restore from Suspended, a daily budget of actions
per line), with the callback it produces."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from uws_adapter.errors import Code, InputError, shown
from uws_adapter.model.callbacks import (
    CallbackFault,
    CallbackRequest,
    NiddResult,
    ProfileResult,
    ReportedDevice,
    SuspendResult,
)
from uws_adapter.model.devices import Device, DeviceIdentifier
from uws_adapter.model.selection import CustomField

DEFAULT_ACCOUNT = "0000123456-00001"
ACTIVE, SUSPENDED = "Active", "Suspended"


@dataclass
class EmulatedDevice:
    """One line in the emulator's inventory (mutable: its state changes). ``nb_iot`` lines get a
    NiddService callback after a restore [doc]; ``profile_status`` is the eSIM profile's
    (``"SUSPEND"`` can be resumed with profile_resume), None for a physical SIM."""

    device: Device
    account: str = DEFAULT_ACCOUNT
    group: Optional[str] = None
    service_plan: str = "M2M Flex"
    custom_fields: Dict[str, str] = field(default_factory=dict)
    state: str = ACTIVE
    actions_today: int = 0
    suspended_days: int = 0
    nb_iot: bool = False
    profile_status: Optional[str] = None

    def matches(
        self, account: Optional[str], group: Optional[str], plan: Optional[str], custom: Sequence[CustomField]
    ) -> bool:
        """Whether the line is in ``account``, ``group`` and ``plan`` (None: any) and holds each of
        ``custom`` (values case-insensitive, as the carrier matches them [doc]): both fronts' filter."""
        return (
            account in (None, self.account)
            and group in (None, self.group)
            and plan in (None, self.service_plan)
            and all(self.custom_fields.get(f.name, "").lower() == f.value.lower() for f in custom)
        )


#: The most lines the emulator generates, as its ``--devices`` option takes them (settings.services,
#: which does not import the emulator): a count past it was built in memory whatever it was (2**70
#: exhausted the machine's memory).
MAX_GENERATED = 1_000_000


def generated_devices(count: int, *, account: str = DEFAULT_ACCOUNT, state: str = ACTIVE) -> List[EmulatedDevice]:
    """``count`` Active devices (at most :data:`MAX_GENERATED`), each with an IMEI and an ICCID."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_GENERATED:
        raise InputError("count", f"{shown(count)} is not a number of lines", f"give 0 to {MAX_GENERATED:,}")
    return [
        EmulatedDevice(
            Device.parse(f"IMEI:{350000000000000 + n}+ICCID:{89148000000000000000 + n}"), account, state=state
        )
        for n in range(count)
    ]


@dataclass(frozen=True)
class Seed:
    """``count`` lines (None: every line not yet given one) get ``value`` for ``attribute``:
    ``"group"``, ``"service_plan"`` or a custom field's name (``CustomField1`` ... ``5``)."""

    attribute: str
    value: str
    count: Optional[int] = None


def parse_seed(text: str, attribute: str) -> Seed:
    """``VALUE[:COUNT]`` (``NAME=VALUE[:COUNT]`` for ``attribute="custom_field"``), as the
    emulator's ``--group``, ``--service-plan`` and ``--custom-field`` options take it. A suffix
    of digits after the last ``:`` is the count; anything else is part of the value."""
    option = "--" + attribute.replace("_", "-")
    head, sep, tail = text.rpartition(":")
    counted = bool(sep) and tail.isdecimal()  # not isdigit(): int() refuses "²"
    if counted and len(tail.lstrip("0")) > len(str(MAX_GENERATED)):  # nor past 4,300 digits
        raise InputError(option, f"{shown(text)} seeds more lines than the emulator makes", "give a smaller count")
    value, count = (head, int(tail)) if counted else (text, None)
    if count is not None and count < 1:
        raise InputError(option, f"{text!r} seeds no line", "give a count of 1 or more, or none for every line")
    if attribute == "custom_field":
        name, equals, value = value.partition("=")
        if not equals:
            raise InputError(option, f"{text!r} is not NAME=VALUE[:COUNT]", "write e.g. CustomField2=SuperVend:10")
        try:
            field = CustomField(name.strip(), value)  # the carrier's rules for names and values
        except InputError as exc:
            raise exc.within(f"{option} ") from None
        return Seed(field.name, field.value, count)
    if not value.strip():
        raise InputError(option, f"{text!r} has no name", f"write e.g. {option} fleet-a:10")
    return Seed(attribute, value.strip(), count)


def seeds(
    *, groups: Iterable[str] = (), service_plans: Iterable[str] = (), custom_fields: Iterable[str] = ()
) -> List[Seed]:
    """The seeds of the emulator's ``--group``, ``--service-plan`` and ``--custom-field`` options."""
    return [
        *(parse_seed(text, "group") for text in groups),
        *(parse_seed(text, "service_plan") for text in service_plans),
        *(parse_seed(text, "custom_field") for text in custom_fields),
    ]


def seed_lines(lines: Sequence[EmulatedDevice], seeds: Iterable[Seed]) -> None:
    """Give ``lines`` their groups, service plans and custom-field values. Each attribute is
    handed out on its own, from the first line on, in the order the seeds come: ``--group a:10
    --group b:5`` puts lines 1-10 in a and 11-15 in b, and ``--service-plan P:3`` gives lines 1-3
    plan P, so that filters can be combined. :class:`.InputError` when a seed wants more lines
    than are left."""
    given: Dict[str, int] = {}  # lines handed out so far, per attribute
    for seed in seeds:
        start = given.get(seed.attribute, 0)
        count = len(lines) - start if seed.count is None else seed.count
        own = seed.attribute in ("group", "service_plan")  # else the name of a custom field
        if start + count > len(lines) or count < 1:
            raise InputError(
                f"--{seed.attribute.replace('_', '-')}" if own else f"--custom-field {seed.attribute}",
                f"{seed.value!r} wants {count} line(s) but {len(lines) - start} of {len(lines)} are left",
                "lower the count or generate more devices (--devices)",
            )
        for line in lines[start : start + count]:
            if own:
                setattr(line, seed.attribute, seed.value)
            else:
                line.custom_fields[seed.attribute] = seed.value
        given[seed.attribute] = start + count


def change_state(
    request_id: str,
    action: str,
    given: Tuple[DeviceIdentifier, ...],
    line: Optional[EmulatedDevice],
    *,
    daily_budget: int,
    max_callback_threshold: int,
) -> CallbackRequest:
    """Restore or Suspend one line by the documented state machine; its callback."""
    identifiers = line.device.identifiers if line else given
    base = CallbackRequest(
        request_id=request_id,
        devices=tuple(ReportedDevice(i.kind, i.identifier) for i in identifiers),
        service="CarrierService",
        action=action,
        max_callback_threshold=max_callback_threshold,
    )
    if line is None:
        return replace(base, status="Failed", fault=CallbackFault(Code.DEVICE_NOT_FOUND, "device not found"))
    needed = SUSPENDED if action == "Restore" else ACTIVE
    if line.state != needed:
        fault = CallbackFault(Code.DEVICE_STATE, f"{action} needs the device {needed}; it is {line.state}")
        return replace(base, status="Failed", fault=fault)
    if line.actions_today >= daily_budget:
        fault = CallbackFault(Code.PROVISIONING_LIMIT, f"{daily_budget} actions a day")  # [inferred]
        return replace(base, status="Failed", fault=fault)
    line.actions_today += 1
    line.state = ACTIVE if action == "Restore" else SUSPENDED
    if action == "Restore":
        return replace(base, status="Success")
    allowed = 180
    left = allowed - line.suspended_days
    suspend = SuspendResult(dt.date.today() + dt.timedelta(days=left), allowed, line.suspended_days, left)
    return replace(
        base, status="Success", suspend=suspend, comment="Device Suspended - Applicable Charges Will Continue"
    )


def resume_profile(
    request_id: str, given: Tuple[DeviceIdentifier, ...], line: Optional[EmulatedDevice], *, max_callback_threshold: int
) -> CallbackRequest:
    """eSIM profile_resume of one line; its DeviceProfileService callback."""
    devices = tuple(ReportedDevice(i.kind, i.identifier) for i in (line.device.identifiers if line else given))
    # A failed profile callback still names its service by an (empty) deviceProfileResponse.
    base = CallbackRequest(
        request_id,
        devices,
        service="DeviceProfileService",
        max_callback_threshold=max_callback_threshold,
        profile=ProfileResult(devices),
    )
    if line is None or line.profile_status is None:
        fault = CallbackFault(Code.DEVICE_NOT_FOUND, "no eSIM profile with this ICCID")
        return replace(base, status="FAILED", fault=fault)
    if line.profile_status != "SUSPEND":
        fault = CallbackFault(Code.DEVICE_STATE, f"the profile is {line.profile_status}")
        return replace(base, status="FAILED", fault=fault)
    line.profile_status = "ENABLE"
    line.state = ACTIVE
    profile = ProfileResult(devices, "ACTIVE", "ENABLE", "LOCAL")
    return replace(base, status="SUCCESS", profile=profile)


def nidd_callback(restored: CallbackRequest, account: str) -> CallbackRequest:
    """The second, NiddService callback of an NB-IoT restore: NIDD config enabled again [doc]."""
    return CallbackRequest(
        restored.request_id,
        service="NiddService",
        status="ConfigCreated",
        nidd=NiddResult(account, None, restored.devices),
        max_callback_threshold=restored.max_callback_threshold,
    )
