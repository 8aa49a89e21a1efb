"""The emulated lines' state machine, directly: what each action does to a line, and its callback."""

from __future__ import annotations

import pytest

from uws_adapter import Device, InputError
from uws_adapter.emulator.lines import (
    ACTIVE,
    SUSPENDED,
    EmulatedDevice,
    change_state,
    generated_devices,
    nidd_callback,
    resume_profile,
)

GIVEN = Device.parse("IMEI:359999999999999").identifiers


def test_suspend_then_restore_within_the_daily_budget() -> None:
    line = generated_devices(1)[0]
    suspended = change_state("r1", "Suspend", GIVEN, line, daily_budget=2, max_callback_threshold=4)
    assert (suspended.status, line.state, suspended.suspend is not None) == ("Success", SUSPENDED, True)
    restored = change_state("r2", "Restore", GIVEN, line, daily_budget=2, max_callback_threshold=4)
    assert (restored.status, line.state, restored.max_callback_threshold) == ("Success", ACTIVE, 4)
    over = change_state("r3", "Suspend", GIVEN, line, daily_budget=2, max_callback_threshold=4)
    assert (over.status, over.fault.code if over.fault else None, line.state) == (
        "Failed", "REQUEST_FAILED.ProvisioningLimitExceeded", ACTIVE,
    )  # fmt: skip


def test_wrong_state_and_unknown_line_fail_with_the_documented_codes() -> None:
    line = generated_devices(1)[0]
    wrong = change_state("r1", "Restore", GIVEN, line, daily_budget=5, max_callback_threshold=4)
    assert wrong.fault is not None
    assert (wrong.status, wrong.fault.code, line.actions_today) == ("Failed", "INPUT_INVALID.DeviceState.Invalid", 0)
    unknown = change_state("r1", "Suspend", GIVEN, None, daily_budget=5, max_callback_threshold=4)
    assert unknown.fault is not None
    assert (unknown.fault.code, unknown.devices[0].identifier) == ("REQUEST_FAILED.DeviceNotFound", "359999999999999")


def test_profile_resume_and_the_nidd_callback() -> None:
    line = EmulatedDevice(Device.parse("ICCID:89148000000800784259"), state=SUSPENDED, profile_status="SUSPEND")
    resumed = resume_profile("r1", line.device.identifiers, line, max_callback_threshold=4)
    assert (resumed.succeeded, resumed.service, line.profile_status, line.state) == (
        True, "DeviceProfileService", "ENABLE", ACTIVE,
    )  # fmt: skip
    again = resume_profile("r2", line.device.identifiers, line, max_callback_threshold=4)
    assert (again.succeeded, again.service) == (False, "DeviceProfileService")
    nidd = nidd_callback(resumed, "0000123456-00001")
    assert nidd.nidd is not None
    assert (nidd.service, nidd.status, nidd.nidd.devices) == ("NiddService", "ConfigCreated", resumed.devices)


@pytest.mark.parametrize("count", [-1, 1_000_001, 2**70, None, 2.0, True])
def test_generated_devices_refuses_a_count_it_cannot_or_should_not_build(count: object) -> None:
    # 2**70 was built in memory until the machine ran out of it.
    with pytest.raises(InputError) as info:
        generated_devices(count)  # type: ignore[arg-type]
    assert info.value.field == "count"


@pytest.mark.parametrize(
    "count", [-1, 1_000_001, 10**5000, "3", True], ids=["negative", "past-the-cap", "huge", "text", "bool"]
)
def test_generated_devices_refuses_what_is_no_count_of_lines(count: object) -> None:
    # An integer past 4,300 digits made the refusal itself a raw ValueError (str of it).
    with pytest.raises(InputError, match=r"^count: .* is not a number of lines"):
        generated_devices(count)  # type: ignore[arg-type]
