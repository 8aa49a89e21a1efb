"""suds (suds-community), one client per service from its served ?wsdl, used as a suds user would
(``client.service``), runs the interop scenario and prints one JSON object (see
tests/interop/interop_harness.py).
Usage: python suds_client.py SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE..."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

import suds
from steps import Device, Steps, arguments
from suds.client import Client


def device_list(devices: List[Device]) -> Dict[str, Any]:
    return {
        "DeviceIdentifierCollection": [
            {"DeviceIdentifiers": {"DeviceIdentifier": [{"Kind": k, "Identifier": i} for k, i in device]}}
            for device in devices
        ]
    }


def main() -> None:
    args = arguments(sys.argv[1:])
    steps = Steps(suds.WebFault, lambda exc: (str(exc.fault.faultcode), str(exc.fault.faultstring)))
    clients: Dict[str, Client] = {}

    def load() -> None:
        clients["session"] = Client(args.session_wsdl, cache=None)
        clients["carrier"] = Client(args.carrier_wsdl, cache=None)

    steps.run("wsdl", load)
    if clients:
        session, carrier = clients["session"], clients["carrier"]
        token: List[str] = [""]

        def login() -> None:
            token[0] = session.service.LogIn(Input={"Username": args.username, "Password": args.password}).SessionToken

        def change(input: Dict[str, Any], with_token: Optional[str] = None) -> str:
            carrier.set_options(soapheaders={"token": token[0] if with_token is None else with_token})
            return str(carrier.service.ChangeDeviceState(Input=input).RequestId)

        def logout() -> None:
            session.set_options(soapheaders={"token": token[0]})
            session.service.LogOut(Input={"SessionToken": token[0]})

        steps.run("login", login)
        for action in ("Suspend", "Restore"):
            by_devices = {"DeviceList": device_list(args.devices), action: ""}
            steps.run(f"{action.lower()}-device-list", lambda input=by_devices: change(input))
        for action in ("Suspend", "Restore"):
            query = {
                "DeviceGroupName": args.group,
                "AccountName": args.account,
                "DeviceCustomFieldFilter": {"Name": args.field, "Value": args.value},
                action: "",
            }
            steps.run(f"{action.lower()}-account-group-field", lambda input=query: change(input))
        listed = {"DeviceList": device_list(args.devices), "Suspend": ""}
        steps.fault("fault-bad-token", lambda: change(listed, "not-a-session-token"))
        unknown_kind = {"DeviceList": device_list([[("FOO", "123")]]), "Suspend": ""}
        steps.fault("fault-unknown-kind", lambda: change(unknown_kind))
        steps.run("logout", logout)
        steps.fault("fault-after-logout", lambda: change({"DeviceList": device_list(args.devices), "Restore": ""}))
    steps.print(f"suds-community {suds.__version__}")


if __name__ == "__main__":
    main()
