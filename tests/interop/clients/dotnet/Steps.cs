// What the .NET programs of the interop suite share: the scenario's arguments, the JSON record of
// its steps that tests/interop/interop_harness.py reads (the shape every client prints), and a
// small JSON writer (the BCL that Mono ships has none usable without extra assemblies).
using System;
using System.Collections.Generic;
using System.Text;

namespace UwsInterop
{
    public sealed class Arguments
    {
        public string SessionWsdl, CarrierWsdl, Username, Password, Account, Group, Field, Value;
        // One device per entry, each identifier as {kind, identifier}.
        public List<string[][]> Devices = new List<string[][]>();
        public Dictionary<string, string> Options = new Dictionary<string, string>();

        // SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE... [--name value]
        public static Arguments Parse(string[] args)
        {
            var positional = new List<string>();
            var parsed = new Arguments();
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i].StartsWith("--") && i + 1 < args.Length) parsed.Options[args[i].Substring(2)] = args[++i];
                else positional.Add(args[i]);
            }
            if (positional.Count < 9)
                throw new ArgumentException("usage: SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...");
            parsed.SessionWsdl = positional[0]; parsed.CarrierWsdl = positional[1];
            parsed.Username = positional[2]; parsed.Password = positional[3]; parsed.Account = positional[4];
            parsed.Group = positional[5]; parsed.Field = positional[6]; parsed.Value = positional[7];
            for (int i = 8; i < positional.Count; i++) parsed.Devices.Add(Device(positional[i]));
            return parsed;
        }

        // KIND:ID[+KIND:ID...]: one device named by each of its identifiers.
        public static string[][] Device(string text)
        {
            var pairs = text.Split('+');
            var device = new string[pairs.Length][];
            for (int i = 0; i < pairs.Length; i++) device[i] = pairs[i].Split(new[] { ':' }, 2);
            return device;
        }
    }

    public sealed class Steps
    {
        readonly List<string> steps = new List<string>();
        readonly Func<Exception, string[]> faultOf;  // {code, text} of the stack's own fault type, else null

        public Steps(Func<Exception, string[]> faultOf) { this.faultOf = faultOf; }

        public void Run(string name, Func<string> body)
        {
            try
            {
                string requestId = body();
                Add(name, "\"ok\": true" + (requestId == null ? "" : ", \"request_id\": " + Json.Quote(requestId)));
            }
            catch (Exception e)
            {
                Add(name, "\"ok\": false, \"error\": " + Json.Quote(Describe(e)));
            }
        }

        // A step that must end in the stack's own fault type; its code is what the test checks.
        public void Fault(string name, Action body)
        {
            try
            {
                body();
                Add(name, "\"ok\": false, \"error\": \"no fault\"");
            }
            catch (Exception e)
            {
                string[] fault = faultOf(e);
                if (fault == null) Add(name, "\"ok\": false, \"error\": " + Json.Quote(Describe(e)));
                else Add(name, "\"ok\": true, \"fault_type\": " + Json.Quote(e.GetType().FullName)
                    + ", \"fault_code\": " + Json.Quote(fault[0]) + ", \"fault_string\": " + Json.Quote(fault[1]));
            }
        }

        public string Describe(Exception e)
        {
            var text = new StringBuilder();
            for (Exception t = e; t != null; t = t.InnerException)
            {
                if (text.Length > 0) text.Append(" <- ");
                text.Append(t.GetType().FullName).Append(": ").Append(t.Message);
                string[] fault = faultOf(t);
                if (fault != null) text.Append(" [faultcode ").Append(fault[0]).Append("]");
            }
            return text.ToString();
        }

        void Add(string name, string result) { steps.Add("{\"step\": " + Json.Quote(name) + ", " + result + "}"); }

        public void Print(string client)
        {
            Console.WriteLine("{\"client\": " + Json.Quote(client) + ", \"steps\": [" + string.Join(", ", steps) + "]}");
        }

        // The Mono runtime's version, as "Mono 6.8.0.105".
        public static string MonoVersion()
        {
            var type = Type.GetType("Mono.Runtime");
            var display = type == null ? null : type.GetMethod("GetDisplayName",
                System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static);
            string text = display == null ? Environment.Version.ToString() : (string)display.Invoke(null, null);
            return "Mono " + text.Split(' ')[0];
        }
    }

    public static class Json
    {
        public static string Quote(string text)
        {
            var o = new StringBuilder("\"");
            foreach (char c in text ?? "")
            {
                if (c == '"' || c == '\\') o.Append('\\').Append(c);
                else if (c < 0x20) o.Append("\\u").Append(((int)c).ToString("x4"));
                else o.Append(c);
            }
            return o.Append('"').ToString();
        }
    }
}
