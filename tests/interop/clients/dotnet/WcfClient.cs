// A WCF BasicHttpBinding client of our UWS WSDL: Mono's `svcutil` generates DataContract proxies
// from SessionService.svc?singleWsdl and CarrierService.svc?singleWsdl (the contracts and clients
// in the global namespace: Mono's svcutil ignores --namespace for them). svcutil writes no parameter for the v2:token header (a DataContract operation has
// none), so the token goes where WCF code puts such a header: the OperationContext's outgoing headers.
// Mono's svcutil also drops the name of each operation's result element (Output, where WCF would
// read <Operation>Result): the one line .NET's svcutil writes for it, [return: MessageParameter(Name =
// "Output")], is done here on the contract description before the channel opens (NameResults).
// Runs the interop scenario and prints one JSON object (see tests/interop/interop_harness.py).
// Usage: mono WcfClient.exe SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...
using System;
using System.Collections.Generic;
using System.ServiceModel;
using System.ServiceModel.Channels;
using Carrier = NPhase.UnifiedWebService.APIs.v2.Contract.CarrierService;
using Common = NPhase.UnifiedWebService.APIs.v2.Contract.Common;
using Session = NPhase.UnifiedWebService.APIs.v2.Contract.SessionService;
using UwsInterop;

public static class WcfClient
{
    const string V2 = "http://nphase.com/unifiedwebservice/v2";

    public static void Main(string[] argv)
    {
        var args = Arguments.Parse(argv);
        // FaultException carries our code, unprefixed, as Code.Name.
        var steps = new Steps(e => e is FaultException
            ? new[] { ((FaultException)e).Code.Name, ((FaultException)e).Reason.ToString() } : null);
        // The endpoint is the service's address: the WSDL's URL without its query.
        var session = new SessionServiceClient(new BasicHttpBinding(), Endpoint(args.SessionWsdl));
        var carrier = new CarrierServiceClient(new BasicHttpBinding(), Endpoint(args.CarrierWsdl));
        NameResults(session.Endpoint);
        NameResults(carrier.Endpoint);
        string token = null;

        steps.Run("login", () =>
        {
            token = session.LogIn(new Session.LogInRequest { Username = args.Username, Password = args.Password }).SessionToken;
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
                input.DeviceCustomFieldFilter = new Common.CustomFieldFilter { Name = args.Field, Value = args.Value };
                return Change(carrier, input, token);
            });
        steps.Fault("fault-bad-token", () => Change(carrier, DeviceList("Suspend", args.Devices), "not-a-session-token"));
        steps.Fault("fault-unknown-kind", () =>
            Change(carrier, DeviceList("Suspend", new List<string[][]> { Arguments.Device("FOO:123") }), token));
        steps.Run("logout", () =>
        {
            using (WithToken(session.InnerChannel, token))
                session.LogOut(new Session.LogOutRequest { SessionToken = token });
            return null;
        });
        steps.Fault("fault-after-logout", () => Change(carrier, DeviceList("Restore", args.Devices), token));
        steps.Print("svcutil DataContract proxy (WCF BasicHttpBinding, " + Steps.MonoVersion() + ")");
    }

    // What [return: MessageParameter(Name = "Output")] on each generated operation would say.
    static void NameResults(System.ServiceModel.Description.ServiceEndpoint endpoint)
    {
        foreach (var operation in endpoint.Contract.Operations)
        {
            var body = operation.Messages[1].Body;  // the output message
            body.ReturnValue = new System.ServiceModel.Description.MessagePartDescription("Output", V2)
                { Type = body.ReturnValue.Type };
        }
    }

    static EndpointAddress Endpoint(string wsdlUrl) { return new EndpointAddress(wsdlUrl.Split('?')[0]); }

    // The v2:token header on every message sent in the returned scope.
    static IDisposable WithToken(IContextChannel channel, string token)
    {
        var scope = new OperationContextScope(channel);
        OperationContext.Current.OutgoingMessageHeaders.Add(MessageHeader.CreateHeader("token", V2, token));
        return scope;
    }

    static string Change(CarrierServiceClient carrier, Carrier.ChangeDeviceStateRequest input, string token)
    {
        using (WithToken(carrier.InnerChannel, token))
            return carrier.ChangeDeviceState(input).RequestId;
    }

    static Carrier.ChangeDeviceStateRequest Request(string action)
    {
        var input = new Carrier.ChangeDeviceStateRequest();
        if (action == "Suspend") input.Suspend = new Carrier.SuspendDeviceRequest();
        else input.Restore = new Carrier.RestoreDeviceRequest();
        return input;
    }

    static Carrier.ChangeDeviceStateRequest DeviceList(string action, List<string[][]> devices)
    {
        var input = Request(action);
        var list = new List<Common.DeviceIdentifierCollection>();
        foreach (var device in devices)
        {
            var ids = new List<Common.DeviceIdentifier>();
            foreach (var pair in device) ids.Add(new Common.DeviceIdentifier { Kind = pair[0], Identifier = pair[1] });
            list.Add(new Common.DeviceIdentifierCollection { DeviceIdentifiers = ids.ToArray() });
        }
        input.DeviceList = list.ToArray();
        return input;
    }
}
