// .NET callback listeners of the interop suite, in one process, each on its own loopback port:
//   xmlserializer: an HttpListener reading the CallbackRequest with XmlSerializer;
//   wcf-any:       a WCF BasicHttpBinding service whose operation takes any Action (Action="*");
//   wcf-action:    a WCF BasicHttpBinding service whose operation has one specific Action (the
//                  argument), which WCF dispatches on: a callback without that SOAPAction is refused.
//   asmx:          an ASMX WebMethod (asmx/Callback.asmx) run by System.Web's own runtime in its own
//                  application domain, fed by an HttpListener (AsmxHost in Callbacks.cs) as xsp4 would.
// Prints {"listening": {NAME: URL, ...}} once they all listen, then one JSON line per callback
// received (Callbacks.cs); stops when stdin closes.
// Usage: mono Listeners.exe ASMX_FOLDER   (the folder holds Callback.asmx and bin/UwsCallbacks.dll)
using System;
using System.Net;
using System.Net.Sockets;
using System.ServiceModel;
using System.ServiceModel.Channels;
using System.Threading;
using System.Xml;
using UwsInterop;

[ServiceContract(Namespace = Callback.V2)]
public interface IAnyActionListener
{
    [OperationContract(Action = "*", ReplyAction = "*")]
    Message Receive(Message callback);
}

[ServiceContract(Namespace = Callback.V2)]
public interface ISpecificActionListener
{
    [OperationContract(Action = Listeners.SpecificAction, ReplyAction = "*")]
    Message Receive(Message callback);
}

[ServiceBehavior(InstanceContextMode = InstanceContextMode.Single, ConcurrencyMode = ConcurrencyMode.Multiple)]
public class WcfListener : IAnyActionListener, ISpecificActionListener
{
    readonly string name;
    public WcfListener(string name) { this.name = name; }

    public Message Receive(Message callback)
    {
        string action = callback.Headers.Action;  // basicHttpBinding: the SOAPAction, unquoted
        using (var body = callback.GetReaderAtBodyContents())
            Callback.Print(name, action, Callback.Read(body));
        return Message.CreateMessage(callback.Version, "*");
    }
}

public static class Listeners
{
    // The specific Action a WCF listener's contract names: the test sends callbacks with it.
    public const string SpecificAction = "http://nphase.com/unifiedwebservice/v2/ICallbackService/CallbackRequest";

    public static void Main(string[] args)
    {
        try
        {
            Listen(args);
        }
        catch (Exception e)
        {
            // Ended, not hung: the test sees the output end and starts the listeners again.
            Console.Error.WriteLine(e);
            Environment.Exit(1);
        }
        Console.In.ReadToEnd();  // until the test closes our stdin
    }

    static void Listen(string[] args)
    {
        string xml = Bound("xmlserializer", url =>
        {
            var http = new HttpListener();
            http.Prefixes.Add(url);
            http.Start();
            new Thread(() => Serve(http)) { IsBackground = true }.Start();
        });
        var asmxHost = AsmxHost.Create(System.IO.Path.GetFullPath(args[0]));
        string asmx = Bound("asmx", url =>
        {
            var asmxHttp = new HttpListener();
            asmxHttp.Prefixes.Add(url);
            asmxHttp.Start();
            new Thread(() => ServeAsmx(asmxHttp, asmxHost)) { IsBackground = true }.Start();
        });
        string any = Bound("wcf-any", url => Host(typeof(IAnyActionListener), "wcf-any", url));
        string specific = Bound("wcf-action", url => Host(typeof(ISpecificActionListener), "wcf-action", url));
        Console.Out.WriteLine("{\"listening\": {\"xmlserializer\": " + Json.Quote(xml) + ", \"wcf-any\": " + Json.Quote(any)
            + ", \"wcf-action\": " + Json.Quote(specific) + ", \"asmx\": " + Json.Quote(asmx + "Callback.asmx") + "}, \"runtime\": " + Json.Quote(Steps.MonoVersion()) + "}");
        Console.Out.Flush();
    }

    // Each listener's URL on a port picked just before it is bound, and picked again when another
    // socket took the port in between (a loaded machine's connections use the same port range).
    static string Bound(string path, Action<string> start)
    {
        for (int attempt = 1; ; attempt++)
        {
            string url = Url(FreePort(), path);
            try
            {
                start(url);
                return url;
            }
            catch (Exception e)
            {
                if (attempt == 10 || !AddressInUse(e)) throw;
                Console.Error.WriteLine(path + ": " + url + " was taken; another port");
            }
        }
    }

    static bool AddressInUse(Exception e)
    {
        for (; e != null; e = e.InnerException)
        {
            var socket = e as SocketException;
            if (socket != null && socket.SocketErrorCode == SocketError.AddressAlreadyInUse) return true;
            if (e is AddressAlreadyInUseException) return true;
        }
        return false;
    }

    static void Host(Type contract, string name, string url)
    {
        var host = new ServiceHost(new WcfListener(name), new Uri(url));
        host.AddServiceEndpoint(contract, new BasicHttpBinding(), "");
        // A listener that fails says why in its fault (the test shows it).
        host.Description.Behaviors.Find<System.ServiceModel.Description.ServiceDebugBehavior>().IncludeExceptionDetailInFaults = true;
        host.Open();
    }

    static void Serve(HttpListener http)
    {
        while (true)
        {
            var context = http.GetContext();
            int status = 200;
            try
            {
                using (var reader = XmlReader.Create(context.Request.InputStream))
                    Callback.Print("xmlserializer", context.Request.Headers["SOAPAction"], Callback.Read(reader));
            }
            catch (Exception e)
            {
                Console.Error.WriteLine("xmlserializer: " + e);
                status = 400;
            }
            context.Response.StatusCode = status;
            context.Response.Close();
        }
    }

    static void ServeAsmx(HttpListener http, AsmxHost host)
    {
        while (true)
        {
            var context = http.GetContext();
            var request = context.Request;
            var headers = new System.Collections.Generic.List<string>();
            foreach (string name in request.Headers.AllKeys) { headers.Add(name); headers.Add(request.Headers[name]); }
            var body = new System.IO.MemoryStream();
            request.InputStream.CopyTo(body);
            string page = request.Url.AbsolutePath.Substring(request.Url.AbsolutePath.LastIndexOf('/') + 1);
            int status;
            string contentType;
            byte[] answer;
            try
            {
                answer = host.Process(request.HttpMethod, page, request.Url.Query.TrimStart('?'), headers.ToArray(),
                                      body.ToArray(), out status, out contentType);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine("asmx: " + e);
                answer = new byte[0]; status = 500; contentType = "text/plain";
            }
            context.Response.StatusCode = status;
            if (!string.IsNullOrEmpty(contentType)) context.Response.ContentType = contentType;
            context.Response.OutputStream.Write(answer, 0, answer.Length);
            context.Response.Close();
        }
    }

    static string Url(int port, string path) { return "http://127.0.0.1:" + port + "/" + path + "/"; }

    static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
