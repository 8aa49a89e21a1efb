"""The vendor's own REST SDK (``sdksio-verizon-apis-sdk`` from PyPI, package ``verizon``) against the
emulator's REST side, run as its own process: OAuth, session login and logout, callback listener
register / list / remove read back through the SDK's own response models field by field, suspend
and restore with a device list and with account + group + custom field, and the JSON callbacks at
the registered listener for every device of every request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Set, Tuple

import pytest
import vendor_sdk
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER
from interop_harness import (
    CLIENTS,
    FIELD,
    GROUP,
    VALUE,
    Fleet,
    failed_steps,
    imei,
    run_client,
    unavailable,
)
from servers import listener, wait_until

from uws_adapter import Emulator, parse_rest_callback
from uws_adapter.emulator.core import DEFAULT_ACCOUNT

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("interop-rest")]

SDK_STEPS = (
    "oauth-token", "login", "register-callback", "list-callbacks", "list-devices-account-group-field",
    "suspend-device-list", "restore-device-list",
    "suspend-account-group-field", "restore-account-group-field", "remove-callback", "list-callbacks-after-remove",
    "logout",
)  # fmt: skip


@pytest.fixture(scope="session")
def sdk_path() -> Optional[Path]:
    """Where the SDK is importable from: None when this interpreter has it, else the pinned version
    installed once per machine (:mod:`vendor_sdk`)."""
    if subprocess.run([sys.executable, "-c", "import verizon"], capture_output=True, check=False).returncode == 0:
        return None
    folder, problem = vendor_sdk.install()
    if problem:
        unavailable(f"pip could not install {vendor_sdk.REQUIREMENTS.read_text().strip()}: {problem}")
    return folder


def test_the_vendor_rest_sdk_against_the_emulator(sdk_path: Optional[Path]) -> None:
    fleet = Fleet.new()
    callbacks = listener()
    try:
        with Emulator(devices=fleet.lines) as emulator:
            command = [
                sys.executable, str(CLIENTS / "py" / "vendor_sdk_client.py"), emulator.rest_url, CLIENT_ID,
                CLIENT_SECRET, USER, PASSWORD, DEFAULT_ACCOUNT, GROUP, FIELD, VALUE, callbacks.url,
                *fleet.device_arguments(),
            ]  # fmt: skip
            report = run_client(command, env={"PYTHONPATH": str(sdk_path)} if sdk_path else None)
            problems = failed_steps(report, SDK_STEPS)
            steps: Dict[str, Dict[str, Any]] = {step["step"]: step for step in report["steps"]}
            # The SDK's models, field by field: what the vendor's API answers.
            registered = {"account_name": DEFAULT_ACCOUNT, "service_name": "CarrierService"}
            reads = {
                "oauth-token": ("fields", {"token_type": "bearer", "expires_in": 3600, "has_access_token": True}),
                "login": ("fields", {"has_session_token": True}),
                "register-callback": ("fields", registered),
                "list-callbacks": ("listeners", [{**registered, "url": callbacks.url}]),
                "remove-callback": ("fields", registered),
                "list-callbacks-after-remove": ("listeners", []),
            }
            # The device list a preview reads, through the SDK's AccountDeviceListResult model.
            listed = steps.get("list-devices-account-group-field", {})
            expected_devices = [
                {"ids": sorted(f"{i.kind.lower()}:{i.identifier}" for i in line.device.identifiers), "state": "Active",
                 "account_name": DEFAULT_ACCOUNT, "group_names": [GROUP]}
                for line in fleet.queried
            ]  # fmt: skip
            if listed.get("ok") and (listed.get("devices"), listed.get("has_more_data")) != (expected_devices, False):
                problems.append(f"list-devices: the SDK's model read {listed!r}; expected {expected_devices!r}")
            for name, (key, expected) in reads.items():
                step = steps.get(name, {})
                if step.get("ok") and step.get(key) != expected:
                    problems.append(f"{name}: the SDK's model read {step.get(key)!r}; expected {expected!r}")
            assert not problems, f"{report['client']} against the emulator's REST side:\n  " + "\n  ".join(problems)

            expected_callbacks: Dict[str, Tuple[str, Set[str]]] = {}
            for name, lines in (("device-list", fleet.listed), ("account-group-field", fleet.queried)):
                for action in ("Suspend", "Restore"):
                    request_id = steps[f"{action.lower()}-{name}"]["request_id"]
                    expected_callbacks[request_id] = (action, {imei(line) for line in lines})
            assert len(expected_callbacks) == 4
            assert [(line.state, line.actions_today) for line in fleet.listed + fleet.queried] == [("Active", 2)] * 4
            assert [(line.state, line.actions_today) for line in fleet.untouched] == [("Active", 0)] * 2
            # Registered with the REST API, the listener gets the REST JSON callbacks (the listener was
            # removed only after the last request, and the emulator queued each callback when it acted).
            wait_until(lambda: len(callbacks.bodies) >= 8, 20, "8 REST callbacks")
            received: Dict[str, Tuple[str, Set[str]]] = {}
            for callback in (parse_rest_callback(body) for body in list(callbacks.bodies)):
                assert callback.succeeded, callback
                received.setdefault(callback.request_id, (callback.action or "", set()))[1].add(imei(callback))
            assert received == expected_callbacks
    finally:
        callbacks.close()
