"""The public API is small and deliberate: __all__ is guarded here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import uws_adapter
from uws_adapter import errors

EXPECTED = {
    # request model and envelopes
    "KINDS", "MAX_DEVICES_PER_REQUEST", "REST_ONLY_KINDS", "Action", "CustomField", "Device", "DeviceIdentifier",
    "DeviceList", "DeviceQuery", "Restore", "Selection", "SoapRequest", "Suspend", "action_named", "build_envelope",
    "read_devices_csv", "select", "zeep_envelope",
    # callbacks
    "CallbackFault", "CallbackRequest", "NiddResult", "ProfileResult", "ReportedDevice", "RestoreResult",
    "SuspendResult", "callback_json_schema", "parse_callback", "parse_rest_callback", "render_callback",
    "render_rest_callback",
    # clients, configuration and emulator
    "BatchResult", "Provisioner", "SendOptions", "UwsClient", "RestClient", "RestRequest", "CallbackListener", "rest_body",
    "profile_resume_body", "Settings", "connect", "load_settings", "EmulatedDevice", "Emulator", "generated_devices",
    # services: receiver, store, bridge, the hardened parse
    "Store", "StoredEvent", "RequestStatus", "RequestLog", "Receiver", "AsyncReceiver", "DeadLetterBudget", "Bridge",
    "parse_untrusted", "create_wsgi_app", "create_asgi_app",
    # errors
    "UwsAdapterError", "InputError", "UnsupportedByApi", "DocumentError", "CallbackParseError", "ResourceError",
    "TransportError", "ConnectionFailed", "OutcomeUnknown", "ServiceFault", "SessionExpired", "InvalidInputFault",
    "DeviceFault", "UnknownFault", "StoreError", "HandlerGaveUp", "AuthenticationFailed", "BudgetExceeded",
    "BatchFailed", "__version__",
}  # fmt: skip


def test_all_is_exactly_the_public_api() -> None:
    assert set(uws_adapter.__all__) == EXPECTED
    assert len(uws_adapter.__all__) == len(EXPECTED)
    for name in uws_adapter.__all__:
        assert hasattr(uws_adapter, name), name


def test_every_exception_derives_from_the_base() -> None:
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)]
    assert all(issubclass(c, uws_adapter.UwsAdapterError) for c in classes)
    assert issubclass(uws_adapter.InputError, ValueError)
    assert issubclass(uws_adapter.UnsupportedByApi, uws_adapter.InputError)


def test_input_error_carries_field_and_fix() -> None:
    error = uws_adapter.InputError("account", "is empty", "give the account name")
    assert (error.field, error.problem, error.fix, str(error)) == (
        "account",
        "is empty",
        "give the account name",
        "account: is empty; give the account name",
    )
    located = error.within("line 3: ")
    assert (type(located), str(located)) == (uws_adapter.InputError, "line 3: account: is empty; give the account name")


@pytest.mark.parametrize(
    "module",
    [
        "uws_adapter",
        "uws_adapter.receiver",
        "uws_adapter.receiver_async",
        "uws_adapter.wsgi",
        "uws_adapter.store",
        "uws_adapter.callbacks",
        "uws_adapter.model",
    ],
)
def test_the_receiver_side_never_imports_zeep_requests_or_the_emulator(module: str) -> None:
    # A fresh interpreter: this one has long imported everything.
    probe = f"import sys, {module}; print(sorted(m for m in ('zeep', 'requests', 'xmlschema', 'uws_adapter.emulator') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


@pytest.mark.parametrize(
    "module", ["uws_adapter.bridge", "uws_adapter.bridge.app", "uws_adapter.soap", "uws_adapter.receiver"]
)
def test_the_bridge_and_our_soap_server_never_import_zeep_or_the_uws_client(module: str) -> None:
    # The bridge is what outlives UWS: it serves SOAP with lxml and calls the REST API.
    probe = f"import sys, {module}; print(sorted(m for m in ('zeep', 'uws_adapter.uws') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_public_names_resolve_lazily_and_unknown_ones_fail_clearly() -> None:
    assert uws_adapter.Store.__name__ == "Store"
    assert "Store" in dir(uws_adapter)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        uws_adapter.NoSuchThing  # noqa: B018


@pytest.mark.parametrize(
    ("old", "new"),
    [("uws_adapter.wsgi", "uws_adapter.receiver.wsgi"), ("uws_adapter.receiver_async", "uws_adapter.receiver.asgi")],
)
def test_the_compatibility_modules_warn_and_name_their_new_home(old: str, new: str) -> None:
    probe = f"import warnings; warnings.simplefilter('error'); import {old}"
    finished = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert finished.returncode != 0
    assert "DeprecationWarning" in finished.stderr
    assert new in finished.stderr


def test_the_lazy_table_names_the_modules_the_type_checkers_import_from() -> None:
    # The table (run time) and the imports under TYPE_CHECKING (mypy, IDEs) say the same thing twice:
    # a name moved in one and not the other would resolve differently for a program and its checker.
    tree = ast.parse(Path(uws_adapter.__file__).read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    imported = {
        alias.name: node.module.removeprefix("uws_adapter.")
        for node in guarded.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert imported == uws_adapter._PUBLIC
