// A JAX-WS (RI) client of our UWS WSDL: wsimport generates uws.session from SessionService.svc?wsdl
// and uws.carrier from CarrierService.svc?wsdl (-XadditionalHeaders: the v2:token header is a
// parameter). Runs the interop scenario and prints one JSON object (see tests/interop/scenario.py).
// Usage: java UwsClient SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...
//        [--chunk-size N] [--via http://host:port]
// --chunk-size sends every request with Transfer-Encoding: chunked, as Apache CXF does above its
// threshold (JAX-WS RI's HttpURLConnection chunked streaming mode); --via sends the requests to
// another host:port (a recording proxy) with the endpoint path unchanged.
import java.net.URI;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.soap.SOAPFaultException;

public final class UwsClient {
    private static final StringBuilder steps = new StringBuilder();

    interface Step { Object run() throws Exception; }

    public static void main(String[] args) throws Exception {
        List<String> positional = new ArrayList<>();
        Integer chunkSize = null;
        String via = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--chunk-size")) chunkSize = Integer.valueOf(args[++i]);
            else if (args[i].equals("--via")) via = args[++i];
            else positional.add(args[i]);
        }
        String user = positional.get(2), password = positional.get(3), account = positional.get(4);
        String group = positional.get(5), field = positional.get(6), value = positional.get(7);
        List<String> devices = positional.subList(8, positional.size());

        uws.session.ISessionService session;
        uws.carrier.ICarrierService carrier;
        try {
            session = new uws.session.SessionService(new URL(positional.get(0))).getSessionServicePort();
            carrier = new uws.carrier.CarrierService(new URL(positional.get(1))).getCarrierServicePort();
            add("wsdl", "\"ok\": true");
        } catch (Exception e) {
            add("wsdl", "\"ok\": false, \"error\": " + json(describe(e)));
            report();
            return;
        }
        for (Object port : new Object[] {session, carrier}) {
            Map<String, Object> context = ((BindingProvider) port).getRequestContext();
            if (chunkSize != null) {
                context.put("com.sun.xml.ws.transport.http.client.streaming.chunk.size", chunkSize);
            }
            if (via != null) {
                URI endpoint = URI.create((String) context.get(BindingProvider.ENDPOINT_ADDRESS_PROPERTY));
                context.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, via + endpoint.getRawPath());
            }
        }

        String[] token = {null};
        step("login", () -> {
            uws.session.LogInRequest input = new uws.session.LogInRequest();
            input.setUsername(user);
            input.setPassword(password);
            token[0] = session.logIn(input).getSessionToken();
            return null;
        });
        for (String action : new String[] {"Suspend", "Restore"}) {
            step(action.toLowerCase() + "-device-list",
                () -> carrier.changeDeviceState(deviceList(action, devices), token[0]).getRequestId());
        }
        for (String action : new String[] {"Suspend", "Restore"}) {
            step(action.toLowerCase() + "-account-group-field", () -> {
                uws.carrier.ChangeDeviceStateRequest input = request(action);
                input.setAccountName(account);
                input.setDeviceGroupName(group);
                uws.carrier.CustomFieldFilter filter = new uws.carrier.CustomFieldFilter();
                filter.setName(field);
                filter.setValue(value);
                input.setDeviceCustomFieldFilter(filter);
                return carrier.changeDeviceState(input, token[0]).getRequestId();
            });
        }
        fault("fault-bad-token", () -> carrier.changeDeviceState(deviceList("Suspend", devices), "not-a-session-token"));
        fault("fault-unknown-kind", () -> carrier.changeDeviceState(deviceList("Suspend", List.of("FOO:123")), token[0]));
        step("logout", () -> {
            uws.session.LogOutRequest input = new uws.session.LogOutRequest();
            input.setSessionToken(token[0]);
            session.logOut(input, token[0]);
            return null;
        });
        fault("fault-after-logout", () -> carrier.changeDeviceState(deviceList("Restore", devices), token[0]));
        report();
    }

    static void report() {
        String version = System.getProperty("java.version");
        System.out.println("{\"client\": \"JAX-WS RI " + com.sun.xml.ws.util.RuntimeVersion.VERSION.toString()
            .replaceAll("[^0-9.]+", " ").trim().split(" ")[0] + " (Java " + version + ")\", \"steps\": ["
            + steps + "]}");
    }

    static uws.carrier.ChangeDeviceStateRequest request(String action) {
        uws.carrier.ChangeDeviceStateRequest input = new uws.carrier.ChangeDeviceStateRequest();
        if (action.equals("Suspend")) input.setSuspend(new uws.carrier.SuspendDeviceRequest());
        else input.setRestore(new uws.carrier.RestoreDeviceRequest());
        return input;
    }

    // Each device is KIND:ID[+KIND:ID...]: one collection, holding every identifier of that device.
    static uws.carrier.ChangeDeviceStateRequest deviceList(String action, List<String> devices) {
        uws.carrier.ChangeDeviceStateRequest input = request(action);
        uws.carrier.ArrayOfDeviceIdentifierCollection list = new uws.carrier.ArrayOfDeviceIdentifierCollection();
        for (String device : devices) {
            uws.carrier.ArrayOfDeviceIdentifier ids = new uws.carrier.ArrayOfDeviceIdentifier();
            for (String pair : device.split("\\+")) {
                uws.carrier.DeviceIdentifier id = new uws.carrier.DeviceIdentifier();
                id.setKind(pair.split(":", 2)[0]);
                id.setIdentifier(pair.split(":", 2)[1]);
                ids.getDeviceIdentifier().add(id);
            }
            uws.carrier.DeviceIdentifierCollection collection = new uws.carrier.DeviceIdentifierCollection();
            collection.setDeviceIdentifiers(ids);
            list.getDeviceIdentifierCollection().add(collection);
        }
        input.setDeviceList(list);
        return input;
    }

    static void step(String name, Step body) {
        String result;
        try {
            Object requestId = body.run();
            result = "\"ok\": true" + (requestId == null ? "" : ", \"request_id\": " + json(requestId.toString()));
        } catch (Exception e) {
            result = "\"ok\": false, \"error\": " + json(describe(e));
        }
        add(name, result);
    }

    // A step that must end in the stack's own fault type; its faultcode is what the test checks.
    static void fault(String name, Step body) {
        String result;
        try {
            body.run();
            result = "\"ok\": false, \"error\": \"no fault\"";
        } catch (SOAPFaultException e) {
            result = "\"ok\": true, \"fault_type\": \"SOAPFaultException\", \"fault_code\": "
                + json(e.getFault().getFaultCode()) + ", \"fault_string\": " + json(e.getFault().getFaultString());
        } catch (Exception e) {
            result = "\"ok\": false, \"error\": " + json(describe(e));
        }
        add(name, result);
    }

    static String describe(Throwable e) {
        StringBuilder text = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (text.length() > 0) text.append(" <- ");
            text.append(t.getClass().getName()).append(": ").append(t.getMessage());
            if (t instanceof SOAPFaultException) {
                text.append(" [faultcode ").append(((SOAPFaultException) t).getFault().getFaultCode()).append("]");
            }
        }
        return text.toString();
    }

    static void add(String name, String result) {
        if (steps.length() > 0) steps.append(", ");
        steps.append("{\"step\": ").append(json(name)).append(", ").append(result).append("}");
    }

    static String json(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : (text == null ? "" : text).toCharArray()) {
            if (c == '"' || c == '\\') out.append('\\').append(c);
            else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
            else out.append(c);
        }
        return out.append('"').toString();
    }
}
