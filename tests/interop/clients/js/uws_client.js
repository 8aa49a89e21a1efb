// node-soap (npm "soap"): one client per service from its served ?wsdl, runs the interop scenario
// and prints one JSON object (see tests/interop/interop_harness.py).
// Usage: node uws_client.js SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...
// A DEVICE is KIND:ID[+KIND:ID...]: one device named by each of its identifiers.
'use strict';
const soap = require('soap');

const NS_V2 = 'http://nphase.com/unifiedwebservice/v2';
const [sessionWsdl, carrierWsdl, user, password, account, group, field, value, ...devices] = process.argv.slice(2);
const steps = [];

function describe(error) {
  const fault = soapFault(error);
  const text = `${error.constructor.name}: ${error.message}`;
  return fault ? `${text} [faultcode ${fault.faultcode}]` : text;
}

// node-soap's own fault: the error it rejects with carries the parsed envelope in err.root.
function soapFault(error) {
  return error && error.root && error.root.Envelope && error.root.Envelope.Body && error.root.Envelope.Body.Fault;
}

async function step(name, body) {
  try {
    const requestId = await body();
    steps.push({ step: name, ok: true, ...(requestId === undefined ? {} : { request_id: requestId }) });
  } catch (error) {
    steps.push({ step: name, ok: false, error: describe(error) });
  }
}

// A step that must end in node-soap's own fault; its faultcode is what the test checks.
async function expectFault(name, body) {
  try {
    await body();
    steps.push({ step: name, ok: false, error: 'no fault' });
  } catch (error) {
    const fault = soapFault(error);
    steps.push(fault
      ? { step: name, ok: true, fault_type: `${error.constructor.name} (err.root.Envelope.Body.Fault)`,
          fault_code: String(fault.faultcode), fault_string: String(fault.faultstring) }
      : { step: name, ok: false, error: describe(error) });
  }
}

function deviceList(list) {
  return {
    DeviceIdentifierCollection: list.map((device) => ({
      DeviceIdentifiers: {
        DeviceIdentifier: device.split('+').map((pair) => {
          const at = pair.indexOf(':');
          return { Kind: pair.slice(0, at), Identifier: pair.slice(at + 1) };
        }),
      },
    })),
  };
}

function withToken(client, token) {
  client.clearSoapHeaders();
  client.addSoapHeader({ token }, 'token', 'v2', NS_V2);
  return client;
}

async function change(carrier, token, input) {
  const [result] = await withToken(carrier, token).ChangeDeviceStateAsync({ Input: input });
  return result.Output.RequestId;
}

async function main() {
  let session;
  let carrier;
  let token = '';
  await step('wsdl', async () => {
    session = await soap.createClientAsync(sessionWsdl);
    carrier = await soap.createClientAsync(carrierWsdl);
  });
  if (session) {
    await step('login', async () => {
      const [result] = await session.LogInAsync({ Input: { Username: user, Password: password } });
      token = result.Output.SessionToken;
    });
    for (const action of ['Suspend', 'Restore']) {
      await step(`${action.toLowerCase()}-device-list`, () =>
        change(carrier, token, { DeviceList: deviceList(devices), [action]: {} }));
    }
    for (const action of ['Suspend', 'Restore']) {
      await step(`${action.toLowerCase()}-account-group-field`, () => change(carrier, token, {
        DeviceGroupName: group, AccountName: account,
        DeviceCustomFieldFilter: { Name: field, Value: value }, [action]: {},
      }));
    }
    await expectFault('fault-bad-token', () =>
      change(carrier, 'not-a-session-token', { DeviceList: deviceList(devices), Suspend: {} }));
    await expectFault('fault-unknown-kind', () =>
      change(carrier, token, { DeviceList: deviceList(['FOO:123']), Suspend: {} }));
    await step('logout', async () => {
      await withToken(session, token).LogOutAsync({ Input: { SessionToken: token } });
    });
    await expectFault('fault-after-logout', () =>
      change(carrier, token, { DeviceList: deviceList(devices), Restore: {} }));
  }
  const version = require('soap/package.json').version;
  process.stdout.write(`${JSON.stringify({ client: `node-soap ${version} (Node ${process.version})`, steps })}\n`);
}

main();
