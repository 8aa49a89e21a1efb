"""The exception tree: input errors carry the carrier's fault code from where they are raised."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from typing import Callable, List

import pytest

from uws_adapter import CustomField, Device, DeviceIdentifier, DeviceList, InputError, errors
from uws_adapter.errors import Code, UwsAdapterError

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
        (lambda: DeviceList(()), Code.REQUEST_UNDEFINED),
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


def _exception_classes() -> List[type]:
    import uws_adapter

    found = []
    for module in pkgutil.walk_packages(uws_adapter.__path__, "uws_adapter."):
        if module.name.endswith("__main__"):
            continue
        with warnings.catch_warnings():  # the deprecated compatibility modules warn on import
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = importlib.import_module(module.name)
        found += [
            value
            for value in vars(loaded).values()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == loaded.__name__
        ]
    return found


def test_every_exception_class_in_the_package_is_in_the_tree() -> None:
    outside = [f"{c.__module__}.{c.__name__}" for c in _exception_classes() if not issubclass(c, UwsAdapterError)]
    assert outside == []


def test_the_documented_tree_names_every_public_error_and_its_builtin() -> None:
    documented = errors.__doc__ or ""
    public = [c for c in _exception_classes() if c.__module__ == "uws_adapter.errors"]
    assert [c.__name__ for c in public if c.__name__ not in documented] == []
    builtins = {InputError: ValueError, errors.DocumentError: ValueError, errors.TransportError: ConnectionError,
                errors.StoreError: OSError}  # fmt: skip
    for cls, builtin in builtins.items():
        assert issubclass(cls, builtin), cls
        assert f"{cls.__name__} (also {builtin.__name__})" in documented


@pytest.mark.parametrize(
    ("value", "words"),
    [("x", "a string"), (5, "a number"), (2.5, "a number"), (True, "a boolean"), (None, "null"), ({}, "an object"),
     ([], "an array"), ((), "an array"), (b"x", "a bytes")],
)  # fmt: skip
def test_kind_of_names_a_value_in_a_wires_words(value: object, words: str) -> None:
    assert errors.kind_of(value) == words


def test_a_locked_login_is_told_to_wait_when_the_service_says_how_long() -> None:
    # The bridge's LogIn throttle answers AccountLocked with "try again in N s"; the CLI's line must
    # not send its operator to the carrier for a lock that ends on its own.
    from uws_adapter.errors import fault_fix, fault_for

    throttled = fault_for("SessionService.REQUEST_FAILED.AccountLocked", "too many failed logins; try again in 1 s")
    fix = fault_fix(throttled)
    assert fix is not None
    assert fix.startswith("failed logins locked this login: wait as long as the service says")
    assert "ask the carrier to unlock the account" in fix
