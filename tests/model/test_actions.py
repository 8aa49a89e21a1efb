from __future__ import annotations

import pytest

from uws_adapter import InputError, Restore, Suspend, action_named


@pytest.mark.parametrize(("name", "expected"), [("restore", Restore()), ("SUSPEND", Suspend())])
def test_action_named(name: str, expected: object) -> None:
    assert action_named(name) == expected


def test_suspend_carries_with_billing() -> None:
    assert action_named("suspend", with_billing=False) == Suspend(with_billing=False)


def test_with_billing_on_restore_is_refused() -> None:
    with pytest.raises(InputError, match="with_billing: applies to suspend only"):
        action_named("restore", with_billing=True)


def test_unknown_action() -> None:
    with pytest.raises(InputError, match="action: unknown action 'activate'; use restore or suspend"):
        action_named("activate")


def test_with_billing_must_be_a_bool() -> None:
    with pytest.raises(InputError, match="with_billing: expected True, False or None"):
        Suspend(with_billing="yes")  # type: ignore[arg-type]
    # Quoted by the one rule (errors.shown): repr() of an integer past 4,300 digits was a raw ValueError.
    with pytest.raises(InputError, match="got an integer of 16,610 bits"):
        Suspend(with_billing=10**5000)  # type: ignore[arg-type]
