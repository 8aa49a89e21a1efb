"""The budget check over more devices than one statement binds (store/line_counts.py ``risky``, issue
19: on SQLite a device of one or two identities is one key in VALUES lists of 492, one of three or
more a row per identity in lists of 250 rows), on SQLite and PostgreSQL: lines over the budget are
found wherever they fall, at the first and last device, at a piece's edge, and with a device's
identities split between two pieces, exactly as reading every row finds them."""

# ruff: noqa: F811 (the fixtures imported from pgserver are the parameters of their name)

from __future__ import annotations

from typing import List

import pytest
from conftest import ManualClock
from pgserver import location  # noqa: F401 (fixture)

from uws_adapter.errors import InputError
from uws_adapter.model.devices import KINDS, Device, DeviceIdentifier
from uws_adapter.provisioning.budget import lines_over, wanted_identities
from uws_adapter.store import line_counts, open_store

START = 1_800_000_000.0
COUNT = 700
#: Three identities a device: 250 rows a piece end inside devices 83, 166, 249, ...; one or two:
#: 492 keys a piece end at device 491.
HOT = (0, 83, 84, 166, 333, 491, 492, 500, COUNT - 1)
BUDGET = 3


def _device(n: int, kinds: int) -> Device:
    names = [f"IMEI:{350000000000000 + n}", f"ICCID:{89148000000000000000 + n}", f"MDN:{5550000000 + n}"]
    return Device.parse("+".join(names[:kinds]))


@pytest.mark.parametrize("kinds", [1, 2, 3])
def test_lines_over_the_budget_are_found_in_every_piece(location: str, kinds: int) -> None:
    devices: List[Device] = [_device(n, kinds) for n in range(COUNT)]
    clock = ManualClock(START)
    with open_store(location, clock=clock) as store:
        store.record_request("all", "Suspend", devices)
        for round_ in range(BUDGET - 1):
            clock.advance(60.0)
            store.record_request(f"hot-{round_}", "Restore", [devices[n] for n in HOT])
        # One more line over the budget, named by its IMEI alone (its summary rows say "several",
        # or, for devices of the IMEI alone, count three requests).
        clock.advance(60.0)
        store.record_request("imei-only-1", "Suspend", [Device.parse(f"IMEI:{350000000000000 + 400}")])
        store.record_request("imei-only-2", "Restore", [Device.parse(f"IMEI:{350000000000000 + 400}")])
        since = START - 3600.0
        everything = store.recent_actions(wanted_identities(devices), since)
        expected = lines_over(devices, everything, BUDGET)
        assert {str(device) for device, _, _ in expected} == {str(devices[n]) for n in (*HOT, 400)}
        found = store.device_actions(devices, since, at_least=BUDGET)
        assert lines_over(devices, found, BUDGET) == expected
        # One under the budget: nothing is over.
        assert lines_over(devices, store.device_actions(devices, since, at_least=BUDGET + 1), BUDGET + 1) == ()


@pytest.mark.parametrize("kind", KINDS)
def test_no_identity_holds_the_separators_the_check_splits_on(kind: str) -> None:
    """The check cuts a device's identities from its key at ``|`` and sends the keys to PostgreSQL
    joined by spaces (line_counts.risky): no identifier of any kind may hold either."""
    for value in ("1|2", "1 2"):
        with pytest.raises(InputError):
            DeviceIdentifier(kind, value)
    device = Device((DeviceIdentifier(kind, "1"), DeviceIdentifier("ICCID" if kind != "ICCID" else "IMEI", "2")))
    (names,) = line_counts.identities_of([device])
    assert line_counts.device_of(names).split("|") == sorted(names)
