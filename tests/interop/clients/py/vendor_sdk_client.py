"""The vendor's REST SDK (``sdksio-verizon-apis-sdk``, package ``verizon``) against the emulator's REST
side: OAuth, session login, callback listener register/list/remove, the device list of account +
group + custom field (what a preview reads), suspend and restore with a device list and with
account + group + custom field, session logout. Prints one JSON object: each
step, and the fields the SDK's own response models read back (see tests/interop/interop_harness.py).
Usage: python vendor_sdk_client.py REST_URL CLIENT_ID CLIENT_SECRET USER PASSWORD ACCOUNT GROUP FIELD
       VALUE LISTENER_URL DEVICE...   (REST_URL is the emulator's .../api; a DEVICE is KIND:ID[+KIND:ID...])"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any, Callable, Dict, List, Optional

from verizon.configuration import Configuration, Environment, Server
from verizon.http.auth.thingspace_oauth import ThingspaceOauthCredentials
from verizon.http.auth.vz_m2m_token import VZM2mTokenCredentials
from verizon.models.account_device_list import AccountDeviceList
from verizon.models.account_device_list_request import AccountDeviceListRequest
from verizon.models.carrier_actions_request import CarrierActionsRequest
from verizon.models.custom_fields import CustomFields
from verizon.models.device_id import DeviceId
from verizon.models.log_in_request import LogInRequest
from verizon.models.register_callback_request import RegisterCallbackRequest
from verizon.verizon_client import VerizonClient

SERVICE = "CarrierService"


def fields(model: Any, names: List[str]) -> Dict[str, Any]:
    """What the SDK's model reads back, field by field (None where it read nothing)."""
    return {name: getattr(model, name, None) for name in names}


def main() -> None:
    if len(sys.argv) < 12:
        sys.exit(__doc__)
    rest_url, client_id, secret, user, password, account, group, field, value, listener = sys.argv[1:11]
    devices = [[pair.split(":", 1) for pair in text.split("+")] for text in sys.argv[11:]]
    # The SDK's servers are fixed per environment: point the production one at the emulator.
    Configuration.environments[Environment.PRODUCTION][Server.THINGSPACE] = rest_url
    Configuration.environments[Environment.PRODUCTION][Server.OAUTH_SERVER] = f"{rest_url}/ts/v1"
    oauth = ThingspaceOauthCredentials(oauth_client_id=client_id, oauth_client_secret=secret)
    state: Dict[str, Any] = {"client": VerizonClient(thingspace_oauth_credentials=oauth, timeout=10)}
    steps: List[Dict[str, Any]] = []

    def step(name: str, body: Callable[[], Optional[Dict[str, Any]]]) -> None:
        try:
            result = body()
        except Exception as exc:  # the step's result, reported for the test to show
            error = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
            status = getattr(exc, "response_code", None)
            body_text = getattr(getattr(exc, "response", None), "text", None)
            if status is not None:
                error += f" [HTTP {status}: {str(body_text)[:300]}]"
            steps.append({"step": name, "ok": False, "error": error})
            return
        steps.append({"step": name, "ok": True, **(result or {})})

    def token() -> Dict[str, Any]:
        fetched = state["client"].thingspace_oauth.fetch_token()
        state["client"] = VerizonClient(thingspace_oauth_credentials=oauth.clone_with(oauth_token=fetched), timeout=10)
        return {
            "fields": {**fields(fetched, ["token_type", "expires_in"]), "has_access_token": bool(fetched.access_token)}
        }

    def login() -> Dict[str, Any]:
        client = state["client"]
        answer = client.session_management.start_connectivity_management_session(LogInRequest(user, password))
        session = answer.body.session_token
        state["client"] = VerizonClient(
            config=client.config.clone_with(vz_m2m_token_credentials=VZM2mTokenCredentials(vz_m2m_token=session))
        )
        return {"status": answer.status_code, "fields": {"has_session_token": bool(session)}}

    def register() -> Dict[str, Any]:
        answer = state["client"].connectivity_callbacks.register_callback(
            account, RegisterCallbackRequest(name=SERVICE, url=listener)
        )
        return {"status": answer.status_code, "fields": fields(answer.body, ["account_name", "service_name"])}

    def listed() -> Dict[str, Any]:
        answer = state["client"].connectivity_callbacks.list_registered_callbacks(account)
        names = ["account_name", "service_name", "url"]
        return {"status": answer.status_code, "listeners": [fields(item, names) for item in answer.body or []]}

    def remove() -> Dict[str, Any]:
        answer = state["client"].connectivity_callbacks.deregister_callback(account, SERVICE)
        return {"status": answer.status_code, "fields": fields(answer.body, ["account_name", "service_name"])}

    def devices_listed() -> Dict[str, Any]:
        request = AccountDeviceListRequest(
            account_name=account, group_name=group, custom_fields=[CustomFields(key=field, value=value)]
        )
        answer = state["client"].device_management.list_devices_information(request)
        found = [
            {
                "ids": sorted(f"{i.kind}:{i.id}" for i in item.device_ids),
                "state": item.carrier_informations[0].state,
                "account_name": item.account_name,
                "group_names": item.group_names,
            }
            for item in answer.body.devices
        ]
        return {"status": answer.status_code, "has_more_data": answer.body.has_more_data, "devices": found}

    def change(action: str, request: CarrierActionsRequest) -> Dict[str, Any]:
        management = state["client"].device_management
        call = (
            management.suspend_service_for_devices
            if action == "Suspend"
            else management.restore_service_for_suspended_devices
        )
        answer = call(request)
        return {"status": answer.status_code, "request_id": answer.body.request_id}

    def logout() -> Dict[str, Any]:
        answer = state["client"].session_management.end_connectivity_management_session()
        return {"status": answer.status_code}

    by_devices = CarrierActionsRequest(
        devices=[AccountDeviceList(device_ids=[DeviceId(id=i, kind=k) for k, i in device]) for device in devices]
    )
    by_query = CarrierActionsRequest(
        account_name=account, group_name=group, custom_fields=[CustomFields(key=field, value=value)]
    )
    step("oauth-token", token)
    step("login", login)
    step("register-callback", register)
    step("list-callbacks", listed)
    step("list-devices-account-group-field", devices_listed)
    for action in ("Suspend", "Restore"):
        step(f"{action.lower()}-device-list", lambda action=action: change(action, by_devices))
    for action in ("Suspend", "Restore"):
        step(f"{action.lower()}-account-group-field", lambda action=action: change(action, by_query))
    step("remove-callback", remove)
    step("list-callbacks-after-remove", listed)
    step("logout", logout)
    print(json.dumps({"client": f"sdksio-verizon-apis-sdk {version('sdksio-verizon-apis-sdk')}", "steps": steps}))


if __name__ == "__main__":
    main()
