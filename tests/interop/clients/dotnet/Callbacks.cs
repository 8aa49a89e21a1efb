// What the .NET callback listeners of the interop suite share (compiled into UwsCallbacks.dll): the
// UWS CallbackRequest as an XmlSerializer type, the JSON line each listener prints for each callback it
// receives (read by tests/interop/test_dotnet.py), the ASMX web service (asmx/Callback.asmx names it)
// and the ASP.NET host that runs it behind an HttpListener (AsmxHost), as xsp4 would: Debian 12's
// xsp4 (4.2) does not start on its Mono 6.8 (a TypeLoadException on Mono.Security's old TLS types).
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading;
using System.Web;
using System.Web.Hosting;
using System.Web.Services;
using System.Web.Services.Protocols;
using System.Xml;
using System.Xml.Serialization;

namespace UwsInterop
{
    [XmlRoot("CallbackRequest", Namespace = Callback.V2)]
    [XmlType(Namespace = Callback.V2)]
    public class CallbackRequest
    {
        public string Username;
        public string Password;
        public string RequestId;
        [XmlElement("Device")] public CallbackDevice[] Device;
        // The outcome sections are open (they differ per action and grow over the years): kept as XML.
        [XmlAnyElement("Data", Namespace = Callback.V2)] public XmlElement Data;
    }

    [XmlType(Namespace = Callback.V2)]
    public class CallbackDevice
    {
        public string Kind;
        public string Identifier;
    }

    public static class Callback
    {
        public const string V2 = "http://nphase.com/unifiedwebservice/v2";
        static readonly object printing = new object();
        static readonly XmlSerializer serializer = new XmlSerializer(typeof(CallbackRequest));

        // The CallbackRequest in the Body of a SOAP envelope, read with XmlSerializer.
        public static CallbackRequest Read(XmlReader reader)
        {
            reader.MoveToContent();  // a WCF message's body reader already stands on it
            bool there = reader.NodeType == XmlNodeType.Element && reader.LocalName == "CallbackRequest" && reader.NamespaceURI == V2;
            if (!there && !reader.ReadToFollowing("CallbackRequest", V2))
                throw new InvalidDataException("no v2:CallbackRequest in the body");
            return (CallbackRequest)serializer.Deserialize(reader.ReadSubtree());
        }

        // One JSON line: which listener, the SOAPAction it was sent with (null: none), and what the
        // callback says (the action that ran, the outcome, the devices, the credentials).
        public static void Print(string listener, string soapAction, CallbackRequest callback)
        {
            var devices = new StringBuilder();
            foreach (var device in callback.Device ?? new CallbackDevice[0])
            {
                if (devices.Length > 0) devices.Append(", ");
                devices.Append(Json.Quote(device.Kind + ":" + device.Identifier));
            }
            string line = "{\"listener\": " + Json.Quote(listener)
                + ", \"soap_action\": " + (soapAction == null ? "null" : Json.Quote(soapAction))
                + ", \"request_id\": " + Json.Quote(callback.RequestId)
                + ", \"username\": " + Json.Quote(callback.Username) + ", \"password\": " + Json.Quote(callback.Password)
                + ", \"action\": " + Json.Quote(Section(callback.Data, "*[local-name()='ChangeDeviceState']/*[not(@*[local-name()='nil'])]", true))
                + ", \"status\": " + Json.Quote(Section(callback.Data, "*[local-name()='Status']", false))
                + ", \"devices\": [" + devices + "]}";
            lock (printing)
            {
                Console.Out.WriteLine(line);
                Console.Out.Flush();
            }
        }

        // The name (or text) of the first element at `path` anywhere below Data.
        static string Section(XmlElement data, string path, bool name)
        {
            var found = data == null ? null : data.SelectSingleNode(".//" + path);
            return found == null ? null : name ? found.LocalName : found.InnerText;
        }
    }

    // An ASMX web service as a legacy .NET shop writes one: default SOAPAction routing (the action
    // is the namespace + the method's name), the CallbackRequest as the one (bare) body element.
    [WebService(Namespace = Callback.V2)]
    public class CallbackService : WebService
    {
        [WebMethod]
        [SoapDocumentMethod(ParameterStyle = SoapParameterStyle.Bare)]
        public void CallbackRequest([XmlElement("CallbackRequest", Namespace = Callback.V2)] CallbackRequest request)
        {
            Callback.Print("asmx", Context.Request.Headers["SOAPAction"], request);
        }
    }

    // The ASP.NET runtime in its own application domain (CreateApplicationHost loads this assembly
    // from the application's bin folder), answering one request at a time as IIS or xsp4 hands them
    // over: the .asmx is compiled and dispatched by System.Web itself.
    public class AsmxHost : MarshalByRefObject
    {
        public override object InitializeLifetimeService() { return null; }  // lives as long as the process

        public static AsmxHost Create(string physicalDir)
        {
            return (AsmxHost)ApplicationHost.CreateApplicationHost(typeof(AsmxHost), "/", physicalDir);
        }

        // headers: name, value, name, value...; the answer's body, with its status and content type.
        public byte[] Process(string verb, string page, string query, string[] headers, byte[] body,
                              out int status, out string contentType)
        {
            var worker = new ListenerWorkerRequest(verb, page, query, headers, body);
            HttpRuntime.ProcessRequest(worker);
            worker.Done.WaitOne();
            status = worker.Status;
            contentType = worker.ContentType;
            return worker.Output.ToArray();
        }
    }

    class ListenerWorkerRequest : SimpleWorkerRequest
    {
        readonly string verb;
        readonly byte[] body;
        readonly Dictionary<string, string> headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        public readonly ManualResetEvent Done = new ManualResetEvent(false);
        public readonly MemoryStream Output = new MemoryStream();
        public int Status = 200;
        public string ContentType = "";

        public ListenerWorkerRequest(string verb, string page, string query, string[] pairs, byte[] body)
            : base(page, query, TextWriter.Null)
        {
            this.verb = verb;
            this.body = body;
            for (int i = 0; i + 1 < pairs.Length; i += 2) headers[pairs[i]] = pairs[i + 1];
        }

        public override string GetHttpVerbName() { return verb; }
        public override string GetKnownRequestHeader(int index) { return GetUnknownRequestHeader(GetKnownRequestHeaderName(index)); }
        public override string GetUnknownRequestHeader(string name)
        {
            string value;
            return headers.TryGetValue(name, out value) ? value : null;
        }
        public override string[][] GetUnknownRequestHeaders()
        {
            var all = new List<string[]>();
            foreach (var pair in headers) all.Add(new[] { pair.Key, pair.Value });
            return all.ToArray();
        }
        public override byte[] GetPreloadedEntityBody() { return body; }
        public override int GetPreloadedEntityBodyLength() { return body.Length; }
        public override int GetTotalEntityBodyLength() { return body.Length; }
        public override bool IsEntireEntityBodyIsPreloaded() { return true; }
        public override int ReadEntityBody(byte[] buffer, int size) { return 0; }
        public override void SendStatus(int statusCode, string statusDescription) { Status = statusCode; }
        public override void SendKnownResponseHeader(int index, string value)
        {
            if (index == HeaderContentType) ContentType = value;
        }
        public override void SendUnknownResponseHeader(string name, string value)
        {
            if (string.Equals(name, "Content-Type", StringComparison.OrdinalIgnoreCase)) ContentType = value;
        }
        public override void SendResponseFromMemory(byte[] data, int length) { Output.Write(data, 0, length); }
        public override void EndOfRequest() { Done.Set(); }
    }
}
