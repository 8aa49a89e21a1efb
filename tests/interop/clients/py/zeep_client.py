"""zeep, one client per service from its served ?wsdl, used as a zeep user would (``client.service``),
runs the interop scenario and prints one JSON object (see tests/interop/interop_harness.py).
Usage: python zeep_client.py SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE..."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

import zeep
from steps import Device, Steps, arguments


def device_list(devices: List[Device]) -> Dict[str, Any]:
    return {
        "DeviceIdentifierCollection": [
            {"DeviceIdentifiers": {"DeviceIdentifier": [{"Kind": k, "Identifier": i} for k, i in device]}}
            for device in devices
        ]
    }


def main() -> None:
    args = arguments(sys.argv[1:])
    steps = Steps(zeep.exceptions.Fault, lambda fault: (fault.code, fault.message))
    clients: Dict[str, Any] = {}

    def load() -> None:
        clients["session"] = zeep.Client(args.session_wsdl)
        clients["carrier"] = zeep.Client(args.carrier_wsdl)

    steps.run("wsdl", load)
    if clients:
        session, carrier = clients["session"].service, clients["carrier"].service
        token: List[str] = [""]

        # zeep answers a result of one member (LogInResult, ChangeDeviceStateResult: DataContract
        # schemas, as WCF publishes them) with that member's value: the token, the RequestId.
        def login() -> None:
            token[0] = str(session.LogIn(Input={"Username": args.username, "Password": args.password}))

        def change(input: Dict[str, Any], with_token: Optional[str] = None) -> str:
            given = token[0] if with_token is None else with_token
            return str(carrier.ChangeDeviceState(Input=input, _soapheaders={"token": given}))

        def logout() -> None:
            session.LogOut(Input={"SessionToken": token[0]}, _soapheaders={"token": token[0]})

        steps.run("login", login)
        for action in ("Suspend", "Restore"):
            by_devices = {"DeviceList": device_list(args.devices), action: {}}
            steps.run(f"{action.lower()}-device-list", lambda input=by_devices: change(input))
        for action in ("Suspend", "Restore"):
            query = {
                "DeviceGroupName": args.group,
                "AccountName": args.account,
                "DeviceCustomFieldFilter": {"Name": args.field, "Value": args.value},
                action: {},
            }
            steps.run(f"{action.lower()}-account-group-field", lambda input=query: change(input))
        listed = {"DeviceList": device_list(args.devices), "Suspend": {}}
        unknown_kind = {"DeviceList": device_list([[("FOO", "123")]]), "Suspend": {}}
        steps.fault("fault-bad-token", lambda: change(listed, "not-a-session-token"))
        steps.fault("fault-unknown-kind", lambda: change(unknown_kind))
        steps.run("logout", logout)
        steps.fault("fault-after-logout", lambda: change({"DeviceList": device_list(args.devices), "Restore": {}}))
    steps.print(f"zeep {zeep.__version__}")


if __name__ == "__main__":
    main()
