// A classic .NET web-reference client of our UWS WSDL: Mono's `wsdl` tool generates the
// SoapHttpClientProtocol proxies UwsSession (from SessionService.svc?wsdl) and UwsCarrier (from
// CarrierService.svc?wsdl); the v2:token header is the proxy's `token` member, as the tool writes it.
// Runs the interop scenario and prints one JSON object (see tests/interop/interop_harness.py).
// Usage: mono WebReferenceClient.exe SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...
using System;
using System.Collections.Generic;
using System.Web.Services.Protocols;
using UwsInterop;

public static class WebReferenceClient
{
    public static void Main(string[] argv)
    {
        var args = Arguments.Parse(argv);
        // The proxies' SoapException carries our code, unprefixed, as Code.Name.
        var steps = new Steps(e => e is SoapException
            ? new[] { ((SoapException)e).Code.Name, e.Message } : null);
        // The addresses the WSDLs gave the proxies are the served ones; nothing to set.
        var session = new UwsSession.SessionService();
        var carrier = new UwsCarrier.CarrierService();
        string token = null;

        steps.Run("login", () =>
        {
            token = session.LogIn(new UwsSession.LogInRequest { Username = args.Username, Password = args.Password }).SessionToken;
            return null;
        });
        foreach (var action in new[] { "Suspend", "Restore" })
            steps.Run(action.ToLower() + "-device-list", () => Change(carrier, DeviceList(action, args.Devices), token));
        foreach (var action in new[] { "Suspend", "Restore" })
            steps.Run(action.ToLower() + "-account-group-field", () =>
            {
                var input = Request(action);
                input.AccountName = args.Account;
                input.DeviceGroupName = args.Group;
                input.DeviceCustomFieldFilter = new UwsCarrier.CustomFieldFilter { Name = args.Field, Value = args.Value };
                return Change(carrier, input, token);
            });
        steps.Fault("fault-bad-token", () => Change(carrier, DeviceList("Suspend", args.Devices), "not-a-session-token"));
        steps.Fault("fault-unknown-kind", () =>
            Change(carrier, DeviceList("Suspend", new List<string[][]> { Arguments.Device("FOO:123") }), token));
        steps.Run("logout", () =>
        {
            session.token = Header(token);
            session.LogOut(new UwsSession.LogOutRequest { SessionToken = token });
            return null;
        });
        steps.Fault("fault-after-logout", () => Change(carrier, DeviceList("Restore", args.Devices), token));
        steps.Print("wsdl.exe web reference (SoapHttpClientProtocol, " + Steps.MonoVersion() + ")");
    }

    // The tool names the header's class after its XSD type (xs:string): one per generated namespace.
    static UwsSession.@string Header(string token) { return new UwsSession.@string { Text = new[] { token } }; }

    static string Change(UwsCarrier.CarrierService carrier, UwsCarrier.ChangeDeviceStateRequest input, string token)
    {
        carrier.token = new UwsCarrier.@string { Text = new[] { token } };
        return carrier.ChangeDeviceState(input).RequestId;
    }

    static UwsCarrier.ChangeDeviceStateRequest Request(string action)
    {
        var input = new UwsCarrier.ChangeDeviceStateRequest();
        if (action == "Suspend") input.Suspend = new UwsCarrier.SuspendDeviceRequest();
        else input.Restore = new UwsCarrier.RestoreDeviceRequest();
        return input;
    }

    static UwsCarrier.ChangeDeviceStateRequest DeviceList(string action, List<string[][]> devices)
    {
        var input = Request(action);
        var list = new List<UwsCarrier.DeviceIdentifierCollection>();
        foreach (var device in devices)
        {
            var ids = new List<UwsCarrier.DeviceIdentifier>();
            foreach (var pair in device) ids.Add(new UwsCarrier.DeviceIdentifier { Kind = pair[0], Identifier = pair[1] });
            list.Add(new UwsCarrier.DeviceIdentifierCollection { DeviceIdentifiers = ids.ToArray() });
        }
        input.DeviceList = list.ToArray();
        return input;
    }
}
